"""calico-ipam entry point (console script `calico-ipam`)."""

import sys


def main() -> None:
    from calico_cni import context, ipam_plugin

    sys.exit(context.run(ipam_plugin.handle))


if __name__ == "__main__":
    main()
