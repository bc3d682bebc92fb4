"""What a report is made of, gathered from a run's folder or from an account.

:class:`RunRecord` holds a run's execution histories, its evaluated epochs and its functions'
memory sizes (and ``usage.json`` when the local engine measured it). Two sources, one record:

* :func:`from_dir`: the folder ``stepnet local --out DIR`` wrote (``executions/*.json``,
  ``metrics.json`` — or, for a run that exported no model, the epochs' own outputs —,
  ``usage.json``);
* :func:`from_client`: an account through :class:`~stepnet.client.StepnetClient`, AWS or the
  emulated one alike: the histories from ``GetExecutionHistory``, the epochs from the runs
  table, the memory sizes from ``GetFunctionConfiguration``.

Everything after the record (:mod:`stepnet.report.summary`, :mod:`stepnet.report.page`) is the
same code for both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from stepnet.report.history import HistoryEvent, details, execution_input, failure
from trainer.contract.functions import FUNCTIONS
from trainer.executions import readable_cause
from trainer.messages import RunProgress
from trainer.training import exports
from trainer.training.cursor import parse_epoch_name, training_attempt

if TYPE_CHECKING:
    from stepnet.client import MetricsRow, StepnetClient
    from stepnet.engine.runtime import UsageReport

EXECUTIONS_DIR = "executions"
USAGE_JSON = "usage.json"
REPORT_HTML = "report.html"

_TERMINAL = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}


class ReportError(Exception):
    """Nothing to report on: a folder without histories, a run the account does not know."""


@dataclass(frozen=True)
class RunRecord:
    """One run, as a report sees it."""

    run_id: str
    histories: Mapping[str, list[HistoryEvent]]  # execution name -> its events
    metrics: list[MetricsRow] = field(default_factory=list)
    memory_mb: Mapping[str, int] = field(default_factory=dict)  # per logical function
    usage: Mapping[str, UsageReport] | None = None  # usage.json, where the engine measured it

    @property
    def training(self) -> list[HistoryEvent]:
        """The Training execution's history (named after the run)."""
        return self.histories.get(self.run_id, [])

    @property
    def status(self) -> str:
        """SUCCEEDED, FAILED, TIMED_OUT, ABORTED, or RUNNING while the history has no end."""
        for event in reversed(self.training):
            if event["type"] in _TERMINAL:
                return _TERMINAL[event["type"]]
        return "RUNNING"

    @property
    def cause(self) -> str | None:
        """The innermost readable message of why the run failed, or None."""
        ended = failure(self.training)
        if ended is None:
            return None
        error, cause = ended
        return readable_cause({"error": error, "cause": cause})

    @property
    def config(self) -> dict[str, Any]:
        """The run's config, as the Training execution was started with it."""
        return execution_input(self.training)

    def epoch_of(self, execution: str) -> int | None:
        """The epoch an execution trained (its name ``<run>-epoch-NNN[-part-MM]``), else None."""
        return parse_epoch_name(self.run_id, execution)


def contract_memory() -> dict[str, int]:
    """The functions' memory as the contract sizes them (a deployment may size them larger)."""
    return {name: spec.memory_mb for name, spec in FUNCTIONS.items()}


def from_dir(folder: Path) -> RunRecord:
    """The record of the run ``stepnet local --out folder`` wrote."""
    executions = folder / EXECUTIONS_DIR
    files = sorted(executions.glob("*.json")) if executions.is_dir() else []
    if not files:
        raise ReportError(
            f"{folder} has no {EXECUTIONS_DIR}/*.json: not a folder `stepnet local --out` wrote"
        )
    histories = {path.stem: json.loads(path.read_text()) for path in files}
    # the Training execution is the one no other execution's name extends
    run_id = min(histories, key=len)
    if (folder / exports.METRICS_JSON).is_file():
        metrics = json.loads((folder / exports.METRICS_JSON).read_text())["epochs"]
    else:  # a run that exported no model (it failed): its epochs as they ended
        metrics = evaluated_epochs(histories.values())
    usage: dict[str, UsageReport] | None = None
    memory = contract_memory()
    if (folder / USAGE_JSON).is_file():
        usage = json.loads((folder / USAGE_JSON).read_text())
        memory |= {name: row["memory_mb"] for name, row in (usage or {}).items()}
    return RunRecord(run_id, histories, metrics, memory, usage)


def evaluated_epochs(histories: Iterable[Sequence[HistoryEvent]]) -> list[MetricsRow]:
    """The epochs' metrics as the executions that evaluated them returned them: an output
    ``{"run": RunProgress}`` whose ``metrics`` is the epoch's row (``trainer.messages``)."""
    rows: dict[int, MetricsRow] = {}
    for events in histories:
        for event in events:
            if event["type"] != "ExecutionSucceeded":
                continue
            try:
                output = json.loads(details(event).get("output") or "{}")
                progress = RunProgress.model_validate(output.get("run"))
            except (json.JSONDecodeError, AttributeError, ValidationError):
                continue
            if progress.metrics is not None and "epoch" in progress.metrics:
                rows[int(progress.metrics["epoch"])] = dict(progress.metrics)
    return [rows[epoch] for epoch in sorted(rows)]


def from_client(client: StepnetClient, run_id: str) -> RunRecord:
    """The record of run ``run_id`` on the account ``client`` talks to (AWS or emulated)."""
    try:
        histories = {name: client.history(arn) for name, arn in client.run_executions(run_id)}
    except client.sfn.exceptions.ExecutionDoesNotExist:
        histories = {}
    if not any(training_attempt(run_id, name) is not None for name in histories):
        raise ReportError(
            f"run {run_id} has no Training execution on stack {client.resources.stack_name}"
        )
    return RunRecord(
        run_id,
        histories,
        client.metrics(run_id),
        contract_memory() | client.function_memory(list(FUNCTIONS)),
    )
