"""Stage, compare, check, replace: the only place confd writes files.

For one resource and its freshly rendered text (`sync`):

0. If dest already has exactly this content, mode and owner, stop here (no stage file).
1. Create a stage file beside dest (`.<dest name>XXXXXX`, same directory so the final rename
   is atomic and includes resolve as they will for dest), write the text, chmod and chown it.
2. Compare content, mode and owner with dest. Equal: remove the stage file, done (dest's
   inode and mtime stay as they were, no reload).
3. Unless sync-only: run `check_cmd` with `{{.src}}` replaced by the stage path. A failure
   leaves dest untouched and raises.
4. `os.replace(stage, dest)`. If dest is a bind mount (EBUSY), write dest in place instead.
5. The caller runs `reload_cmd` (once per distinct command per pass; see processor).

A file whose text sets a BGP password is never group- or world-readable, whatever `mode`
says. Commands are user-supplied shell lines run through `libcalico.proc.run_shell`.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import logging
import os
import re
import shlex
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confd.resource import TemplateResource
from libcalico import proc
from libcalico.errors import CalicoError, CommandFailed

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o644
SECRET_MODE_MASK = 0o700
"""Mode bits kept on a file that holds a password: owner only."""
COMMAND_TIMEOUT = 30.0
_PASSWORD_RE = re.compile(r"^\s*password\s", re.MULTILINE)
_PASSWORD_VALUE_RE = re.compile(r'(\bpassword\s+)"[^"\n]*"')
_SRC_RE = re.compile(r"\{\{\s*\.src\s*\}\}")

Shell = Callable[[str], proc.Completed]
"""Runs one user-supplied shell command line; raises CommandFailed on failure."""


_SHELL_SYNTAX = re.compile(r"""[|&;<>()$`\\"'*?\[\]#~=%{}!\n]""")
"""Anything a shell would interpret beyond splitting words at blanks."""


def run_shell(command: str) -> proc.Completed:
    """Run a check_cmd or reload_cmd. A plain command (words only, as `bird -p -c <stage>`)
    is executed directly, which spares the start of a shell on every check; anything else
    goes through /bin/sh -c."""
    if not needs_shell(command):
        return proc.run(command.split(), timeout=COMMAND_TIMEOUT)
    return proc.run_shell(command, timeout=COMMAND_TIMEOUT)


def needs_shell(command: str) -> bool:
    """Does `command` use anything of the shell's syntax (or is it empty)?"""
    return not command.strip() or _SHELL_SYNTAX.search(command) is not None


class SyncError(CalicoError):
    """A resource could not be brought up to date; dest is untouched."""


@dataclass(frozen=True, slots=True)
class Options:
    noop: bool = False
    sync_only: bool = False
    keep_stage_file: bool = False


DEFAULT_OPTIONS = Options()


@dataclass(frozen=True, slots=True)
class FileState:
    """What dest held before a replace, so that a rejected group can be put back."""

    data: bytes
    mode: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class Outcome:
    changed: bool
    """dest was replaced (or, in noop mode, would have been)."""
    diff: str = ""
    """Unified diff (noop mode only)."""
    previous: FileState | None = None
    """dest before it was replaced (None: it did not exist, or nothing changed)."""


def holds_secret(text: str) -> bool:
    """True when the rendered text sets a BGP password."""
    return bool(_PASSWORD_RE.search(text))


def redact(line: str) -> str:
    """A diff line with any BGP password value replaced (noop output is often pasted around)."""
    return _PASSWORD_VALUE_RE.sub(r'\1"<redacted>"', line)


def wanted_mode(res: TemplateResource, text: str) -> int:
    """The mode dest should have: `mode`, else the existing dest's, else 0644; owner-only
    when the text holds a password."""
    mode = res.mode
    if mode is None:
        try:
            mode = stat.S_IMODE(res.dest.stat().st_mode)
        except FileNotFoundError:
            mode = DEFAULT_MODE
    if holds_secret(text):
        mode &= SECRET_MODE_MASK
    return mode


def sync(res: TemplateResource, text: str, options: Options, shell: Shell = run_shell) -> Outcome:
    """Bring `res.dest` to `text`. Raises SyncError (dest untouched) on any failure."""
    data = text.encode()
    mode = wanted_mode(res, text)
    if options.noop:
        return _noop(res, data, mode)
    try:
        res.dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SyncError(f"{res.name}: cannot create {res.dest.parent}: {exc.strerror}") from exc
    if not options.keep_stage_file and _same(res, data, mode):
        # Nothing to do: skip the stage file (and its fsync) altogether.
        log.debug("%s: %s is up to date", res.name, res.dest)
        return Outcome(changed=False)
    stage = _write_stage(res, data, mode, flush=False)
    try:
        if _same(res, data, mode):
            log.debug("%s: %s is up to date", res.name, res.dest)
            return Outcome(changed=False)
        flushing = _Flush(res, stage)  # to disk while check_cmd reads it
        try:
            if not options.sync_only and res.check_cmd:
                try:
                    check(res, stage, shell)
                except CommandFailed as exc:
                    raise SyncError(
                        f"{res.name}: check_cmd failed, {res.dest} left as it was: {_why(exc)}"
                    ) from exc
        finally:
            flushing.wait()
        previous = _state(res.dest)
        _replace(res, stage, data, mode)
        return Outcome(changed=True, previous=previous)
    finally:
        if not options.keep_stage_file:
            with contextlib.suppress(FileNotFoundError):
                stage.unlink()


def check(res: TemplateResource, path: Path, shell: Shell = run_shell) -> None:
    """Run `res.check_cmd` on `path` (a stage file, or dest itself). Raises CommandFailed."""
    shell(_SRC_RE.sub(lambda _: shlex.quote(str(path)), res.check_cmd))


def why(exc: CommandFailed) -> str:
    """A short account of a failed command for a log line."""
    return _why(exc)


def restore(res: TemplateResource, previous: FileState | None) -> None:
    """Put dest back as it was before this pass replaced it (removed if it did not exist)."""
    if previous is None:
        with contextlib.suppress(FileNotFoundError):
            res.dest.unlink()
        return
    put_back = TemplateResource(
        name=res.name, src=res.src, dest=res.dest, prefix=res.prefix, keys=res.keys,
        check_cmd="", reload_cmd="", mode=previous.mode, uid=previous.uid, gid=previous.gid)
    stage = _write_stage(put_back, previous.data, previous.mode)
    try:
        _replace(put_back, stage, previous.data, previous.mode)
    finally:
        with contextlib.suppress(FileNotFoundError):
            stage.unlink()


def reload(name: str, command: str, shell: Shell = run_shell) -> None:
    """Run one reload_cmd. Raises SyncError naming the resource(s)."""
    try:
        shell(command)
    except CommandFailed as exc:
        raise SyncError(f"{name}: reload_cmd failed: {_why(exc)}") from exc


def _noop(res: TemplateResource, data: bytes, mode: int) -> Outcome:
    try:
        old = res.dest.read_bytes()
        st = res.dest.stat()
    except FileNotFoundError:
        old, st = None, None
    lines: list[str] = []
    if old != data:
        lines.extend(
            redact(line)
            for line in difflib.unified_diff(
                (old or b"").decode(errors="replace").splitlines(keepends=True),
                data.decode().splitlines(keepends=True),
                fromfile=str(res.dest) if old is not None else "/dev/null",
                tofile=str(res.dest),
            )
        )
    if st is not None and stat.S_IMODE(st.st_mode) != mode:
        lines.append(f"mode {res.dest}: {stat.S_IMODE(st.st_mode):04o} -> {mode:04o}\n")
    if st is not None and (st.st_uid, st.st_gid) != (res.uid, res.gid):
        lines.append(f"owner {res.dest}: {st.st_uid}:{st.st_gid} -> {res.uid}:{res.gid}\n")
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return Outcome(changed=bool(lines), diff="".join(lines))


class _Flush:
    """fsync a stage file on a helper thread (fsync releases the GIL), so that it overlaps
    check_cmd; `wait()` before the stage file replaces dest."""

    def __init__(self, res: TemplateResource, path: Path) -> None:
        self.res, self.path = res, path
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="confd-fsync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.error = exc

    def wait(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise SyncError(f"{self.res.name}: cannot write stage file {self.path}: "
                            f"{self.error.strerror}")


def _write_stage(res: TemplateResource, data: bytes, mode: int, flush: bool = True) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix="." + res.dest.name, dir=res.dest.parent)
    except OSError as exc:
        raise SyncError(f"{res.name}: cannot create a stage file in {res.dest.parent}: "
                        f"{exc.strerror}") from exc
    stage = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if flush:
                os.fsync(fh.fileno())
        os.chmod(stage, mode)
        st = stage.stat()
        if (st.st_uid, st.st_gid) != (res.uid, res.gid):
            os.chown(stage, res.uid, res.gid)
    except OSError as exc:
        with contextlib.suppress(OSError):
            stage.unlink()
        raise SyncError(f"{res.name}: cannot write stage file {stage}: {exc.strerror}") from exc
    return stage


def _state(path: Path) -> FileState | None:
    try:
        st = path.stat()
        return FileState(path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SyncError(f"cannot read {path}: {exc.strerror}") from exc


def _same(res: TemplateResource, data: bytes, mode: int) -> bool:
    try:
        st = res.dest.stat()
    except FileNotFoundError:
        return False
    if stat.S_IMODE(st.st_mode) != mode or (st.st_uid, st.st_gid) != (res.uid, res.gid):
        return False
    if st.st_size != len(data):
        return False
    try:
        return res.dest.read_bytes() == data
    except OSError:
        return False


def _replace(res: TemplateResource, stage: Path, data: bytes, mode: int) -> None:
    try:
        os.replace(stage, res.dest)
        return
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise SyncError(f"{res.name}: cannot replace {res.dest}: {exc.strerror}") from exc
    # dest is a bind mount: rename over it is impossible, rewrite it in place.
    log.warning("%s: %s is busy (bind mount?), rewriting it in place", res.name, res.dest)
    try:
        fd = os.open(res.dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
        os.chown(res.dest, res.uid, res.gid)
    except OSError as exc:
        raise SyncError(f"{res.name}: cannot write {res.dest}: {exc.strerror}") from exc


def _why(exc: CommandFailed) -> str:
    detail = (exc.stderr or exc.stdout).strip().splitlines()
    tail = " | ".join(detail[-3:])[:500]
    what = exc.reason or f"exit {exc.returncode}"
    return f"{what}: {tail}" if tail else what
