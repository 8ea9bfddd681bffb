"""calico-ipam entry point (console script `calico-ipam`)."""

import sys


def main() -> None:
    from calico_cni.relay import try_relay

    rc = try_relay("calico-ipam")
    if rc is None:
        from calico_cni import context, ipam_plugin

        rc = context.run(ipam_plugin.handle)
    sys.exit(rc)


if __name__ == "__main__":
    main()
