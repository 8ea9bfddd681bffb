"""The one subprocess wrapper: an argv list, no shell, a mandatory timeout.

Failure raises `CommandFailed` carrying argv, return code, stdout, stderr and input.
The only shell use in the project is confd's user-supplied check_cmd/reload_cmd, which go
through `run_shell` so that the exception is still ours.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from libcalico.errors import CommandFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """What code that runs commands depends on; tests inject a fake."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        input: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Completed: ...


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    input: str | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Run `argv` and return its output. Raises CommandFailed on non-zero exit (if `check`),
    on timeout, and when the program cannot be started."""
    args = tuple(argv)
    try:
        cp = subprocess.run(
            args,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(
            args, None, _text(exc.stdout), _text(exc.stderr), input,
            reason=f"timed out after {timeout}s",
        ) from exc
    except OSError as exc:
        raise CommandFailed(args, None, "", str(exc), input, reason="could not start") from exc
    done = Completed(args, cp.returncode, cp.stdout, cp.stderr)
    if check and cp.returncode != 0:
        raise CommandFailed(args, cp.returncode, cp.stdout, cp.stderr, input)
    log.debug("ran %s rc=%d", args[0], cp.returncode)
    return done


def run_shell(command: str, *, timeout: float, check: bool = True) -> Completed:
    """Run a user-supplied shell command line (confd check_cmd / reload_cmd)."""
    return run(["/bin/sh", "-c", command], timeout=timeout, check=check)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
