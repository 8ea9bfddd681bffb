"""Entry point placeholder: this command is not built yet."""

import sys


def main() -> None:
    print("felix: not implemented yet", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
