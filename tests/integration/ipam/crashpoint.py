"""Run a CNI plugin (`calico` or `calico-ipam`) as a runtime would, but let the process die
right after its Nth successful datastore write: `python -m tests.integration.ipam.crashpoint
PLUGIN` with the plugin's environment and stdin, plus

- `CRASHPOINT_AFTER=N`   exit (os._exit, like a SIGKILL: no cleanup runs) after the Nth
                         write; 0 or unset: never;
- `CRASHPOINT_COUNT=path` the number of writes done so far is kept in that file;
- `CRASHPOINT_PLAIN=1`   hide the backend's batch capabilities (read_many/commit/…), so that
                         IPAM takes the path of a plain Backend (the gRPC one), two-phase
                         claims and all.

Writes are the GatewayBackend's create, update, delete, apply, commit and commit_or_read (a
transaction is one write); a write that fails (a lost compare-and-swap) is not counted.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

KILLED = 137
WRITES = ("create", "update", "delete", "apply", "commit", "commit_or_read")


def install(after: int, count_file: str, plain: bool) -> None:
    from libcalico.datastore import gateway

    cls = gateway.GatewayBackend
    done = [0]

    def counted(orig: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(orig)
        def write(self: object, *args: object, **kwargs: object) -> Any:
            result = orig(self, *args, **kwargs)
            if orig.__name__ == "commit_or_read" and result[0] is None:
                return result  # its condition failed: it only read
            done[0] += 1
            if count_file:
                Path(count_file).write_text(str(done[0]))
            if after and done[0] >= after:
                sys.stdout.flush()
                os._exit(KILLED)
            return result

        return write

    if plain:
        del cls.read_many
        del cls.commit
        del cls.commit_or_read
    for name in WRITES:
        if hasattr(cls, name):
            setattr(cls, name, counted(getattr(cls, name)))


def main() -> None:
    plugin = sys.argv[1]
    os.environ["CALICO_CNI_HELPER_SOCKET"] = "none"
    install(int(os.environ.get("CRASHPOINT_AFTER") or 0), os.environ.get("CRASHPOINT_COUNT", ""),
            os.environ.get("CRASHPOINT_PLAIN") == "1")
    if plugin == "calico":
        from calico_cni.__main__ import main as plugin_main
    elif plugin == "calico-ipam":
        from calico_cni.ipam_main import main as plugin_main
    else:
        sys.exit(f"unknown plugin {plugin!r}")
    plugin_main()


if __name__ == "__main__":
    main()
