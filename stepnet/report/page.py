"""The report as one self-contained HTML file: inline CSS and SVG, no script, no request.

Sections: the run (status, config, totals), why it failed (if it did), the learning curves, per
epoch the metrics with the executions' counts and dollars, each state machine's graph with how
often each state ran and how long it took, and per Lambda function its tasks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any, Final

from stepnet.report import charts, graph
from stepnet.report.dollars import NOT_COUNTED, Dollars
from stepnet.report.history import logical_function
from stepnet.report.record import RunRecord
from stepnet.report.summary import Counts, MachineStats, Summary, states_of, summarize

STYLE: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:24px auto;max-width:1200px;padding:0 16px;color:#0f172a}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0}
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px}
.SUCCEEDED{background:#dcfce7;color:#166534}.RUNNING{background:#dbeafe;color:#1e40af}
.FAILED,.TIMED_OUT,.ABORTED{background:#fee2e2;color:#991b1b}
.failure{border:1px solid #fca5a5;background:#fef2f2;padding:8px 12px;border-radius:6px}
.failure code{white-space:pre-wrap}
table{border-collapse:collapse;margin:6px 0} th,td{padding:3px 9px;border-bottom:1px solid #e2e8f0}
th{text-align:left;background:#f8fafc} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tfoot td{font-weight:600} .note{color:#475569;font-size:12px;max-width:900px}
.charts{display:flex;flex-wrap:wrap;gap:16px} dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}
dt{color:#475569} dd{margin:0} .scroll{overflow-x:auto}
svg text{font-family:inherit} .chart .title{font-weight:600;font-size:13px}
.chart .tick,.chart .legend,.chart .axis{font-size:11px;fill:#334155}
.chart .grid{stroke:#e2e8f0} .chart .frame{fill:none;stroke:#94a3b8}
.graph .name{font-size:12px;font-weight:600;text-anchor:middle}
.graph .count{font-size:11px;text-anchor:middle;fill:#334155}
.graph .edge{fill:none;stroke:#475569;stroke-width:1.2}
.graph .edge.catch{stroke:#f87171;stroke-dasharray:4 3;stroke-width:1}
.graph .scope{fill:#ffffff;stroke:#c4b5fd}
.machines{display:flex;flex-wrap:wrap;gap:8px 32px;align-items:flex-start} h3{margin:10px 0 4px}
"""


