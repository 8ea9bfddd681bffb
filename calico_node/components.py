"""Which components calico-node runs, and how (Calico's runit services, as argv lists)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from calico_node.supervisor import Component


@dataclass(frozen=True, slots=True)
class Paths:
    confdir: str = "/etc/calico/confd"
    run_dir: str = "/var/run/calico"
    log_dir: str = "/var/log/calico"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Paths:
        d = cls()
        return cls(env.get("CALICO_CONFD_DIR", d.confdir), env.get("CALICO_RUN_DIR", d.run_dir),
                   env.get("CALICO_LOG_DIR", d.log_dir))


def components(backend: str, node: str, env: Mapping[str, str], paths: Paths,
               bindir: str, disable_felix: bool = False) -> list[Component]:
    """bird, bird6 and confd unless the backend is vxlan or none; felix unless disabled."""
    out: list[Component] = []
    if backend == "bird":
        for name, cfg, sock in (("bird", "bird.cfg", "bird.ctl"),
                                ("bird6", "bird6.cfg", "bird6.ctl")):
            conf = f"{paths.confdir}/config/{cfg}"
            out.append(Component(name, (name, "-R", "-s", f"{paths.run_dir}/{sock}", "-d",
                                        "-c", conf), requires=(conf,)))
        out.append(Component("confd", (f"{bindir}/calico-confd", "--confdir", paths.confdir),
                             env={**env, "NODENAME": node}))
    if not disable_felix:
        fenv = {**env, "FELIX_FELIXHOSTNAME": node, "NODENAME": node,
                "FELIX_DATASTORETYPE": env.get("DATASTORE_TYPE", "etcdv3")}
        fenv.setdefault("FELIX_HEALTHENABLED", "true")
        out.append(Component("felix", (f"{bindir}/calico-felix",), env=fenv))
    return out


def bindir() -> str:
    """Where our console scripts live: beside the interpreter, else on PATH."""
    here = os.path.dirname(sys.executable)
    if os.path.exists(os.path.join(here, "calico-felix")):
        return here
    found = shutil.which("calico-felix")
    return os.path.dirname(found) if found else here
