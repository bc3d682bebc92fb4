"""``stepnet watch RUN``: a run's live progress — epochs, steps within the epoch, the last losses.

Read through :class:`~stepnet.client.StepnetClient`, so the same code follows a run on AWS and
on the emulated account (``stepnet serve``, or a :class:`~stepnet.engine.LocalAccount` in
process). Each poll makes four kinds of request: ``DescribeExecution`` (the Training
execution), a ``Query`` of the run's evaluated epochs, ``ListExecutions`` of the Epoch machine
and one ``GetExecutionHistory`` page of the newest epoch execution (its newest
:data:`HISTORY_TAIL` events).

Where an epoch stands is read from the epoch execution's history: the states carry the cursor
(``trainer.messages.Cursor``: ``epoch``, ``step`` — the steps done —, ``steps``, and
``losses``, the last trained step's micro-batch losses) in their input and output, and the
optimizer update's input carries the step's micro-batch results, each with its ``loss``. The
newest of each in the history is the position and the last losses. The steps run in Express
chunks, whose histories ``GetExecutionHistory`` refuses: the epoch's Standard history shows
the cursor at each chunk's end, so the position moves a chunk of steps at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from stepnet.client import TERMINAL, HistoryEvent, MetricsRow, StepnetClient
from stepnet.report.history import details
from trainer.executions import readable_cause

HISTORY_TAIL: Final = 1000  # GetExecutionHistory's largest page
EPOCHS_SHOWN: Final = 5  # the table of the newest evaluated epochs


@dataclass(frozen=True)
class StepPosition:
    """Where an epoch execution stands: its epoch, the steps done of ``steps``, and the
    micro-batch losses of the newest trained step (empty before the first)."""

    epoch: int
    step: int
    steps: int
    losses: tuple[float, ...] = ()


def _documents(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The JSON objects an event carries (a state's input or output, a task's output)."""
    found = []
    for key in ("output", "input"):
        text = details(event).get(key)
        if isinstance(text, str) and text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                found.append(parsed)
    return found


def _cursor(document: Mapping[str, Any]) -> Mapping[str, Any] | None:
    cursor = document.get("cursor")
    if isinstance(cursor, Mapping) and {"epoch", "step", "steps"} <= set(cursor):
        return cursor
    return None


def _losses(document: Mapping[str, Any]) -> tuple[float, ...] | None:
    cursor = _cursor(document)
    carried = cursor.get("losses") if cursor is not None else None
    if isinstance(carried, list) and carried:  # a chunk's output: its last step's losses
        return tuple(float(loss) for loss in carried)
    results = document.get("results")
    if (
        isinstance(results, list)
        and results
        and all(isinstance(r, Mapping) and isinstance(r.get("loss"), int | float) for r in results)
    ):
        return tuple(float(r["loss"]) for r in results)
    return None


def position(events: Sequence[HistoryEvent]) -> StepPosition | None:
    """The newest cursor and micro-batch losses in an epoch execution's (newest) events."""
    cursor: Mapping[str, Any] | None = None
    losses: tuple[float, ...] | None = None
    for event in sorted(events, key=lambda e: e["id"], reverse=True):
        for document in _documents(event):
            cursor = cursor or _cursor(document)
            losses = losses or _losses(document)
        if cursor is not None and losses is not None:
            break
    if cursor is None:
        return None
    return StepPosition(
        int(cursor["epoch"]), int(cursor["step"]), int(cursor["steps"]), losses or ()
    )


@dataclass(frozen=True)
class Snapshot:
    """A run as one poll saw it."""

    run_id: str
    status: str
    epochs: int | None  # of the run's config
    metrics: list[MetricsRow]  # the evaluated epochs
    execution: str | None  # the newest epoch execution's name
    position: StepPosition | None
    cause: str | None  # why it failed, once it has

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


def snapshot(client: StepnetClient, run_id: str) -> Snapshot:
    """Poll the run once."""
    description = client.describe(run_id)
    try:
        config = json.loads(description.get("input") or "{}")
    except json.JSONDecodeError:
        config = {}
    epochs = config.get("epochs") if isinstance(config, dict) else None
    metrics = client.metrics(run_id)
    executions = client.epoch_executions(run_id)
    newest = executions[-1] if executions else None
    where = None if newest is None else position(client.history(newest.arn, newest=HISTORY_TAIL))
    if where is None and len(executions) >= 2:
        # an epoch just started, not planned yet: step 0 of as many steps as the one before
        before = position(client.history(executions[-2].arn, newest=HISTORY_TAIL))
        if before is not None:
            where = StepPosition(before.epoch + 1, 0, before.steps)
    status = str(description["status"])
    failed = status in TERMINAL and status != "SUCCEEDED"
    return Snapshot(
        run_id=run_id,
        status=status,
        epochs=int(epochs) if isinstance(epochs, int) else None,
        metrics=metrics,
        execution=None if newest is None else newest.name,
        position=where,
        cause=readable_cause(description) if failed else None,
    )


def _bar(label: str, done: int, total: int | None) -> Table:
    line = Table.grid(padding=(0, 1))
    line.add_column(width=22)
    line.add_column(width=40)
    line.add_column()
    shown = "?" if total is None else str(total)
    line.add_row(label, ProgressBar(total=float(total or 1), completed=float(done), width=40),
                 f"{done}/{shown}")  # fmt: skip
    return line


def _metric(row: MetricsRow, key: str) -> str:
    value = row.get(key)
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def render(snap: Snapshot) -> RenderableType:
    """The snapshot as rich renders it: status, the epochs' and the steps' bars, the last
    micro-batch losses, the newest evaluated epochs."""
    style = {"SUCCEEDED": "green", "RUNNING": "blue"}.get(snap.status, "red")
    parts: list[RenderableType] = [
        Text.assemble(("run ", ""), (snap.run_id, "bold"), " ", (snap.status, f"bold {style}"))
    ]
    parts.append(_bar("epochs evaluated", len(snap.metrics), snap.epochs))
    where = snap.position
    if where is not None:
        parts.append(_bar(f"epoch {where.epoch} steps", where.step, where.steps))
        if where.losses:
            losses = " ".join(f"{loss:.4f}" for loss in where.losses)
            parts.append(Text(f"last step's micro-batch losses: {losses}"))
    if snap.metrics:
        table = Table(title="newest epochs", title_justify="left")
        for column in ("epoch", "train_loss", "val_loss", "val_accuracy"):
            table.add_column(column, justify="right")
        for row in snap.metrics[-EPOCHS_SHOWN:]:
            table.add_row(
                str(row["epoch"]), _metric(row, "train_loss"), _metric(row, "val_loss"),
                _metric(row, "val_accuracy"),
            )  # fmt: skip
        parts.append(table)
    if snap.cause:
        parts.append(Text(f"failed: {snap.cause}", style="red"))
    return Group(*parts)


def follow(
    client: StepnetClient,
    run_id: str,
    console: Console,
    *,
    poll_seconds: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    on_snapshot: Callable[[Snapshot], None] | None = None,
) -> Snapshot:
    """Poll the run until it ends, showing :func:`render` of each poll live; the last poll.
    ``sleep`` waits between polls; ``on_snapshot`` sees every poll (tests record them)."""
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            snap = snapshot(client, run_id)
            if on_snapshot is not None:
                on_snapshot(snap)
            live.update(render(snap), refresh=True)
            if snap.done:
                return snap
            sleep(poll_seconds)
