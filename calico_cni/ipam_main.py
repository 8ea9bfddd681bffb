"""Entry point placeholder for calico-ipam: not built yet."""

import sys


def main() -> None:
    print("calico-ipam: not implemented yet", file=sys.stderr)
    sys.exit(2)
