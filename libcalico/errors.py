"""One error hierarchy for the whole project.

    CalicoError
     ├── ValidationError          bad input from a user or the datastore (surface it; never retry)
     │    └── FieldError-carrying: .errors is a tuple of FieldError(path, reason)
     ├── DatastoreError           anything the datastore said or failed to say
     │    ├── NotFound            key or resource does not exist
     │    ├── AlreadyExists       create of a key that exists
     │    ├── Conflict            compare-and-swap lost (stale revision): re-read and retry
     │    ├── Compacted           a watch asked for changes the store no longer has: relist
     │    └── Unavailable         the datastore cannot be reached now (transient)
     ├── CommandFailed            a subprocess exited non-zero or timed out (libcalico.proc)
     └── ConfigError              configuration (files, environment) is unusable

Third-party exceptions are translated into these at one boundary per library
(`raise X(...) from exc`). Only `__main__` modules turn them into exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass


class CalicoError(Exception):
    """Root of every error this project raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field: `path` is dotted (`spec.cidr`, `spec.peers[2].ip`)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class ValidationError(CalicoError):
    """Input rejected. `errors` names each field and why; `document` names the document."""

    def __init__(
        self, errors: list[FieldError] | tuple[FieldError, ...] | str, document: str = ""
    ) -> None:
        if isinstance(errors, str):
            errors = (FieldError("", errors),)
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.document = document
        super().__init__(self._message())

    def _message(self) -> str:
        body = "; ".join(str(e) for e in self.errors)
        return f"{self.document}: {body}" if self.document else body

    def with_document(self, document: str) -> ValidationError:
        return ValidationError(self.errors, document)


class ConfigError(CalicoError):
    """A configuration file or environment variable is unusable."""


class DatastoreError(CalicoError):
    """The datastore refused or failed an operation."""


class NotFound(DatastoreError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"resource does not exist: {key}")


class AlreadyExists(DatastoreError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"resource already exists: {key}")


class Conflict(DatastoreError):
    """A compare-and-swap lost: the revision given is no longer the key's revision."""

    def __init__(self, key: str, revision: str | None = None) -> None:
        self.key = key
        self.revision = revision
        super().__init__(
            f"update conflict: {key} (revision {revision} is stale)"
            if revision is not None
            else f"update conflict: {key}"
        )


class Compacted(DatastoreError):
    """The changes after a watch's revision are gone (etcd compaction, Kubernetes 410 Gone);
    the caller must list again. `revision` is the one the watch was to start after."""

    def __init__(self, revision: str, compact_revision: str = "") -> None:
        self.revision = revision
        self.compact_revision = compact_revision
        since = f" (compacted up to {compact_revision})" if compact_revision else ""
        super().__init__(f"changes after revision {revision} are no longer available{since}")


class Unavailable(DatastoreError):
    """The datastore cannot be reached now; the operation may be retried."""


class CommandFailed(CalicoError):
    """A subprocess failed. Carries everything needed to diagnose it, truncated for display."""

    def __init__(
        self,
        argv: list[str] | tuple[str, ...],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        input: str | None = None,
        reason: str = "",
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.input = input
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        what = self.reason or f"exited {self.returncode}"
        msg = f"command {' '.join(self.argv)!s:.200} {what}"
        if self.stderr.strip():
            msg += f": {_truncate(self.stderr.strip(), 1000)}"
        elif self.stdout.strip():
            msg += f": {_truncate(self.stdout.strip(), 1000)}"
        return msg


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more chars)"
