"""``python -m bench.faults``: runs through random transient faults finish with the same weights.

``--runs`` runs (default 20) of ``--config`` (default ``examples/digits-fused.json``, ``--epochs``
5 of its 20 to keep the sweep to minutes) on the local
engine, each in a fresh emulated account with ``--inject-faults RATE`` (default 0.1: a tenth of
all Lambda invocations fail at random, with Lambda service errors or lost responses,
``stepnet.engine.runtime.LambdaRuntime.inject_faults``), against one ``stepnet reference`` run.
Target: every run finishes with the reference's weights, bit for bit. Writes
``docs/benchmarks/faults.json`` and its section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench import sections

SECTION: Final = "bench.faults"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _weights_equal(a: dict[str, np.ndarray], b: Path) -> bool:
    with np.load(b) as right:
        return sorted(a) == sorted(right.files) and all(
            np.array_equal(a[k], right[k]) for k in right.files
        )


def measure(
    config_path: Path, runs: int, rate: float, epochs: int | None, scratch: Path, log: Any
) -> dict[str, Any]:
    from stepnet.local import run_local
    from stepnet.reference import train, write_outputs
    from trainer.config import parse_config

    document = json.loads(config_path.read_text())
    config = parse_config(document | ({"epochs": epochs} if epochs else {}))
    reference_dir = scratch / "reference"
    write_outputs(reference_dir, train(config), config.run_id)
    with np.load(reference_dir / "model.npz") as loaded:
        reference = {k: loaded[k] for k in loaded.files}
    rows = []
    for index in range(runs):
        load = os.getloadavg()[0]
        started = time.perf_counter()
        run = run_local(config, scratch / f"run-{index:02d}", inject_faults=rate)
        seconds = time.perf_counter() - started
        equal = run.succeeded and _weights_equal(
            reference, scratch / f"run-{index:02d}" / "model.npz"
        )
        rows.append(
            {
                "run": index + 1,
                "succeeded": run.succeeded,
                "weights_equal_reference": equal,
                "invocations": sum(run.invocations.values()),
                "faults": dict(sorted(run.faults.items())),
                "seconds": seconds,
                "load_before": load,
            }
        )
        log(
            f"    run {index + 1}: {'ok' if equal else 'DIFFERENT'}, {sum(run.faults.values())} faults, {seconds:.0f} s"
        )
    faults: Counter[str] = Counter()
    for row in rows:
        faults.update(row["faults"])
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": sections.checkout_commit(),
        "config": str(config_path.relative_to(EXAMPLES.parent))
        if config_path.is_relative_to(EXAMPLES.parent)
        else config_path.name,
        "epochs": config.epochs,
        "mode": config.mode,
        "rate": rate,
        "runs": rows,
        "faults": dict(sorted(faults.items())),
        "met": all(row["weights_equal_reference"] for row in rows),
    }


def render(result: dict[str, Any]) -> str:
    begin, end = sections.markers(SECTION)
    rows = result["runs"]
    finished = sum(row["succeeded"] for row in rows)
    equal = sum(row["weights_equal_reference"] for row in rows)
    invocations = sum(row["invocations"] for row in rows)
    injected = sum(result["faults"].values())
    seconds = [row["seconds"] for row in rows]
    return (
        "\n".join(
            [
                begin,
                "## Through random faults (`python -m bench.faults`)",
                "",
                f"{len(rows)} runs of `{result['config']}` ({result['epochs']} epochs, "
                f"{result['mode']}) on the local engine with `--inject-faults {result['rate']:g}`, "
                f"generated {result['generated']} at commit {result['commit']}: **{finished} of "
                f"{len(rows)} finished, {equal} with the reference's weights bit for bit** "
                f"(target: all). {injected:,} of {invocations:,} invocations failed at random ("
                + ", ".join(f"{error} {n:,}" for error, n in result["faults"].items())
                + f"), each retried by the workflow. Wall time per run {min(seconds):.0f}–"
                f"{max(seconds):.0f} s (retries wait 2 s and more, with jitter).",
                "",
                end,
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", default=str(EXAMPLES / "digits-fused.json"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run (0: the config's)")
    parser.add_argument("--out", default="docs", help="docs folder (default: docs)")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="stepnet-faults-") as scratch:
        result = measure(
            Path(args.config).resolve(), args.runs, args.rate, args.epochs, Path(scratch), log
        )
    written = sections.publish(Path(args.out), "faults", result, render(result))
    log(f"{'met' if result['met'] else 'NOT met'}; wrote {written}")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
