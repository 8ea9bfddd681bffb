"""Plumbing for the demo: namespaces, veths, bridges, processes, all tracked for teardown.

Every kernel object lives inside namespaces named `<prefix>-…`; the root namespace gets no
interface, route or rule. `Lab.close()` removes everything it made, in reverse order, even
after a failure, and `sweep(prefix)` removes what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from libcalico import proc
from libcalico.relay import NETNS_DIR as NETNS_DIR  # re-exported: one relay (libcalico.relay)
from libcalico.relay import Relay as Relay
from libcalico.relay import socket_in_netns as socket_in_netns

log = logging.getLogger(__name__)

MOUNTPOINTS = ("/etc/calico", "/var/run/calico", "/var/lib/calico")
MOUNTPOINT_LEDGER = Path("/run/calico-py-demo-mountpoints")
"""Directories demos and tests created as mountpoints: shared by concurrent runs, so that the
last one to finish removes them (a directory still mounted anywhere is never removed)."""


def ip(*args: str, ns: str | None = None, timeout: float = 30, check: bool = True) -> str:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    return proc.run(argv, timeout=timeout, check=check).stdout


def ip_batch(lines: Sequence[str], ns: str | None = None) -> None:
    if lines:
        proc.run(["ip", *(["-n", ns] if ns else []), "-batch", "-"], input="\n".join(lines) + "\n",
                 timeout=60)


def in_ns(ns: str, *argv: str, timeout: float = 30, check: bool = True,
          env: Mapping[str, str] | None = None) -> proc.Completed:
    return proc.run(["ip", "netns", "exec", ns, *argv], timeout=timeout, check=check, env=env)


def mounted_anywhere(path: str) -> bool:
    """Whether any process's mount namespace has something mounted on `path`."""
    real = os.path.realpath(path)
    for info in Path("/proc").glob("[0-9]*/mountinfo"):
        try:
            text = info.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            fields = line.split(" ", 5)
            if len(fields) > 4 and fields[4] in (path, real):
                return True
    return False


@contextlib.contextmanager
def _ledger() -> Iterator[list[str]]:
    """The shared list of mountpoints made by demos, under an exclusive lock."""
    while True:
        f = open(MOUNTPOINT_LEDGER, "a+")  # noqa: SIM115 - closed below
        fcntl.flock(f, fcntl.LOCK_EX)
        if os.fstat(f.fileno()).st_nlink > 0:  # not unlinked by the previous holder
            break
        f.close()
    with f:
        f.seek(0)
        entries = [ln for ln in f.read().splitlines() if ln]
        yield entries
        f.seek(0)
        f.truncate()
        f.write("".join(e + "\n" for e in entries))
        if not entries:
            MOUNTPOINT_LEDGER.unlink(missing_ok=True)


def delete_netns(name: str) -> None:
    pids = ip("netns", "pids", name, check=False).split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = ip("netns", "pids", name, check=False).split()
        time.sleep(0.05)
    ip("netns", "del", name, check=False)


def sweep(prefix: str) -> list[str]:
    """Remove every namespace whose name starts with `prefix` (a killed run's leftovers)."""
    gone = []
    if NETNS_DIR.is_dir():
        for entry in sorted(NETNS_DIR.iterdir()):
            if entry.name.startswith(prefix):
                delete_netns(entry.name)
                gone.append(entry.name)
    return gone


class Lab:
    """Owns what the demo (or a test) makes: namespaces, processes, directories, mountpoints."""

    def __init__(self, prefix: str, workdir: Path) -> None:
        self.prefix = prefix
        self.workdir = workdir
        self.namespaces: list[str] = []
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.cleanups: list[Callable[[], None]] = []
        self.made_dirs: list[Path] = []

    def ns(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("link", "set", "lo", "up", ns=name)
        return name

    def drop_ns(self, name: str) -> None:
        delete_netns(name)
        if name in self.namespaces:
            self.namespaces.remove(name)

    def spawn(self, name: str, argv: Sequence[str], log_name: str,
              env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        logf = self.workdir / "logs" / f"{log_name}.log"
        logf.parent.mkdir(parents=True, exist_ok=True)
        with open(logf, "ab") as out:
            p = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=dict(env) if env else None,
                                 start_new_session=True)
        self.procs.append((name, p))
        return p

    def stop(self, p: subprocess.Popen[bytes], timeout: float = 15) -> None:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        # children that left the group (none should) die with their namespace

    def ensure_mountpoints(self) -> None:
        """calico-node's fixed paths must exist as mountpoints for the per-node bind mounts.
        Those this machine lacks are created and recorded in the shared ledger."""
        with _ledger() as made:
            for m in MOUNTPOINTS:
                path = Path(m)
                if not path.exists():
                    missing = [path]
                    while not missing[-1].parent.exists():
                        missing.append(missing[-1].parent)
                    path.mkdir(parents=True)
                    made += [str(p) for p in missing if str(p) not in made]
                if m in made:
                    self.made_dirs.append(path)

    def release_mountpoints(self) -> None:
        """Remove the recorded mountpoints nobody uses any more (empty, mounted nowhere)."""
        if not self.made_dirs:
            return
        with _ledger() as made:
            for d in list(made):
                if mounted_anywhere(d):
                    continue
                try:
                    Path(d).rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
                made.remove(d)
        self.made_dirs.clear()

    def close(self) -> None:
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        self.cleanups.clear()
        for _, p in reversed(self.procs):
            with contextlib.suppress(Exception):
                self.stop(p, timeout=10)
        for name in reversed(self.namespaces):
            delete_netns(name)
        self.namespaces.clear()
        with contextlib.suppress(OSError):
            self.release_mountpoints()
        shutil.rmtree(self.workdir, ignore_errors=True)
