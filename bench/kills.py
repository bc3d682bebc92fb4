"""``python -m bench.kills``: a local run killed at random points resumes to the same weights.

Per point (``--points``, default 12): ``stepnet local CONFIG`` (default
``examples/digits-fused.json``, ``--epochs`` 5) starts in a process group of its own with a
fresh ``STEPNET_HOME``; once a random weights version of the run is complete in the home (drawn
from all of the run's, or "as soon as the run is recorded"), and a random share of a step's
time later, the whole group (the engine and its Lambda sandboxes) gets SIGKILL, as a machine
that loses power; then ``stepnet resume RUN_ID`` continues it. Target: every resumed run finishes with the weights of
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
from stepnet.home import HOME_VARIABLE, open_home
from stepnet.home.database import DATABASE_FILE
from trainer.store import RunNotFoundError

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


def _stopped_state(home: Path, run_id: str) -> str:
    """What the home holds of the killed run: ``SUCCEEDED`` (it finished before the kill),
    ``PREPARING`` (killed before its dataset was recorded: the resume starts it again),
    ``TRAINING`` (the resume continues it), or ``NONE`` (killed before it was recorded)."""
    if not (home / DATABASE_FILE).exists():
        return "NONE"
    store = open_home(home)
    if run_id not in store.runs.list_runs():
        return "NONE"
    try:
        if store.runs.get_status(run_id)["status"] == "SUCCEEDED":
            return "SUCCEEDED"
        store.runs.get_dataset_info(run_id)
    except RunNotFoundError:
        return "PREPARING"
    return "TRAINING"


def _reached(home: Path, run_id: str, version: int | None) -> bool:
    """Whether the run is recorded in ``home`` and, unless ``version`` is None, its weights
    ``version`` is complete (read while the run writes: SQLite's WAL lets readers in)."""
    if not (home / DATABASE_FILE).exists():
        return False
    store = open_home(home)
    if run_id not in store.runs.list_runs():
        return False
    return version is None or (store.latest_complete_version(run_id) or 0) >= version


def kill_and_resume(
    config_path: Path,
    run_id: str,
    version: int | None,
    delay_s: float,
    scratch: Path,
    env: dict[str, str],
) -> dict[str, Any]:
    """One point: start, SIGKILL the process group ``delay_s`` after weights ``version`` is
    complete (None: after the run is recorded), then what a user does next: ``stepnet resume``,
    or for a run that finished (or was never recorded) the same ``stepnet local`` again (which
    reports the finished run and copies its model)."""
    home = Path(env[HOME_VARIABLE])
    started = time.perf_counter()
    process = subprocess.Popen(
        _stepnet("local", str(config_path), "--out", str(scratch / "killed")),
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while process.poll() is None and not _reached(home, run_id, version):
        time.sleep(0.01)
    time.sleep(delay_s)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = time.perf_counter() - started
    state = _stopped_state(Path(env[HOME_VARIABLE]), run_id)
    again = (
        _stepnet("resume", run_id, "--out", str(scratch / "resumed"))
        if state in ("PREPARING", "TRAINING")
        else _stepnet("local", str(config_path), "--out", str(scratch / "resumed"))
    )
    resumed = subprocess.run(again, env=env, capture_output=True, text=True, check=False)
    return {
        "kill_after_version": version,
        "kill_delay_s": round(delay_s, 3),
        "killed_at_s": round(killed_at, 2),
        "state_at_kill": state,
        "finished_before_kill": state == "SUCCEEDED",
        "then": again[3],
        "exit": resumed.returncode,
        "output": resumed.stdout[-400:] if resumed.returncode else "",
        "resumed_from": _resumed_from(scratch / "resumed", run_id),
        "seconds_after_kill": round(time.perf_counter() - started - killed_at, 2),
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

    # an uninterrupted run: its time per step bounds the delays the kills are drawn with
    env = os.environ | {HOME_VARIABLE: str(scratch / "home-whole")}
    started = time.perf_counter()
    subprocess.run(
        _stepnet("local", str(config_file), "--out", str(scratch / "whole")),
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    whole_s = time.perf_counter() - started
    versions = open_home(scratch / "home-whole").latest_complete_version(config.run_id) or 1
    step_s = whole_s / versions
    log(f"  uninterrupted run: {whole_s:.1f} s, {versions} weights versions")

    draw = random.Random(seed)
    rows = []
    for index in range(points):
        # one point in six as soon as the run is recorded (before or while its data is
        # prepared), the others after a random version, a random share of a step later
        version = None if draw.random() < 1 / 6 else draw.randrange(versions)
        delay = draw.uniform(0.0, step_s)
        point = scratch / f"point-{index:02d}"
        env = os.environ | {HOME_VARIABLE: str(point / "home")}
        row = kill_and_resume(config_file, config.run_id, version, delay, point, env)
        row["weights_equal_reference"] = _weights_equal(reference, point / "resumed" / "model.npz")
        row["load_before"] = os.getloadavg()[0]
        rows.append(row)
        where = row["resumed_from"] or {}
        log(
            f"    point {index + 1}: killed at {row['killed_at_s']:.1f} s ({row['state_at_kill']}), "
            f"then stepnet {row['then']} from epoch {where.get('epoch', '-')} version "
            f"{where.get('version', '-')}: "
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
    restarted = sum(row["state_at_kill"] in ("PREPARING", "NONE") for row in killed)
    finished = len(rows) - len(killed)
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
                + f"; {restarted} had been killed before their dataset was prepared and started "
                f"again. {finished} point(s) fell after the run had finished: `stepnet local` "
                "again reported it and copied its model (counted apart).",
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
    written = sections.publish(Path(args.out), "kills", result, render(result))
    log(f"{'met' if result['met'] else 'NOT met'}; wrote {written}")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
