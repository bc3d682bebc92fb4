"""``stepnet cost`` as text: the estimate's counts and dollars per epoch, both modes, and per run."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from stepnet.billing import prices
from stepnet.billing.estimate import CostEstimate
from trainer.contract import workflow
from trainer.contract.functions import LAMBDA_ARCHITECTURE


def usd(value: float) -> str:
    """Dollars with enough digits to compare small amounts: $0.0134, $0.000021."""
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    digits = max(2, -math.floor(math.log10(abs(value))) + 2)
    return f"${value:.{digits}f}"


def _count(value: float) -> str:
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _bytes(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return out


def format_estimate(est: CostEstimate) -> str:
    """The estimate as plain text: counts and dollars per epoch, every mode, and per run."""
    s, c = est.shapes, est.config
    pl = est.modes["per_layer"]
    every = list(est.modes.values())
    lines = [
        f"stepnet cost: {c.run_id}  (configured mode: {c.mode}, {c.epochs} epochs)",
        f"  data: {s.n_train:,} training + {s.n_val:,} validation examples, {s.n_features} features",
        f"  network: {' -> '.join(str(n) for n in (s.n_features, *s.units))};  "
        f"batch {s.batch_size} x {s.workers} workers",
        f"  per epoch: {s.steps:,} steps, {s.microbatches:,} micro-batches",
        "",
        "Per epoch (analytic)",
    ]

    def both(fn: Any) -> list[str]:
        return [fn(m) for m in every]

    rows = [
        ["Express chunks (Steps executions)", *both(lambda m: str(m.parts))],
        ["Standard state transitions", *both(lambda m: _count(m.usage.transitions))],
        ["Express state transitions", *both(lambda m: _count(m.usage.express_transitions))],
        [
            "Standard transitions per example",
            *both(lambda m: f"{m.transitions_per_example(s.n_train):.4f}"),
        ],
        [
            "All transitions per example",
            *both(lambda m: f"{m.all_transitions_per_example(s.n_train):.3f}"),
        ],
        [
            "AWS time per epoch (estimate)",
            *both(lambda m: f"{m.usage.epoch_seconds:,.0f} s"),
        ],
        ["Lambda invocations", *both(lambda m: _count(m.usage.invocations))],
        [
            "Lambda GB-s (assumed durations)",
            *both(lambda m: f"{m.usage.gb_seconds(est.memory_mb):,.1f}"),
        ],
        [
            "DynamoDB writes / WRU",
            *both(lambda m: f"{_count(m.usage.store.ddb_writes)} / {_count(m.usage.store.wru)}"),
        ],
        [
            "DynamoDB reads / RRU (cold)",
            *both(lambda m: f"{_count(m.usage.store.ddb_reads)} / {_count(m.usage.store.rru)}"),
        ],
        [
            "S3 PUT / GET",
            *both(lambda m: f"{_count(m.usage.store.s3_puts)} / {_count(m.usage.store.s3_gets)}"),
        ],
        [
            "Tensor bytes written / read",
            *both(
                lambda m: (
                    f"{_bytes(m.usage.store.bytes_written)} / {_bytes(m.usage.store.bytes_read)}"
                )
            ),
        ],
    ]
    lines += _table(["", *est.modes], rows)
    lines += ["", "Tensor bytes per task (written + read)"]
    task_rows = []
    for m in every:
        for fn in workflow.EPOCH_FUNCTIONS:
            u = m.usage.functions.get(fn)
            if (
                u is None
                or u.invocations == 0
                or (m is not pl and fn in ("Plan", "Update", "Evaluate"))
            ):
                continue
            moved = (u.store.bytes_written + u.store.bytes_read) / u.invocations
            task_rows.append(
                [
                    f"{fn} ({m.mode})" if fn not in ("Plan", "Update", "Evaluate") else fn,
                    _count(u.invocations),
                    _bytes(moved),
                    f"{u.billed_ms / u.invocations:,.0f}",
                ]
            )
    lines += _table(["task", "per epoch", "bytes per task", "assumed ms"], task_rows)
    lines += ["", "Dollars per epoch"]
    bill_rows = [
        *([m.standard.label, usd(m.standard.total), ""] for m in every),
        *([m.all_standard.label, usd(m.all_standard.total), m.all_standard.note] for m in every),
        [est.seed.label, usd(est.seed.total), "from per_layer counts"],
        [
            est.m5_large.label,
            usd(est.m5_large.total),
            f"{est.reference_seconds:.3g} s, {est.m5_large.note}",
        ],
    ]
    lines += _table(["design", "$ / epoch", "note"], bill_rows)
    lines += ["", "Ways to run, cheapest first (merge `select` into the config; --json for all)"]
    lines += _table(
        ["select", "$ / epoch", "AWS s / epoch (estimate)", "transitions (Standard / Express)"],
        [
            [
                json.dumps(e.select),
                usd(e.mode.standard.total),
                f"{e.mode.usage.epoch_seconds:,.0f}",
                f"{_count(e.mode.usage.transitions)} / {_count(e.mode.usage.express_transitions)}",
            ]
            for e in est.entries
        ],
    )
    mode = est.mode
    memory = "/".join(str(m) for m in sorted(set(est.memory_mb.values())))
    lines += [
        "",
        f"Whole run ({c.epochs} epochs, {c.mode}, as built): "
        f"{usd(mode.run_total(c.epochs, est.memory_mb))} "
        f"(transitions {usd(mode.standard.items['Step Functions transitions'])} of "
        f"{usd(mode.standard.total)} per epoch)",
        f"Prices: {prices.SOURCE} (recorded {prices.RECORDED}). Lambda {LAMBDA_ARCHITECTURE}, "
        f"{memory} MB. Reads counted cold (no warm cache): an upper bound. Lambda durations "
        "are assumptions (stepnet.billing.bills.DurationModel), not measurements.",
        f"AWS time per epoch: an estimate from those durations, {est.duration.task_dispatch_ms:g} "
        f"ms per Task state and {est.duration.child_start_ms:g} ms per Express chunk "
        "(sources in DurationModel's docstring). Logs: a log event per history event of the "
        "Express chunks (level ALL, with execution data: how the console shows them; the "
        "Standard machines log failures only), sizes assumed "
        "(stepnet.billing.bills.TelemetryModel).",
    ]
    return "\n".join(lines)
