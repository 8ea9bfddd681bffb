"""Install the CNI plugins into a CNI bin directory (Calico's install-cni step).

    python -m calico_cni.install [DIR]        (default /opt/cni/bin)

Writes `calico` and `calico-ipam` as small launchers for this interpreter started with `-S`:
the runtime executes them once per container operation, and skipping `site` (with the .pth
files of the environment) is a large part of an ADD's start-up time. The launchers put this
package's directory first on sys.path and the environment's site-packages last, so every
import resolves as it would under the console scripts.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

TEMPLATE = """#!{python} -S
# calico-py CNI plugin launcher (written by python -m calico_cni.install)
import sys
sys.path[0:0] = [{root!r}]
sys.path.append({site!r})
from {module} import main
main()
"""

PLUGINS = {"calico": "calico_cni.__main__", "calico-ipam": "calico_cni.ipam_main"}


def install(dest: Path) -> list[Path]:
    root = str(Path(__file__).resolve().parents[1])
    site = sysconfig.get_paths()["purelib"]
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, module in PLUGINS.items():
        target = dest / name
        tmp = dest / f".{name}.tmp"
        tmp.write_text(TEMPLATE.format(python=sys.executable, root=root, site=site,
                                       module=module))
        tmp.chmod(0o755)
        os.replace(tmp, target)
        written.append(target)
    return written


def main() -> None:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "/opt/cni/bin")
    for path in install(dest):
        print(f"installed {path}")


if __name__ == "__main__":
    main()
