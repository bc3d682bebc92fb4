"""``python -m bench.kills``: a local run killed at random points resumes to the same weights.

Per point (``--points``, default 12): ``stepnet local CONFIG`` (default
``examples/digits-fused.json``, ``--epochs`` 5) starts in a process group of its own with a
fresh ``STEPNET_HOME``; after a random share of an uninterrupted run's wall time the whole group
(the engine and its Lambda sandboxes) gets SIGKILL, as a machine that loses power; then
``stepnet resume RUN_ID`` continues it. Target: every resumed run finishes with the weights of
``stepnet reference``, bit for bit. Writes ``docs/benchmarks/kills.json`` and its section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench import sections
from stepnet.home import HOME_VARIABLE

SECTION: Final = "bench.kills"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _stepnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "stepnet.cli", *args]


def _weights_equal(a: dict[str, np.ndarray], b: Path) -> bool:
    if not b.is_file():
        return False
    with np.load(b) as right:
        return sorted(a) == sorted(right.files) and all(
            np.array_equal(a[k], right[k]) for k in right.files
        )


def _resumed_from(out: Path, run_id: str) -> dict[str, Any] | None:
    """What *Resume run* answered (epoch, version, …), from the resume's execution history."""
    history = out / "executions" / f"{run_id}-resume-1.json"
    if not history.is_file():
        return None
    for event in json.loads(history.read_text()):  # its first task is Resume run
        if details := event.get("taskSucceededEventDetails"):
            payload: dict[str, Any] = json.loads(details["output"])["Payload"]
            return payload
    return None


def kill_and_resume(
    config_path: Path, run_id: str, after_s: float, scratch: Path, env: dict[str, str]
) -> dict[str, Any]:
    """One point: start, SIGKILL the process group after ``after_s`` seconds, resume."""
    started = time.perf_counter()
    process = subprocess.Popen(
        _stepnet("local", str(config_path), "--out", str(scratch / "killed")),
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        process.wait(timeout=after_s)
        finished_first = True  # the run ended before the kill: nothing to resume
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        finished_first = False
    killed_at = time.perf_counter() - started
    resumed = subprocess.run(
        _stepnet("resume", run_id, "--out", str(scratch / "resumed")),
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return {
        "kill_after_s": round(after_s, 2),
        "killed_at_s": round(killed_at, 2),
        "finished_before_kill": finished_first,
        "resume_exit": resumed.returncode,
        "resume_output": resumed.stdout[-400:] if resumed.returncode else "",
        "resumed_from": _resumed_from(scratch / "resumed", run_id),
        "seconds_to_resume": round(time.perf_counter() - started - killed_at, 2),
    }


def measure(
    config_path: Path, points: int, epochs: int | None, seed: int, scratch: Path, log: Any
) -> dict[str, Any]:
    from stepnet.reference import train, write_outputs
    from trainer.config import parse_config

    document = json.loads(config_path.read_text()) | ({"epochs": epochs} if epochs else {})
    config_file = scratch / "config.json"
    config_file.write_text(json.dumps(document))
    config = parse_config(document)
    write_outputs(scratch / "reference", train(config), config.run_id)
    with np.load(scratch / "reference" / "model.npz") as loaded:
        reference = {k: loaded[k] for k in loaded.files}

    # an uninterrupted run, for the span the kills are drawn from
    env = os.environ | {HOME_VARIABLE: str(scratch / "home-whole")}
    started = time.perf_counter()
    subprocess.run(
        _stepnet("local", str(config_file), "--out", str(scratch / "whole")),
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    whole_s = time.perf_counter() - started
    log(f"  uninterrupted run: {whole_s:.1f} s")

    draw = random.Random(seed)
    rows = []
    for index in range(points):
        after = draw.uniform(0.1, 0.95) * whole_s
        point = scratch / f"point-{index:02d}"
        env = os.environ | {HOME_VARIABLE: str(point / "home")}
        row = kill_and_resume(config_file, config.run_id, after, point, env)
        row["weights_equal_reference"] = _weights_equal(
            reference,
            point / ("killed" if row["finished_before_kill"] else "resumed") / "model.npz",
        )
        row["load_before"] = os.getloadavg()[0]
        rows.append(row)
        where = row["resumed_from"] or {}
        log(
            f"    point {index + 1}: killed at {row['killed_at_s']:.1f} s, resumed at epoch "
            f"{where.get('epoch', '?')} version {where.get('version', '?')}: "
            f"{'equal' if row['weights_equal_reference'] else 'DIFFERENT'}"
        )
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": sections.checkout_commit(),
        "config": config_path.name,
        "epochs": config.epochs,
        "mode": config.mode,
        "uninterrupted_seconds": round(whole_s, 1),
        "points": rows,
        "met": all(row["weights_equal_reference"] for row in rows)
        and sum(not row["finished_before_kill"] for row in rows) >= min(points, 10),
    }


def render(result: dict[str, Any]) -> str:
    begin, end = sections.markers(SECTION)
    rows = result["points"]
    killed = [row for row in rows if not row["finished_before_kill"]]
    equal = sum(row["weights_equal_reference"] for row in killed)
    versions = sorted(
        row["resumed_from"]["version"] for row in killed if row["resumed_from"] is not None
    )
    return (
        "\n".join(
            [
                begin,
                "## Killed and resumed (`python -m bench.kills`)",
                "",
                f"`{result['config']}` ({result['epochs']} epochs, {result['mode']}; "
                f"{result['uninterrupted_seconds']:.0f} s uninterrupted), generated "
                f"{result['generated']} at commit {result['commit']}: `stepnet local` killed "
                f"with SIGKILL (the engine and its sandboxes, one process group) at {len(killed)} "
                f"random points, then `stepnet resume`: **{equal} of {len(killed)} resumed runs "
                "ended with the reference's weights bit for bit** (target: all, at 10 points or "
                "more). They continued from weights versions "
                + ", ".join(str(v) for v in versions)
                + ".",
                "",
                end,
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kills", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", default=str(EXAMPLES / "digits-fused.json"))
    parser.add_argument("--points", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run (0: the config's)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill times")
    parser.add_argument("--out", default="docs", help="docs folder (default: docs)")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="stepnet-kills-") as scratch:
        result = measure(
            Path(args.config).resolve(), args.points, args.epochs, args.seed, Path(scratch), log
        )
    out = Path(args.out)
    (out / "benchmarks").mkdir(parents=True, exist_ok=True)
    (out / "benchmarks" / "kills.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = out / "benchmarks.md"
    document = markdown.read_text() if markdown.is_file() else "# Benchmarks\n"
    markdown.write_text(sections.splice(document, SECTION, render(result)))
    log(f"{'met' if result['met'] else 'NOT met'}; wrote {out / 'benchmarks' / 'kills.json'}")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
