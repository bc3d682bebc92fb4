"""``python -m bench.demo``: how long ``make demo`` trains, as a user runs it.

``stepnet local examples/digits.json`` (digits, 20 epochs, per_layer) in a fresh
``STEPNET_HOME``, with each function in worker processes (the default, as ``make demo`` runs
it) and with ``--isolation threads``; the CLI's own summary line gives the training's wall time
and the Lambda tasks it ran. Target (issue 12): ``make demo`` trains in 15 s or less, the
engine's time per task 2 ms or less. Writes ``docs/benchmarks/demo.json`` and its section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench import sections
from stepnet.home import HOME_VARIABLE

SECTION: Final = "bench.demo"
EXAMPLE: Final = Path(__file__).resolve().parents[1] / "examples" / "digits.json"
TARGET_SECONDS: Final = 15.0
TARGET_MS_PER_TASK: Final = 2.0
# "4807 Lambda tasks in 24.0 s (5.0 ms per task; …": stepnet local's summary line
_SUMMARY: Final = re.compile(r"([\d,]+) Lambda tasks in ([\d.]+) s \(([\d.]+) ms per task")


def train(isolation: str, scratch: Path) -> dict[str, Any]:
    """One ``stepnet local`` of the example with ``isolation``, in a home of its own."""
    env = os.environ | {HOME_VARIABLE: str(scratch / f"home-{isolation}")}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stepnet.cli", "local", str(EXAMPLE), "--isolation", isolation,
         "--out", str(scratch / isolation)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    found = _SUMMARY.search(" ".join(done.stdout.split()))
    if found is None:
        raise RuntimeError(f"no summary line in stepnet local's output:\n{done.stdout[-2000:]}")
    return {
        "isolation": isolation,
        "tasks": int(found.group(1).replace(",", "")),
        "training_seconds": float(found.group(2)),
        "ms_per_task": float(found.group(3)),
        "command_seconds": round(wall, 1),
        "load_before": round(load, 1),
    }


def measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stepnet-demo-") as scratch:
        rows = [train(isolation, Path(scratch)) for isolation in ("processes", "threads")]
    demo = rows[0]
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": sections.checkout_commit(),
        "runs": rows,
        "met": demo["training_seconds"] <= TARGET_SECONDS
        and demo["ms_per_task"] <= TARGET_MS_PER_TASK,
    }


def render(result: dict[str, Any]) -> str:
    begin, end = sections.markers(SECTION)
    lines = [
        begin,
        "## `make demo` (`python -m bench.demo`)",
        "",
        f"`stepnet local examples/digits.json` (20 epochs, per_layer) in a fresh home, "
        f"generated {result['generated']} at commit {result['commit']}; targets: training "
        f"≤ {TARGET_SECONDS:g} s, ≤ {TARGET_MS_PER_TASK:g} ms per Lambda task.",
        "",
        "| isolation | Lambda tasks | training s | ms per task | command s | load before |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["runs"]:
        lines.append(
            f"| {row['isolation']}{' (make demo)' if row['isolation'] == 'processes' else ''} "
            f"| {row['tasks']:,} | {row['training_seconds']:.1f} | {row['ms_per_task']:.1f} "
            f"| {row['command_seconds']:.1f} | {row['load_before']:.1f} |"
        )
    lines += ["", f"Targets {'met' if result['met'] else '**not met**'}.", "", end]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", default="docs", help="docs folder (default: docs)")
    args = parser.parse_args(argv)
    result = measure()
    written = sections.publish(Path(args.out), "demo", result, render(result))
    print(f"{'met' if result['met'] else 'NOT met'}; wrote {written}", flush=True)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
