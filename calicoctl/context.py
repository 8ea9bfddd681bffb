"""What every command needs: the datastore configuration and a lazily built Client.

The Client (and with it pyetcd and grpc) is created only when a command first needs it,
so `calicoctl --help` and commands that fail validation stay fast. Tests inject a
`client_factory` (e.g. a Client over MemoryBackend) instead of a configuration.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

import click

if TYPE_CHECKING:
    from libcalico.client import Client
    from libcalico.datastore.api import Backend
    from libcalico.datastore.config import DatastoreConfig

DEFAULT_CONFIG = "/etc/calico/calicoctl.cfg"


class Failed(click.ClickException):
    """A command failed; the message is what calicoctl prints, on stderr (exit status 1)."""

    exit_code = 1

    def show(self, file: IO[str] | None = None) -> None:
        click.echo(self.format_message(), file=file or sys.stderr)


@dataclass
class Context:
    config_path: str | None = None
    allow_version_mismatch: bool = False
    client_factory: Callable[[], Client] | None = None
    _client: Client | None = field(default=None, repr=False)

    def datastore_config(self) -> DatastoreConfig:
        """--config FILE; else /etc/calico/calicoctl.cfg if it exists; else the environment."""
        from libcalico.datastore.config import DatastoreConfig

        path = self.config_path
        if path is not None:
            if not os.path.exists(path):
                raise Failed(f"Failed to load client config: config file {path} does not exist")
            return DatastoreConfig.from_file(path)
        if os.path.exists(DEFAULT_CONFIG):
            return DatastoreConfig.from_file(DEFAULT_CONFIG)
        return DatastoreConfig.from_env()

    def client(self) -> Client:
        if self._client is None:
            if self.client_factory is not None:
                self._client = self.client_factory()
            else:
                from libcalico import datastore
                from libcalico.client import Client

                self._client = Client(datastore.connect(self.datastore_config()))
        return self._client

    def backend(self) -> Backend:
        """The raw Backend under the Client (for commands that work on keys, e.g. IPAM)."""
        return self.client().backend

    def close(self) -> None:
        """Close the datastore connection this context opened (not an injected one)."""
        if self._client is not None and self.client_factory is None:
            self._client.backend.close()
        self._client = None
