"""calico CNI plugin entry point (console script `calico`)."""

import sys


def main() -> None:
    from calico_cni.relay import try_relay

    rc = try_relay("calico")
    if rc is None:
        from calico_cni import context, plugin

        rc = context.run(plugin.handle)
    sys.exit(rc)


if __name__ == "__main__":
    main()
