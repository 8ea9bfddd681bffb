"""calicoctl entry point: the only place its errors become exit codes (via click)."""

from __future__ import annotations


def main() -> None:
    from calicoctl.cli import calicoctl

    calicoctl.main(prog_name="calicoctl")


if __name__ == "__main__":
    main()
