"""calico CNI plugin entry point (console script `calico`)."""

import sys


def main() -> None:
    from calico_cni import context, plugin

    sys.exit(context.run(plugin.handle))


if __name__ == "__main__":
    main()
