"""`python -m calico_node.kubelab up DIR | down DIR` (what scripts/kube-apiserver runs)."""

from __future__ import annotations

import sys
from pathlib import Path

from calico_node.kubelab.apiserver import KubeLabError, down, up

USAGE = "usage: kube-apiserver up DIR | down DIR"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("up", "down"):
        print(USAGE, file=sys.stderr)
        return 2
    target = Path(args[1])
    try:
        if args[0] == "up":
            cp = up(target)
            print(f"kube-apiserver {cp.server} (etcd {cp.etcd_endpoint}); "
                  f"stop with: scripts/kube-apiserver down {cp.dir}")
            print(cp.kubeconfig)
        else:
            down(target)
    except KubeLabError as exc:
        print(f"kube-apiserver: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
