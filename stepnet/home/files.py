"""Files of the home, written atomically: a temporary file in the same folder, then a rename.

A reader sees the old file or the new one, never a part: ``os.replace`` is atomic on POSIX, and
a writer killed before it leaves only a temporary file (``.tmp-*``, swept by
:func:`sweep_temporaries`). Paths are checked to stay inside their root.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Final

TEMPORARY_PREFIX: Final = ".tmp-"
STALE_TEMPORARY_SECONDS: Final = 3600.0  # a temporary this old belongs to a dead writer


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing a path that would leave ``root`` (``..``, absolute)."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]):
        raise ValueError(f"not a relative path inside the home: {relative!r}")
    if parts[-1] in ("", ".", ".."):
        raise ValueError(f"not a file name: {relative!r}")
    return root.joinpath(*parts)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: whole, or not at all (the previous file, if any, stays)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{uuid.uuid4().hex}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def sweep_temporaries(root: Path, older_than_s: float = STALE_TEMPORARY_SECONDS) -> int:
    """Remove the temporary files killed writers left under ``root``; returns how many."""
    if not root.is_dir():
        return 0
    limit = time.time() - older_than_s
    removed = 0
    for path in root.rglob(f"{TEMPORARY_PREFIX}*"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed
