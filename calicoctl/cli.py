"""The `calicoctl` click group and the registry of its commands.

Commands live one module per command group under `calicoctl/commands/` and are imported
only when invoked (startup time matters: CNI setups and scripts call calicoctl often).
Optional groups are picked up when their module exists: `calicoctl/commands/ipam.py`
exposing a click command or group named `ipam`, and `calicoctl/commands/node.py`
exposing `node`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click

from calicoctl.context import Context, Failed

# command name -> (module, attribute)
BUILTIN: dict[str, tuple[str, str]] = {
    "apply": ("calicoctl.commands.apply", "apply"),
    "create": ("calicoctl.commands.apply", "create"),
    "replace": ("calicoctl.commands.apply", "replace"),
    "delete": ("calicoctl.commands.delete", "delete"),
    "get": ("calicoctl.commands.get", "get"),
    "label": ("calicoctl.commands.label", "label"),
    "patch": ("calicoctl.commands.patch", "patch"),
    "version": ("calicoctl.commands.version", "version"),
}
# Registered when calicoctl/commands/<name>.py exists (owned by other components).
OPTIONAL: tuple[str, ...] = ("ipam", "node")

F = TypeVar("F", bound=Callable[..., Any])


def _registry() -> dict[str, tuple[str, str]]:
    out = dict(BUILTIN)
    for name in OPTIONAL:
        if importlib.util.find_spec(f"calicoctl.commands.{name}") is not None:
            out[name] = (f"calicoctl.commands.{name}", name)
    return out


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_registry()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        entry = _registry().get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        found = getattr(module, entry[1], None) or getattr(module, "cli", None)
        if not isinstance(found, click.Command):
            raise click.ClickException(f"{entry[0]} does not define a click command "
                                       f"named {entry[1]!r}")
        return found

    def invoke(self, ctx: click.Context) -> Any:
        from libcalico.errors import CalicoError

        try:
            return super().invoke(ctx)
        except CalicoError as exc:  # anything a command did not put in its own words
            raise Failed(str(exc)) from exc
        finally:
            obj = ctx.obj
            if isinstance(obj, Context):
                obj.close()


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(Context).config_path = value


def _set_mismatch(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Context).allow_version_mismatch = True


def _set_log_level(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    from libcalico import log

    name = value.upper()
    log.configure("calicoctl", "CRITICAL" if name in ("PANIC", "FATAL") else name)


def common_options(f: F) -> F:
    """Options calicoctl accepts on every subcommand as well as globally."""
    f = click.option("-c", "--config", expose_value=False, callback=_set_config,
                     metavar="CONFIG",
                     help="Path to the CalicoAPIConfig file "
                          "(default /etc/calico/calicoctl.cfg, else the environment).")(f)
    f = click.option("--allow-version-mismatch", is_flag=True, expose_value=False,
                     callback=_set_mismatch,
                     help="Accepted for compatibility: no version check is made.")(f)
    f = click.option("-l", "--log-level", expose_value=False, callback=_set_log_level,
                     metavar="LEVEL", help="Log level: debug, info, warning, error, panic.")(f)
    return f


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.pass_context
def calicoctl(ctx: click.Context) -> None:
    """Manage Calico resources in the datastore (etcd v3)."""
    ctx.ensure_object(Context)
    root = logging.getLogger()
    if not root.handlers:
        root.setLevel(logging.CRITICAL)


def context() -> Context:
    """The Context of the running command."""
    return click.get_current_context().ensure_object(Context)
