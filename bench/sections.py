"""Sections of docs/benchmarks.md that a benchmark of its own writes and ``python -m bench``
keeps when it rewrites the page: ``<!-- bench.NAME: begin -->`` … ``<!-- bench.NAME: end -->``."""

from __future__ import annotations

import functools
import re
import subprocess
from typing import Final

_SECTION: Final = re.compile(r"<!-- (bench\.[\w.]+): begin -->.*?<!-- \1: end -->\n?", re.DOTALL)


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of section ``name`` (e.g. ``bench.large``)."""
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def splice(document: str, name: str, section: str) -> str:
    """``document`` with section ``name`` replaced by ``section`` (which carries its markers),
    or ``section`` appended if the document has none."""
    begin, end = markers(name)
    if begin in document and end in document:
        head, _, rest = document.partition(begin)
        _, _, tail = rest.partition(end)
        return head + section.rstrip("\n") + tail
    return document.rstrip("\n") + "\n\n" + section


def kept(document: str) -> str:
    """Every marked section of ``document``, in order ("" if none)."""
    return "\n".join(match.group(0).rstrip("\n") + "\n" for match in _SECTION.finditer(document))


def checkout_commit() -> str:
    """The checkout's commit (and whether tracked files differ from it), for the record."""
    run = functools.partial(subprocess.run, capture_output=True, text=True, check=False)
    head = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip() or "unknown"
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    return f"{head}{' (modified)' if dirty else ''}"
