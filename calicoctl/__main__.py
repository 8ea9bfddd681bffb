"""calicoctl entry point: the only place its errors become exit codes (via click)."""

from __future__ import annotations


def main() -> None:
    import os

    # gRPC's C core logs TLS and connection failures to stderr on its own; calicoctl reports
    # them itself, once, in its own words. GRPC_VERBOSITY set by the user still wins.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from calicoctl.cli import calicoctl

    calicoctl.main(prog_name="calicoctl")


if __name__ == "__main__":
    main()
