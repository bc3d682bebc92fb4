"""The bench's outputs: a JSON file per workload, docs/benchmarks.md and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stepnet.billing.report import usd
from trainer.contract.names import INLINE_LIMIT_BYTES
from trainer.contract.workflow import MODES

WAYS = (
    "per_step_blocks", "per_step", "fused_blocks", "fused", "per_layer_blocks", "per_layer"
)  # fmt: skip  # as bench.ways names them
SYSTEMS = ("reference", "sklearn", "torch", *(f"local_{way}" for way in WAYS))
BILL_ORDER = (
    *(f"standard:{way}" for way in WAYS),
    *(f"all-standard:{mode}" for mode in MODES),
    "seed",
    "m5.large",
)


def _ways(result: dict[str, Any]) -> list[str]:
    """The ways the bench ran for a workload, in :data:`WAYS` order."""
    return [way for way in WAYS if f"local_{way}" in result["systems"]]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def write_json(result: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result['workload']}.json"
    path.write_text(json.dumps(_jsonable(result), indent=1, sort_keys=False) + "\n")
    return path


def _s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 100:
        return f"{seconds:,.0f}"
    if seconds >= 1:
        return f"{seconds:.2f}"
    return f"{seconds:.3f}"


def _loads(results: list[dict[str, Any]]) -> str:
    """The 1-minute load average before each measurement, as a range."""
    loads = [
        s["load_before"]
        for r in results
        for s in r["systems"].values()
        if s.get("load_before") is not None
    ]
    if not loads:
        machine = results[0]["machine"].get("load_average")
        return f"load average at the end {machine[0]:.1f}" if machine else "load unknown"
    return f"1-minute load average before the measurements {min(loads):.1f}–{max(loads):.1f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _n(value: float) -> str:
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _table(headers: list[str], rows: list[list[str]], right: bool = True) -> list[str]:
    align = ["---"] + (["---:"] if right else ["---"]) * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _time_rows(result: dict[str, Any]) -> list[list[str]]:
    systems = result["systems"]
    reference = systems["reference"]["epoch_seconds"]
    rows = []
    for key in SYSTEMS:
        s = systems.get(key)
        if s is None:
            continue
        if "skipped" in s:
            rows.append([s["label"], "skipped", "—", "—", s["skipped"]])
            continue
        accuracy = s.get("val_accuracy")
        if accuracy is None and s.get("extrapolated"):
            after = s.get("val_accuracy_after_steps")
            shown = f"{_pct(after)} after {s['steps_measured']} steps" if after is not None else "—"
        else:
            shown = _pct(accuracy)
            epochs = s.get("epochs")
            if s["system"].startswith("local") and epochs != systems["reference"]["epochs"]:
                shown += f" after {epochs} epoch{'s' if epochs != 1 else ''}"
            if "max_metric_difference_to_reference" in s:
                diff = s["max_metric_difference_to_reference"]
                shown += " (= reference)" if diff <= 1e-9 else f" (Δ {diff:.1e} to reference)"
        rows.append(
            [
                s["label"],
                _s(s["epoch_seconds"]),
                f"{s['epoch_seconds'] / reference:,.1f}×",
                shown,
                s["measured"],
            ]
        )
    return rows


def _local_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for way in _ways(result):
        s = result["systems"][f"local_{way}"]
        rows.append(
            [
                json.dumps(s.get("select", {"mode": way})),
                _n(s["tasks_per_epoch"]),
                f"{s['ms_per_task']:.1f}",
                f"{s['handler_ms_per_task']:.1f}",
                f"{s['handler_busy_per_wall']:.2f}",
                s["measured"],
            ]
        )
    return rows


def _profile_rows(result: dict[str, Any]) -> list[list[str]]:
    profiles = {
        mode: result["systems"][f"local_{mode}"]["profile"]
        for mode in MODES
        if f"local_{mode}" in result["systems"]
    }
    if not all(p.get("available") for p in profiles.values()):
        return []
    names: list[str] = []
    for p in profiles.values():
        for row in p["categories"]:
            if row["category"] not in names:
                names.append(row["category"])
    rows = []
    for name in names:
        cells = []
        for p in profiles.values():
            share = next((r["share"] for r in p["categories"] if r["category"] == name), 0.0)
            cells.append(_pct(share))
        rows.append([name, *cells])
    rows.append(
        ["CPU seconds per wall second", *(f"{p['cpu_per_wall']:.2f}" for p in profiles.values())]
    )
    calls = {mode: max(p["handler_calls"], 1) for mode, p in profiles.items()}
    rows.append(
        [
            "handler CPU ms per task (exact)",
            *(f"{1000 * p['handler_cpu_seconds'] / calls[m]:.1f}" for m, p in profiles.items()),
        ]
    )
    rows.append(
        [
            "handler wall ms per task (incl. waiting for the GIL)",
            *(f"{1000 * p['handler_wall_seconds'] / calls[m]:.1f}" for m, p in profiles.items()),
        ]
    )
    return rows


def _usage_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    aws = result["aws"]
    cells: dict[str, list[str]] = {}
    for mode in _ways(result):
        u = aws[mode]["usage_cold"]
        local = aws[mode]["usage_local"]["store"]
        st = u["store"]
        check = result["systems"][f"local_{mode}"]["model_check"]
        differing = [
            f"{name.replace('_', ' ')} {_n(v['metered'])} vs {_n(v['model'])}"
            for name, v in check.items()
            if abs(v["metered"] - v["model"]) > 1e-6 * max(1, v["model"])
        ]
        cells[mode] = [
            _n(u["transitions"]),
            _n(u.get("express_transitions", 0)),
            f"{aws[mode]['transitions_per_example']:.4f}",
            f"{aws[mode].get('all_transitions_per_example', 0):.3f}",
            _n(u.get("express_executions", 0)),
            _n(u["invocations"]),
            f"{u['gb_seconds']:,.1f}",
            f"{_n(st['ddb_writes'])} / {_n(st['wru'])}",
            f"{_n(st['ddb_reads'])} / {_n(st['rru'])}",
            f"{_n(local['ddb_reads'])} / {_n(local['rru'])}",
            f"{_n(st['s3_puts'])} / {_n(st['s3_gets'])}",
            f"{_n(local['s3_gets'])}",
            "equal" if not differing else "; ".join(differing),
        ]
    labels = [
        "State transitions, Standard (billed each)",
        "State transitions, Express chunks",
        "Standard transitions per training example",
        "All transitions per training example (on Standard alone)",
        "Express chunks",
        "Lambda invocations",
        "Lambda GB-s (local handler time × function memory)",
        "DynamoDB writes / WRU",
        "DynamoDB reads / RRU, cold containers",
        "DynamoDB reads / RRU, as the local engine (shared cache)",
        "S3 PUT / GET, cold containers",
        "S3 GET, as the local engine",
        "Analytic model (`stepnet cost`) vs metered: transitions, invocations, requests",
    ]
    ways = _ways(result)
    headers = ["", *(json.dumps(aws[w].get("select", {"mode": w})) for w in ways)]
    return headers, [[label, *(cells[w][i] for w in ways)] for i, label in enumerate(labels)]


def _bill_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for bill in result["aws"]["bills"]:
        items = sorted(bill["items_usd"].items(), key=lambda kv: -kv[1])
        top = ", ".join(f"{name} {usd(value)}" for name, value in items[:3] if value > 0)
        rows.append([bill["label"], usd(bill["total_usd"]), top, bill["note"]])
    return rows


def _targets_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for result in results:
        for target in result["targets"]:
            rows.append(
                [
                    result["workload"],
                    target["target"],
                    target["value"],
                    "met" if target["met"] else "**not met**",
                ]
            )
    return rows


def _findings(results: list[dict[str, Any]]) -> list[str]:
    from stepnet.billing import prices

    lines = []
    for r in results:
        totals = r["aws"]["bill_totals"]
        mode = min(_ways(r), key=lambda m: totals[f"standard:{m}"])
        bill = next(b for b in r["aws"]["bills"] if b["design"] == f"standard:{mode}")
        items = sorted(bill["items_usd"].items(), key=lambda kv: -kv[1])
        shares = ", ".join(
            f"{name} {100 * value / bill['total_usd']:.0f}%" for name, value in items[:4]
        )
        local = r["systems"][f"local_{mode}"]
        profile = local["profile"]
        cpu_ms = 1000 * profile["handler_cpu_seconds"] / max(profile["handler_calls"], 1)
        select = json.dumps(local.get("select", {"mode": mode}))
        lines.append(
            f"- **{r['workload']}**: the cheapest way to run an epoch as built is `{select}` at "
            f"{usd(bill['total_usd'])}: {shares}. "
            f"On the local engine its tasks take {local['ms_per_task']:.1f} ms of wall time "
            f"each, the handlers {cpu_ms:.1f} ms of CPU each (numpy may use both cores)."
        )
        modeled = {
            json.dumps(e["select"]): e for e in r.get("analytic_estimate", {}).get("entries", [])
        }
        entry = modeled.get(select)
        if entry is not None:
            gb = bill["items_usd"].get("Lambda GB-s", 0.0)
            lines.append(
                f"- **{r['workload']}**, with `stepnet cost`'s assumed AWS durations instead of "
                f"this loaded machine's handler times for the Lambda GB-s "
                f"({usd(gb)} here, {usd(entry['dollars_per_epoch_parts']['Lambda GB-s'])} "
                f"assumed): `{select}` costs {usd(entry['dollars_per_epoch'])} per epoch; an "
                f"epoch on AWS takes about {entry['seconds_per_epoch_estimate']:,.0f} s "
                "(estimate)."
            )
    break_even = prices.each("s3_put_request") / prices.each("dynamodb_write_request_unit")
    lines.append(
        f"- A tensor written inline in DynamoDB costs 1 WRU per KB; one S3 PUT costs as much as "
        f"{break_even:.0f} WRU (plus a 1-WRU pointer item), so the store spills bundles above "
        f"{INLINE_LIMIT_BYTES / 1024:.0f} KiB to S3 (`INLINE_LIMIT_BYTES`); the WRU and S3 rows "
        "above show what each part of a tensor's life costs."
    )
    lines.append(
        "- Dollars use cold reads; a warm container re-reads fewer tensors, so reads are an "
        "upper bound. Writes and transitions are exact."
    )
    return lines


def render_markdown(results: list[dict[str, Any]], plot: str | None) -> str:
    first = results[0]
    machine = first["machine"]
    lines = [
        "# Benchmarks",
        "",
        "How long an epoch takes and what it costs. Generated by `make bench` "
        "(`python -m bench`) in one run on one machine; the numbers are in "
        "`docs/benchmarks/<workload>.json`. Do not edit by hand.",
        "",
        f"- Run: {first['generated']}{' (quick smoke run, not representative)' if first['quick'] else ''}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, "
        f"numpy {machine['numpy']}, scikit-learn {machine['sklearn']}, "
        f"torch {machine['torch'] or 'not installed'}, moto {machine['moto']}; "
        f"{_loads(results)} (other processes on the machine slow every system, numpy's "
        "threads most)",
        f"- Prices: {first['prices']['source']} (recorded {first['prices']['recorded']}); "
        "the table is `stepnet/billing/prices.py`. Lambda memory per function from "
        "`stepnet.billing.usage.FUNCTION_MEMORY_MB` (the stack's sizes, `trainer.contract.functions.FUNCTIONS`: "
        + ", ".join(f"{name} {mb}" for name, mb in first.get("memory_mb", {}).items())
        + " MB), arm64.",
        "",
        "How it is measured:",
        "",
        "- **Time per epoch.** `stepnet local`: from the Training history, entering *Train epoch* "
        "to leaving it (the Epoch execution, its chunks and its evaluation). Reference and PyTorch: per epoch, including the per-epoch "
        "evaluation of training and validation loss. scikit-learn: `fit` time / epochs. All "
        "baselines train the same layers, optimizer and hyper-parameters on the same prepared "
        "data, with one optimizer update per `batch_size × workers` examples (what one pipeline "
        "step is); their initial weights and shuffles are their own.",
        "- **Extrapolated** rows ran a fixed number of steps of one epoch: epoch = start + Plan + "
        "steps per epoch × measured time per step + an Evaluate run on the weights reached. "
        "They say so in the *measured* column.",
        "- **ms per task** = wall time per epoch / Lambda tasks per epoch. *Handler ms* is the "
        "time inside handlers (`LambdaRuntime.seconds`); with a Map's micro-batches in parallel "
        "threads it overlaps, so handler busy / wall can exceed 1.",
        "- **Profile**: exact totals — the process's CPU time and the CPU time inside handlers "
        "(`time.thread_time` around each invocation) — split by stack samples: every 5 ms each "
        "thread's CPU since the last sample (Linux schedstat) is charged to what its stack is "
        "doing (`bench/profiler.py`). Threads waiting for the GIL use no CPU; *handler "
        "wall ms* includes that wait.",
        "- **Counts** are metered, not estimated (`stepnet/billing/meter.py`): transitions are "
        "StateEntered events of the histories; invocations and their billed ms from the Lambda "
        "runtime; DynamoDB and S3 requests from botocore event hooks on the handlers' clients, "
        "tensor writes and reads as the tensor store's observer hears them, capacity units from "
        "item sizes (1 WRU per started KB, 1 RRU per started 4 KB, per item). The local engine "
        "shares one tensor cache between all handlers, so its reads are far fewer than on AWS; "
        "dollars use *cold* reads — every tensor read a handler asks for, as a Lambda container "
        "without it cached would send (an upper bound). The model of `stepnet cost` (the "
        "handlers' dry run on a store of shapes) is checked against these counts.",
        "- **Ways to run**: each mode as configured and, where a config's blocks are smaller "
        "than a batch, with blocks of a batch (`dataset.block_rows`; the split and shuffle are "
        "by blocks, so that config trains on another split, and its weights are compared with "
        "the reference of that config) — the entries of `stepnet cost`, each run metered.",
        "- **Dollars per epoch**: *Standard epoch + Express chunks* = the stack as built: "
        "Standard transitions, a request per Express chunk and 64 MB × the chunks' duration "
        "(here the local chunks' wall time, 100 ms steps), Lambda, DynamoDB, S3, and CloudWatch "
        "Logs and X-Ray as the stack configures them (a log event per history event of the Express "
        "chunks, which the Steps machine logs at level ALL with execution data, how the console "
        "shows them; the Standard machines log failures only; an assumed size per event, "
        "`stepnet.billing.bills.TelemetryModel`). *Everything on "
        "Standard*: the same counts with every state transition billed as Standard (the epoch "
        "before its steps moved into Express chunks). *Seed design*: the same per-layer "
        "invocations chained by SNS (a publish each), every tensor in DynamoDB (its bytes at 1 "
        "WRU/KB, 1 RRU/4 KB; since one bundle holds all of a version's weights, each per-layer "
        "task's read is that bundle), no Step Functions, no S3. *m5.large*: the reference's "
        "measured epoch time × $0.096/h.",
        "",
    ]
    if plot:
        lines += [f"![time and dollars per epoch]({plot})", ""]
    lines += ["## Targets", ""]
    lines += _table(
        ["workload", "target", "measured", "status"], _targets_rows(results), right=False
    )
    lines += ["", "## What the numbers say", "", *_findings(results)]
    for result in results:
        lines += ["", f"## {result['title']}", "", result["description"] + ".", ""]
        for note in result.get("notes", []):
            lines += [f"- {note}"]
        lines += ["", "### Time per epoch", ""]
        lines += _table(
            ["system", "s / epoch", "× reference", "val accuracy", "measured"], _time_rows(result)
        )
        lines += ["", "### Local engine: cost per Lambda task", ""]
        lines += _table(
            [
                "mode",
                "tasks / epoch",
                "ms / task (wall)",
                "handler ms / task",
                "handler busy / wall",
                "measured",
            ],
            _local_rows(result),
        )
        profile = _profile_rows(result)
        if profile:
            lines += ["", "### Where the local engine's time goes (share of CPU)", ""]
            lines += _table(["", *(m for m in MODES if f"local_{m}" in result["systems"])], profile)
        lines += ["", "### AWS usage per epoch (metered), by way to run", ""]
        headers, rows = _usage_rows(result)
        lines += _table(headers, rows)
        lines += ["", "### Dollars per epoch on AWS", ""]
        lines += _table(
            ["design", "$ / epoch", "largest items", "note"], _bill_rows(result), right=False
        )
    lines += [""]
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> Path:
    """Two panels: seconds per epoch by workload and system; dollars per epoch by design."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["workload"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6))
    width = 0.8 / len(SYSTEMS)
    for i, key in enumerate(SYSTEMS):
        values, hatches = [], []
        for r in results:
            s = r["systems"].get(key, {})
            values.append(s.get("epoch_seconds", 0.0) if "skipped" not in s else 0.0)
            hatches.append("//" if s.get("extrapolated") else "")
        label = results[0]["systems"].get(key, {}).get("label", key)
        bars = left.bar([x + i * width for x in range(len(names))], values, width, label=label)
        for bar, hatch in zip(bars, hatches, strict=True):
            bar.set_hatch(hatch)
    left.set_yscale("log")
    left.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names)
    left.set_ylabel("seconds per epoch (log)")
    left.set_title("Time per epoch (hatched: extrapolated from steps)")
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    labels = {b["design"]: b["label"] for r in results for b in r["aws"]["bills"]}
    width = 0.8 / len(BILL_ORDER)
    for i, design in enumerate(BILL_ORDER):
        values = []
        for r in results:
            bill = next((b for b in r["aws"]["bills"] if b["design"] == design), None)
            values.append(bill["total_usd"] if bill else 0.0)
        label = labels.get(design, design)
        right.bar([x + i * width for x in range(len(names))], values, width, label=label)
    right.axhline(0.005, color="grey", linestyle="--", linewidth=1, label="target $0.005")
    right.set_yscale("log")
    right.set_xticks([x + 0.4 - width / 2 for x in range(len(names))], names)
    right.set_ylabel("dollars per epoch (log)")
    right.set_title("AWS dollars per epoch (us-east-1)")
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
