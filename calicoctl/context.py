"""What every command needs: the datastore configuration and a lazily built Client.

The Client (and with it pyetcd and grpc) is created only when a command first needs it,
so `calicoctl --help` and commands that fail validation stay fast. Tests inject a
`client_factory` (e.g. a Client over MemoryBackend) instead of a configuration.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from libcalico.client import Client
    from libcalico.datastore.api import Backend
    from libcalico.datastore.config import DatastoreConfig

DEFAULT_CONFIG = "/etc/calico/calicoctl.cfg"
REACH_BUDGET = 2.5
"""Seconds calicoctl gives the etcd endpoints, all together, to accept a connection before it
says which it tried (the backend's own deadline, 10 s, is for calls to a reachable etcd)."""


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
                from libcalico.client import Client

                self._client = Client(self.connect())
        return self._client

    def connect(self) -> Backend:
        """A Backend for the configuration. When no etcd endpoint accepts a connection
        within REACH_BUDGET seconds, every call of the backend raises Unavailable naming the
        endpoints tried (at once, not after the backend's 10 s deadline), so that each
        command reports it in its own words."""
        from libcalico import datastore
        from libcalico.datastore.config import DatastoreType

        cfg = self.datastore_config()
        if cfg.datastore_type is not DatastoreType.KUBERNETES:
            problem = unreachable(cfg.etcd_endpoints)
            if problem is not None:
                return Unreachable(problem)
        return datastore.connect(cfg)

    def backend(self) -> Backend:
        """The raw Backend under the Client (for commands that work on keys, e.g. IPAM)."""
        return self.client().backend

    def close(self) -> None:
        """Close the datastore connection this context opened (not an injected one)."""
        if self._client is not None and self.client_factory is None:
            self._client.backend.close()
        self._client = None



class Unreachable:
    """The Backend of a datastore that cannot be reached: every call raises Unavailable."""

    def __init__(self, message: str) -> None:
        self.message = message

    def _fail(self, *_args: Any, **_kwargs: Any) -> Any:
        from libcalico.errors import Unavailable

        raise Unavailable(self.message)

    get = list = create = update = apply = delete = watch = _fail

    def close(self) -> None:
        pass


def unreachable(endpoints: Sequence[str], budget: float = REACH_BUDGET) -> str | None:
    """None once one endpoint accepts a TCP connection; otherwise, within `budget` seconds,
    why each endpoint could not be reached (a closed port answers at once; an address that
    drops packets costs its share of the budget)."""
    import socket
    import time
    from urllib.parse import urlsplit

    from libcalico.datastore.endpoint import parse_endpoint

    deadline = time.monotonic() + budget
    tried = []
    for i, url in enumerate(endpoints):
        parse_endpoint(url)  # ConfigError for a URL etcd's client would refuse
        parts = urlsplit(url.strip())
        share = (deadline - time.monotonic()) / (len(endpoints) - i)
        try:
            with socket.create_connection((parts.hostname or "", parts.port or 2379),
                                          timeout=max(share, 0.05)):
                return None
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or exc)
            tried.append(f"etcd {url.strip()} unavailable: cannot connect: {reason}")
    return "; ".join(tried) or "no etcd endpoints configured"
