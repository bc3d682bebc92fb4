"""What ``stepnet runs`` and ``stepnet show RUN`` read of a home: plain rows, no rendering."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepnet.home import Home
from stepnet.home.lifecycle import run_state
from trainer.store import RunNotFoundError


@dataclass(frozen=True)
class RunRow:
    """One line of ``stepnet runs``."""

    run_id: str
    state: str  # run_state: RUNNING, SUCCEEDED, FAILED, INTERRUPTED, CREATED…
    epochs_done: int
    epochs: int
    last: dict[str, Any] | None  # the last evaluated epoch's metrics row
    created_at: str


@dataclass(frozen=True)
class RunDetails:
    """Everything ``stepnet show RUN`` prints (and ``stepnet resume`` starts from)."""

    row: RunRow
    config: dict[str, Any]
    dataset: dict[str, Any] | None  # the prepared dataset's facts, once prepared
    status: dict[str, Any] | None  # the status record: status, updated_at, cause…
    owner: dict[str, Any] | None  # the process that last ran it: pid, host, started_at
    metrics: list[dict[str, Any]]
    latest_version: int | None  # the newest weights version written whole
    model: Path | None  # the folder of the exported model.npz, model.json, metrics.json


def run_row(home: Home, run_id: str) -> RunRow:
    config = json.loads(home.runs.get_config_json(run_id))  # RunNotFoundError for no run
    metrics = home.runs.list_epoch_metrics(run_id)
    return RunRow(
        run_id=run_id,
        state=run_state(home, run_id),
        epochs_done=len(metrics),
        epochs=int(config.get("epochs", 0)),
        last=metrics[-1] if metrics else None,
        created_at=home.runs.created_at(run_id),
    )


def list_rows(home: Home) -> list[RunRow]:
    """Every run of the home, oldest first."""
    return [run_row(home, run_id) for run_id in home.runs.list_runs()]


def run_details(home: Home, run_id: str) -> RunDetails:
    row = run_row(home, run_id)
    try:
        dataset: dict[str, Any] | None = home.runs.get_dataset_info(run_id)
    except RunNotFoundError:
        dataset = None
    try:
        status: dict[str, Any] | None = home.runs.get_status(run_id)
    except RunNotFoundError:
        status = None
    model = None
    uri = (status or {}).get("model_uri")
    if isinstance(uri, str) and home.objects.folder(uri).is_dir():
        model = home.objects.folder(uri)
    return RunDetails(
        row=row,
        config=json.loads(home.runs.get_config_json(run_id)),
        dataset=dataset,
        status=status,
        owner=home.runs.owner(run_id),
        metrics=home.runs.list_epoch_metrics(run_id),
        latest_version=home.latest_weights_version(run_id),
        model=model,
    )
