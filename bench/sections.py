"""Sections of docs/benchmarks.md that a benchmark of its own writes and ``python -m bench``
keeps when it rewrites the page: ``<!-- bench.NAME: begin -->`` … ``<!-- bench.NAME: end -->``."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any, Final

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


def publish(out: Path, name: str, result: dict[str, Any], section: str) -> Path:
    """Write ``result`` to ``out/benchmarks/<name>.json`` and splice ``section`` (its markers
    included) into ``out/benchmarks.md`` as section ``bench.<name>``; returns the JSON's path."""
    (out / "benchmarks").mkdir(parents=True, exist_ok=True)
    path = out / "benchmarks" / f"{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    markdown = out / "benchmarks.md"
    document = markdown.read_text() if markdown.is_file() else "# Benchmarks\n"
    markdown.write_text(splice(document, f"bench.{name}", section))
    return path
