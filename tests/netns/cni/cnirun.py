"""Run the CNI plugins as a runtime does: environment, config on stdin, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
CALICO = str(BIN / "calico")
CALICO_IPAM = str(BIN / "calico-ipam")


def plugin_dir(tmp: Path) -> str:
    """A CNI_PATH directory holding our two plugins (symlinks) next to Debian's."""
    d = tmp / "cni-bin"
    d.mkdir(exist_ok=True)
    for name, target in (("calico", CALICO), ("calico-ipam", CALICO_IPAM)):
        if not (d / name).exists():
            (d / name).symlink_to(target)
    return f"{d}:/usr/lib/cni"


def run(command: str, conf: dict[str, Any], *, cid: str, netns: str, ifname: str = "eth0",
        cni_path: str = "/usr/lib/cni", args: str = "", binary: str = CALICO,
        extra_env: dict[str, str] | None = None) -> tuple[int, Any]:
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
           "CNI_IFNAME": ifname, "CNI_PATH": cni_path, "CNI_ARGS": args, **(extra_env or {})}
    if not netns:
        env.pop("CNI_NETNS")
    r = subprocess.run([binary], input=json.dumps(conf), env=env, capture_output=True,
                       text=True, timeout=120, check=False)
    out = json.loads(r.stdout) if r.stdout.strip() else None
    if r.returncode != 0 and out is None:
        raise AssertionError(f"{command} exited {r.returncode} without JSON: {r.stderr}")
    return r.returncode, out
