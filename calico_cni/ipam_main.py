"""calico-ipam entry point (console script `calico-ipam`)."""

import gc


def main() -> None:
    gc.disable()  # a process of one call: collections during the imports only cost time
    from calico_cni.relay import exit_now, try_relay

    rc = try_relay("calico-ipam")
    if rc is None:
        from calico_cni import context, ipam_plugin

        rc = context.run(ipam_plugin.handle)
    exit_now(rc)


if __name__ == "__main__":
    main()