def _number(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def _metric(row: dict[str, Any] | None, key: str) -> str:
    if row is None or not isinstance(row.get(key), int | float):
        return "–"
    return _number(float(row[key]))


def _dollars_cell(dollars: Dollars) -> str:
    items = "; ".join(f"{name} ${value:.6f}" for name, value in dollars.items.items())
    return f'<td class="n" title="{escape(items)}">{escape(dollars.text())}</td>'


def _counts_cells(counts: Counts) -> str:
    return (
        f'<td class="n">{counts.executions}</td><td class="n">{counts.transitions:,}</td>'
        f'<td class="n">{counts.lambda_tasks:,}</td><td class="n">{counts.seconds:.1f}</td>'
        + _dollars_cell(counts.dollars)
    )


def _epoch_table(summary: Summary) -> str:
    head = (
        "<tr><th class='n'>epoch</th><th class='n'>train_loss</th><th class='n'>val_loss</th>"
        "<th class='n'>val_accuracy</th><th class='n'>executions</th>"
        "<th class='n'>state transitions</th><th class='n'>Lambda tasks</th>"
        "<th class='n'>wall s</th><th class='n'>$</th></tr>"
    )
    rows = [
        f'<tr data-epoch="{row.epoch}"><td class="n">{row.epoch}</td>'
        f'<td class="n">{_metric(row.metrics, "train_loss")}</td>'
        f'<td class="n">{_metric(row.metrics, "val_loss")}</td>'
        f'<td class="n">{_metric(row.metrics, "val_accuracy")}</td>' + _counts_cells(row.counts)
        for row in summary.epochs
    ]
    run = summary.run
    total = summary.total
    foot = (
        f'<tr><td colspan="4">the Training execution (around the epochs)</td>'
        f"{_counts_cells(run)}</tr>"
        f'<tr><td colspan="4">whole run</td>'
        f'<td class="n">{run.executions + sum(r.counts.executions for r in summary.epochs)}</td>'
        f'<td class="n">{run.transitions + sum(r.counts.transitions for r in summary.epochs):,}</td>'
        f'<td class="n">{run.lambda_tasks + sum(r.counts.lambda_tasks for r in summary.epochs):,}</td>'
        f'<td class="n">{run.seconds:.1f}</td>{_dollars_cell(total)}</tr>'
    )
    items = ", ".join(f"{name} ${value:.6f}" for name, value in total.items.items())
    return (
        f'<div class="scroll"><table id="epochs"><thead>{head}</thead><tbody>{"".join(rows)}'
        f"</tbody><tfoot>{foot}</tfoot></table></div>"
        f'<p class="note">Dollars at AWS prices (stepnet.billing): {escape(items)}. '
        f"{escape(NOT_COUNTED)}</p>"
    )


def _curves(summary: Summary) -> str:
    rows = [row.metrics for row in summary.epochs if row.metrics is not None]

    def series(key: str) -> list[tuple[float, float]]:
        return [
            (float(r["epoch"]), float(r[key])) for r in rows if isinstance(r.get(key), int | float)
        ]

    loss = charts.line_chart(
        "loss",
        "Loss per epoch",
        {"train_loss": series("train_loss"), "val_loss": series("val_loss")},
        "epoch",
        "loss",
    )
    parts = [loss]
    if series("val_accuracy"):
        parts.append(
            charts.line_chart(
                "accuracy",
                "Validation accuracy per epoch",
                {"val_accuracy": series("val_accuracy")},
                "epoch",
                "accuracy",
            )
        )
    return f'<div class="charts">{"".join(parts)}</div>'


def _machine(machine: MachineStats) -> str:
    kinds = {name: str(state.get("Type", "")) for name, state in states_of(machine.definition)}
    ran = sorted(machine.states.items(), key=lambda item: -item[1].seconds)
    rows = "".join(
        f'<tr data-state="{escape(name)}"><td>{escape(name)}</td><td>{escape(kinds.get(name, ""))}'
        f'</td><td class="n">{stats.entered:,}</td><td class="n">{stats.seconds:.2f}</td>'
        f'<td class="n">{stats.seconds / max(stats.entered, 1) * 1000:.1f}</td></tr>'
        for name, stats in ran
    )
    never = [name for name in kinds if name not in machine.states]
    table = (
        "<table><thead><tr><th>state</th><th>type</th><th class='n'>entered</th>"
        f"<th class='n'>total s</th><th class='n'>mean ms</th></tr></thead><tbody>{rows}"
        "</tbody></table>"
    )
    if never:
        table += f'<p class="note">never entered: {escape(", ".join(never))}</p>'
    return (
        f'<section class="machine" data-machine="{escape(machine.logical)}">'
        f"<h3>{escape(machine.logical)} ({machine.executions} execution"
        f"{'' if machine.executions == 1 else 's'})</h3>"
        f'<div class="scroll">{graph.svg(machine.logical, machine.definition, machine.states)}</div>'
        f"<details><summary>per state</summary>{table}</details></section>"
    )


def _functions(summary: Summary) -> str:
    record = summary.record
    tasks: dict[str, list[float]] = {}
    for counts in (summary.run, *(row.counts for row in summary.epochs)):
        for task in counts.tasks:
            tasks.setdefault(logical_function(task.function, record.memory_mb), []).append(
                task.seconds
            )
    usage = record.usage or {}
    rows = []
    for name in sorted(tasks, key=lambda n: -sum(tasks[n])):
        durations = tasks[name]
        measured = usage.get(name)
        used = None if measured is None else measured["max_memory_used_mb"]
        rows.append(
            f'<tr data-function="{escape(name)}"><td>{escape(name)}</td>'
            f'<td class="n">{len(durations):,}</td><td class="n">{sum(durations):.2f}</td>'
            f'<td class="n">{max(durations) * 1000:.0f}</td>'
            f'<td class="n">{record.memory_mb.get(name, "–")}</td>'
            f'<td class="n">{"–" if used is None else used}</td></tr>'
        )
    return (
        "<table><thead><tr><th>function</th><th class='n'>tasks</th><th class='n'>total s</th>"
        "<th class='n'>max ms</th><th class='n'>memory MB</th>"
        f"<th class='n'>max memory used MB</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">From the execution histories (task started to ended); max memory used '
        "from usage.json where the local engine measured it.</p>"
    )


def _config(config: dict[str, Any]) -> str:
    if not config:
        return ""
    model = config.get("model", {})
    layers = " → ".join(
        f"{layer.get('units')} {layer.get('activation')}" for layer in model.get("layers", [])
    )
    fields: Sequence[tuple[str, Any]] = [
        ("dataset", config.get("dataset", {}).get("source")),
        ("layers", layers),
        ("loss", config.get("loss")),
        ("optimizer", json.dumps(config.get("optimizer"))),
        (
            "epochs × batch × workers",
            f"{config.get('epochs')} × {config.get('batch_size')} × {config.get('workers')}",
        ),
        ("mode", config.get("mode", "per_layer")),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{escape(str(v))}</dd>" for k, v in fields) + "</dl>"


def _failure(record: RunRecord) -> str:
    cause = record.cause
    if cause is None:
        return ""
    failed = [
        name
        for name, events in record.histories.items()
        if events
        and events[-1]["type"] in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted")
    ]
    return (
        f'<h2>Why it failed</h2><div class="failure" id="failure"><code>{escape(cause)}</code>'
        f'<p class="note">failed executions: {escape(", ".join(failed))}</p></div>'
    )


def render(summary: Summary) -> str:
    """The whole page."""
    record = summary.record
    status = record.status
    machines = [m for m in summary.machines if m.executions]
    body: Iterable[str] = (
        f"<h1>Run {escape(record.run_id)} <span class='status {status}'>{status}</span></h1>",
        _config(record.config),
        _failure(record),
        "<h2>Learning curves</h2>",
        _curves(summary),
        "<h2>Per epoch</h2>",
        _epoch_table(summary),
        "<h2>State machines</h2>",
        '<p class="note">Drawn from the ASL definitions; each state: how often it was entered '
        "and the time spent in it, summed over its visits (parallel Map iterations add up). "
        "Dashed red: catches; dashed outline: never entered.</p>",
        '<div class="machines">',
        *(_machine(machine) for machine in machines),
        "</div>",
        "<h2>Lambda functions</h2>",
        _functions(summary),
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>stepnet run {escape(record.run_id)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write(record: RunRecord, path: Path) -> Path:
    """Summarize ``record`` and write its page to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(summarize(record)), encoding="utf-8")
    return path
