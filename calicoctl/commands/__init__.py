"""calicoctl commands, one module per command group (see calicoctl.cli)."""
