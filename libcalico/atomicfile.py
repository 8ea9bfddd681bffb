"""Files that readers see whole or not at all: written to a temporary file beside the target,
then renamed over it (on failure the temporary file is removed and the target untouched)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text(path: Path, text: str, *, prefix: str = ".tmp-", mode: int = 0o644) -> None:
    """Replace `path` with `text` atomically (its directory made if missing), mode `mode`;
    the temporary file is `<prefix><random>` in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
