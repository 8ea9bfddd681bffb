"""Template resources: the `[template]` tables in `<confdir>/conf.d/*.toml`.

The format is confd's (see docs/confd.md): `src`, `dest`, `prefix`, `keys`, `check_cmd`,
`reload_cmd`, `mode`, `uid`, `gid`. Unlike confd (whose TOML decoder ignores keys it does not
know), an unknown key is an error naming the key and the file, so a typo such as
`reload_command` cannot silently disable a reload.

Loading is the only I/O here (reading the files); the parsing itself is `parse`.
"""

from __future__ import annotations

import os
import posixpath
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from libcalico.errors import ConfigError

if TYPE_CHECKING:
    from confd.render import RenderJob

KNOWN_KEYS = frozenset(
    {"src", "dest", "prefix", "keys", "check_cmd", "reload_cmd", "mode", "uid", "gid"}
)
NODENAME_TOKEN = "//NODENAME"


@dataclass(frozen=True, slots=True)
class TemplateResource:
    """One rendered file. `dest` is already redirected under `--dest-root` when one is set."""

    name: str
    """The TOML file name (`bird.toml`): how errors and logs name the resource."""
    src: str
    """Template file name, relative to `<confdir>/templates`."""
    dest: Path
    prefix: str
    keys: tuple[str, ...]
    """Key prefixes as written (relative to `prefix`; `//NODENAME` is expanded at render time
    by `confd.functions.expand_keys`, as confd's ExpandedKeys)."""
    check_cmd: str
    reload_cmd: str
    mode: int | None
    """File mode; None = keep the existing dest's mode, else 0644 (confd's rule)."""
    uid: int
    gid: int

    def job(self) -> RenderJob:
        from confd.render import RenderJob

        return RenderJob(src=self.src, prefix=self.prefix, keys=self.keys)


def parse(
    text: str,
    *,
    name: str,
    node: str,
    dest_root: Path | None = None,
    default_uid: int | None = None,
    default_gid: int | None = None,
) -> TemplateResource:
    """Parse one TOML resource. Raises ConfigError naming `name` and the problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML: {exc}") from exc
    extra = sorted(set(doc) - {"template"})
    if extra:
        raise ConfigError(f"{name}: unknown table or key {extra[0]!r} (only [template] is allowed)")
    table = doc.get("template")
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: missing [template] table")
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{name}: unknown key {unknown[0]!r} in [template] "
            f"(known: {', '.join(sorted(KNOWN_KEYS))})"
        )
    src = _string(table, "src", name)
    if not src:
        raise ConfigError(f"{name}: 'src' is required and must not be empty")
    if posixpath.isabs(src) or ".." in Path(src).parts:
        raise ConfigError(f"{name}: 'src' must be a file name inside templates/: {src!r}")
    dest_text = _string(table, "dest", name)
    if not dest_text:
        raise ConfigError(f"{name}: 'dest' is required and must not be empty")
    dest = Path(dest_text)
    if dest_root is not None:
        dest = dest_root / dest.relative_to(dest.anchor) if dest.is_absolute() else dest_root / dest
    prefix = _string(table, "prefix", name)
    keys_raw = table.get("keys", [])
    if not isinstance(keys_raw, list) or not all(isinstance(k, str) for k in keys_raw):
        raise ConfigError(f"{name}: 'keys' must be a list of strings")
    prefix = prefix.replace(NODENAME_TOKEN, "/" + node, 1)
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    keys = tuple(keys_raw)
    mode = _mode(table.get("mode"), name)
    uid = _id(table, "uid", name, os.geteuid() if default_uid is None else default_uid)
    gid = _id(table, "gid", name, os.getegid() if default_gid is None else default_gid)
    return TemplateResource(
        name=name,
        src=src,
        dest=dest,
        prefix=prefix,
        keys=keys,
        check_cmd=_string(table, "check_cmd", name),
        reload_cmd=_string(table, "reload_cmd", name),
        mode=mode,
        uid=uid,
        gid=gid,
    )


def load(path: Path, *, node: str, dest_root: Path | None = None) -> TemplateResource:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path.name}: cannot read {path}: {exc.strerror}") from exc
    return parse(text, name=path.name, node=node, dest_root=dest_root)


def load_dir(confdir: Path, *, node: str, dest_root: Path | None = None) -> list[TemplateResource]:
    """Every `conf.d/*.toml` under `confdir`, in name order. Any bad file is an error."""
    conf_d = confdir / "conf.d"
    if not conf_d.is_dir():
        raise ConfigError(f"no conf.d directory in {confdir}")
    paths = sorted(p for p in conf_d.rglob("*.toml") if p.is_file())
    if not paths:
        raise ConfigError(f"no template resources (*.toml) in {conf_d}")
    resources = [load(p, node=node, dest_root=dest_root) for p in paths]
    seen: dict[Path, str] = {}
    for r in resources:
        if r.dest in seen:
            raise ConfigError(f"{r.name}: dest {r.dest} is also the dest of {seen[r.dest]}")
        seen[r.dest] = r.name
    return resources


def processing_order(resources: Sequence[TemplateResource]) -> list[TemplateResource]:
    """Resources without a check_cmd first, then the checked ones, each group by name.

    bird.cfg includes bird_aggr.cfg and bird_ipam.cfg, which are fragments that cannot be
    checked alone. Writing the fragments first means that `bird -p` on the bird.cfg stage file
    (which resolves its includes in dest's directory) sees this pass's fragments, so the very
    first run succeeds without confd's "create anyway when the check fails" rule.
    """
    return sorted(resources, key=lambda r: (bool(r.check_cmd), r.name))


def _string(table: Mapping[str, object], key: str, name: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{name}: {key!r} must be a string, not {type(value).__name__}")
    return value


def _mode(value: object, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str):
        try:
            mode = int(value, 8) if not value.startswith(("0x", "0X")) else int(value, 16)
        except ValueError as exc:
            raise ConfigError(f"{name}: 'mode' is not an octal number: {value!r}") from exc
    else:
        raise ConfigError(f"{name}: 'mode' must be a string such as \"0644\"")
    if not 0 <= mode <= 0o7777:
        raise ConfigError(f"{name}: 'mode' out of range: {value!r}")
    return mode


def _id(table: Mapping[str, object], key: str, name: str, default: int) -> int:
    value = table.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < -1:
        raise ConfigError(f"{name}: {key!r} must be an integer")
    return default if value == -1 else value
