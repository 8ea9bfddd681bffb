"""The node's name: NODENAME, else the nodename file, else HOSTNAME, else the host name.

Calico's order (node/pkg/lifecycle/utils): `NODENAME` > `/var/lib/calico/nodename`
(`CALICO_NODENAME_FILE`) > `HOSTNAME` (lowercased) > the kernel host name (lowercased).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from libcalico import atomicfile
from libcalico.errors import ConfigError

DEFAULT_NODENAME_FILE = "/var/lib/calico/nodename"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def nodename_file(env: Mapping[str, str]) -> Path:
    return Path(env.get("CALICO_NODENAME_FILE") or DEFAULT_NODENAME_FILE)


def determine(env: Mapping[str, str], file_text: str | None, hostname: str) -> str:
    """Pure: pick the name from the sources in Calico's order and validate it."""
    source, name = "NODENAME", env.get("NODENAME", "").strip()
    if not name and file_text and file_text.strip():
        source, name = "nodename file", file_text.strip()
    if not name and env.get("HOSTNAME", "").strip():
        source, name = "HOSTNAME", env["HOSTNAME"].strip().lower()
    if not name:
        source, name = "host name", hostname.strip().lower()
    validate(name, source)
    return name


def validate(name: str, source: str = "NODENAME") -> None:
    if not name:
        raise ConfigError(f"{source}: the node name is empty")
    if len(name) > 253 or not _NAME.match(name):
        raise ConfigError(
            f"{source}={name!r}: not a valid node name (lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters)"
        )


def read(env: Mapping[str, str]) -> str | None:
    try:
        return nodename_file(env).read_text()
    except FileNotFoundError:
        return None


def resolve(env: Mapping[str, str]) -> str:
    return determine(env, read(env), os.uname().nodename)


def write(env: Mapping[str, str], name: str) -> Path:
    """Write the name atomically (CNI and calicoctl read it)."""
    path = nodename_file(env)
    atomicfile.write_text(path, name, prefix=".nodename.")
    return path
