"""``make bench``: how long an epoch takes and what it costs, for three workloads.

For each workload (see :mod:`bench.workloads`), in one run on one machine: the wall time
per epoch of ``stepnet local`` (per_layer, fused and per_step), of the reference trainer, of
scikit-learn's MLPClassifier and of PyTorch on the CPU, their ratios to the reference and their
final validation accuracy; the local engine's cost per Lambda task and a CPU profile; per epoch
the metered state transitions, Lambda invocations and GB-seconds, DynamoDB request units and S3
requests (:mod:`stepnet.billing.meter`); and dollars per epoch on AWS by design
(:mod:`stepnet.billing.bills`, with :mod:`stepnet.billing.estimate`'s model next to them).

Writes ``docs/benchmarks/<workload>.json``, ``docs/benchmarks/benchmarks.png`` and
``docs/benchmarks.md``. ``--quick`` shrinks every workload for a smoke run and writes to
``out/bench-quick`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import sections
from bench.baselines import run_reference, run_sklearn, run_torch, torch_version
from bench.engine import measure_local
from bench.report import plot, render_markdown, write_json
from bench.workloads import Workload, workloads
from stepnet.billing import bills, prices
from stepnet.billing import estimate as cost
from stepnet.billing.report import usd
from stepnet.billing.usage import FUNCTION_MEMORY_MB
from trainer.config import RunConfig, parse_config
from trainer.contract import workflow

TARGET_MS_PER_TASK = 2.0
TARGET_FASTEST_RATIO = 1.5
TARGET_PER_LAYER_RATIO = 5.0
TARGET_USD_PER_EPOCH = 0.005
TARGET_PER_LAYER_USD_PER_EPOCH = 0.03
TARGET_TRANSITION_REDUCTION = 10.0
MODES = workflow.MODES


def machine() -> dict[str, Any]:
    import moto
    import numpy
    import sklearn

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
        "torch": torch_version(),
        "moto": moto.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _local_config(
    document: dict[str, Any], mode: str, epochs: int | None, block_rows: int | None = None
) -> RunConfig:
    changes: dict[str, Any] = {
        "mode": mode,
        "run_id": f"{document['run_id']}-{mode.replace('_', '-')}"
        + (f"-blocks{block_rows}" if block_rows else ""),
    }
    if epochs is not None:
        changes["epochs"] = epochs
    if block_rows is not None:
        changes["dataset"] = document["dataset"] | {"block_rows": block_rows}
    return parse_config(document | changes)


def ways(config: RunConfig) -> dict[str, dict[str, Any]]:
    """The ways to run ``config`` that ``stepnet cost`` lists (``stepnet.billing.estimate.
    ways_to_run``), by key: each mode as configured, and with blocks of a batch if larger."""
    found: dict[str, dict[str, Any]] = {mode: {"mode": mode} for mode in MODES}
    variant = cost.larger_blocks(config)
    if variant is not None:
        for mode in MODES:
            found[f"{mode}_blocks"] = {"mode": mode, "dataset": {"block_rows": variant.block_rows}}
    return found


def _targets(systems: dict[str, Any], aws: dict[str, Any]) -> list[dict[str, Any]]:
    reference = systems["reference"]["epoch_seconds"]
    per_layer = systems["local_per_layer"]
    ratios = {m: systems[f"local_{m}"]["epoch_seconds"] / reference for m in MODES}
    fastest = min(ratios, key=lambda m: ratios[m])
    totals = {way: aws["bill_totals"][f"standard:{way}"] for way in aws["ways"]}
    cheapest = min(totals, key=lambda w: totals[w])
    layered = min((w for w in totals if w.startswith("per_layer")), key=lambda w: totals[w])
    on_standard = aws["per_layer"]["all_transitions_per_example"]
    billed = aws[cheapest]["transitions_per_example"]
    ms = {m: systems[f"local_{m}"]["ms_per_task"] for m in MODES}
    return [
        {
            "target": f"local engine ≤ {TARGET_MS_PER_TASK:g} ms per Lambda task",
            "value": ", ".join(f"{m} {ms[m]:.1f} ms" for m in MODES),
            "met": max(ms.values()) <= TARGET_MS_PER_TASK,
        },
        {
            "target": f"stepnet local ≤ {TARGET_FASTEST_RATIO:g}× reference, fastest mode",
            "value": f"{fastest} {ratios[fastest]:,.1f}×",
            "met": ratios[fastest] <= TARGET_FASTEST_RATIO,
        },
        {
            "target": f"stepnet local ≤ {TARGET_PER_LAYER_RATIO:g}× reference, per_layer",
            "value": f"{ratios['per_layer']:,.1f}×"
            + (" (extrapolated)" if per_layer.get("extrapolated") else ""),
            "met": ratios["per_layer"] <= TARGET_PER_LAYER_RATIO,
        },
        {
            "target": f"AWS ≤ ${TARGET_USD_PER_EPOCH:g} per epoch, cheapest way",
            "value": f"{json.dumps(aws['ways'][cheapest])} {usd(totals[cheapest])}",
            "met": totals[cheapest] <= TARGET_USD_PER_EPOCH,
        },
        {
            "target": f"AWS ≤ ${TARGET_PER_LAYER_USD_PER_EPOCH:g} per epoch, per_layer",
            "value": f"{json.dumps(aws['ways'][layered])} {usd(totals[layered])}",
            "met": totals[layered] <= TARGET_PER_LAYER_USD_PER_EPOCH,
        },
        {
            "target": f"≥ {TARGET_TRANSITION_REDUCTION:g}× fewer state transitions per example "
            "than per_layer on Standard",
            "value": f"{json.dumps(aws['ways'][cheapest])} {on_standard / billed:,.0f}× fewer "
            f"Standard transitions ({on_standard:.3f} → {billed:.5f}); counting its Express "
            f"chunks' too, {on_standard / aws[cheapest]['all_transitions_per_example']:.1f}×",
            "met": on_standard / billed >= TARGET_TRANSITION_REDUCTION,
        },
    ]


def run_workload(workload: Workload, scratch: Path, log: Any = print) -> dict[str, Any]:
    from stepnet.reference import prepare_dataset

    log(f"== {workload.name}: {workload.description}")
    document = json.loads(json.dumps(workload.config))
    if workload.dataset is not None:
        log("    generating the dataset")
        document["dataset"]["source"] = workload.dataset(scratch)
    config = parse_config(document)
    data = prepare_dataset(config)
    n_train, n_val, n_features = data.split.n_train, data.split.n_val, data.dataset.n_features
    systems: dict[str, Any] = {}
    for runner in (run_reference, run_sklearn, run_torch):
        load = _load()
        # the reference reads the shards as the pipeline does; the baselines get arrays
        given = data if runner is run_reference else data.prepared
        result = runner(config, given) | {"load_before": load}
        systems[result["system"]] = result
        if "skipped" in result:
            log(f"    {result['label']}: skipped ({result['skipped']})")
        else:
            log(f"    {result['label']}: {result['epoch_seconds']:.3f} s/epoch")
    del data
    reference_metrics = systems["reference"]["metrics"]
    selected = ways(config)
    for way, select in selected.items():
        mode = select["mode"]
        plan = workload.local[mode]
        blocks = select.get("dataset", {}).get("block_rows")
        local = _local_config(document, mode, plan.epochs, blocks)
        # the reference of that config: another block size trains on another split
        same = reference_metrics if blocks is None else run_reference(local, None)["metrics"]
        load = _load()
        systems[f"local_{way}"] = measure_local(
            local, steps=plan.steps, reference_metrics=same, log=log
        ) | {"load_before": load, "select": select}
    usages = {way: systems[f"local_{way}"]["_usage"] for way in selected}
    trained = {way: systems[f"local_{way}"]["n_train"] for way in selected}
    designs = [
        *(bills.standard_bill(usages[way], way, telemetry=bills.TELEMETRY) for way in selected),
        *(bills.all_standard_bill(usages[m], m, telemetry=bills.TELEMETRY) for m in MODES),
        bills.seed_bill(usages["per_layer"]),
        bills.m5_bill(systems["reference"]["epoch_seconds"], measured=True),
    ]
    aws: dict[str, Any] = {
        way: {
            "select": selected[way],
            "usage_cold": systems[f"local_{way}"]["usage_cold"],
            "usage_local": systems[f"local_{way}"]["usage_local"],
            "transitions_per_example": usages[way].transitions / trained[way],
            "all_transitions_per_example": (
                usages[way].transitions + usages[way].express_transitions
            )
            / trained[way],
        }
        for way in selected
    }
    aws["ways"] = selected
    aws["bills"] = [b.as_dict() for b in designs]
    aws["bill_totals"] = {b.design: b.total for b in designs}
    estimate = cost.ways_to_run(config, reference_seconds=systems["reference"]["epoch_seconds"])
    result = {
        "workload": workload.name,
        "title": workload.title,
        "description": workload.description,
        "notes": workload.notes,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "prices": {
            "source": prices.SOURCE,
            "recorded": prices.RECORDED,
            "table": prices.as_table(),
        },
        "memory_mb": dict(FUNCTION_MEMORY_MB),
        "config": json.loads(config.to_json()),
        "dataset": {"n_train": n_train, "n_val": n_val, "n_features": n_features},
        "systems": systems,
        "aws": aws,
        "analytic_estimate": estimate.as_dict(),
        "targets": _targets(systems, aws),
    }
    for target in result["targets"]:
        log(
            f"    target {target['target']}: {target['value']} — {'met' if target['met'] else 'NOT met'}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in minutes")
    parser.add_argument("--workloads", help="comma-separated names (default: all)")
    parser.add_argument(
        "--out", help="docs folder (default: docs, or out/bench-quick with --quick)"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rebuild benchmarks.md and the plot from the JSON files",
    )
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path("out/bench-quick" if args.quick else "docs")
    if args.render_only:
        render(out, workloads(quick=args.quick))
        return 0
    chosen = workloads(quick=args.quick)
    if args.workloads:
        wanted = {name.strip() for name in args.workloads.split(",")}
        unknown = wanted - {w.name for w in chosen}
        if unknown:
            parser.error(
                f"unknown workloads {sorted(unknown)}; choose from {[w.name for w in chosen]}"
            )
        chosen = [w for w in chosen if w.name in wanted]

    def log(line: str) -> None:
        print(line, flush=True)

    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="stepnet-bench-") as scratch:
        for workload in chosen:
            result = run_workload(workload, Path(scratch), log)
            result["quick"] = args.quick
            write_json(result, out / "benchmarks")
            results.append(result)
    render(out, workloads(quick=args.quick))
    log(
        f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks'}/ in {time.perf_counter() - started:.0f} s"
    )
    return 0


def render(out: Path, known: list[Workload]) -> None:
    """benchmarks.md and the plot, from every workload whose JSON is there (a partial rerun
    keeps the others)."""
    everything = []
    for workload in known:
        path = out / "benchmarks" / f"{workload.name}.json"
        if path.is_file():
            everything.append(json.loads(path.read_text()))
    if not everything:
        raise SystemExit(f"no benchmark results in {out / 'benchmarks'}; run the bench first")
    image = plot(everything, out / "benchmarks" / "benchmarks.png")
    page = render_markdown(everything, f"benchmarks/{image.name}")
    markdown = out / "benchmarks.md"
    kept = sections.kept(markdown.read_text()) if markdown.is_file() else ""
    markdown.write_text(page + ("\n" + kept if kept else ""))  # bench.large's, bench.faults'


if __name__ == "__main__":
    sys.exit(main())
