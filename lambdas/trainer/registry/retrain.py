"""Retraining a pipeline on new data, one run at a time: the Retrain machine's two steps.

**Claim** (``claim``): the trigger — S3's ``Object Created`` event through EventBridge for
``datasets/<pipeline>/<name>.csv|.npz``, or a pipeline's schedule — becomes a run of the
pipeline's **registered config** (the production model's run's config; before any promotion, the
newest registered model's) with ``dataset.source`` replaced by the uploaded file (a schedule
keeps the config's dataset) and a new run id. Then the pipeline's claim record
(``trainer.store.claims``) decides:

* free: this Retrain execution takes it and trains (``run``);
* held by another execution: the run is recorded as the pipeline's **pending** run and this
  execution ends (``pending``). Uploads during a run **coalesce**: a newer pending run replaces
  an older one. Each upload is a whole dataset, so the newest is the one worth training; queueing
  every upload would train (and pay for) models on data already superseded, and the promotion
  rule would have to judge each of them in turn.

**Release** (``release``), after the Training execution ends however it ends: if a run is
pending, the same execution takes it (``run``); else the pipeline is free (``done``).

Every write is a conditional put on the record's revision (a race is read again and decided
again), and both steps are safe to run twice: the run id derives from the trigger's event id,
so a retried claim finds its own run and returns it again.

Known limit: a Retrain execution stopped by hand (StopExecution) never releases; the next
trigger is then kept pending until the claim is released (``stepnet`` has no command for it
yet: delete the ``retrain`` record of partition ``pipeline#<name>``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from trainer.contract import retrain as contract
from trainer.store import Store
from trainer.store.claims import ClaimChangedError
from trainer.store.registry import MODEL_RECORD_PREFIX, PRODUCTION_RECORD
from trainer.store.runs import timestamp

Clock = Callable[[], float]
Action = Literal["run", "pending", "ignored", "done"]
ATTEMPTS = 5  # conditional writes that lose a race are retried this often
RUN_ID_PIPELINE_CHARS = 20  # run ids are at most 40 characters: <pipeline[:20]>-<14>-<4>


@dataclass(frozen=True)
class Outcome:
    """What the Retrain machine does next (``action``), for which pipeline and run."""

    action: Action
    reason: str
    pipeline: str | None = None
    run_id: str | None = None
    config: dict[str, Any] | None = None


@dataclass(frozen=True)
class Trigger:
    pipeline: str
    source: str | None  # the uploaded dataset's URI; None: the registered config's own
    event_id: str
    time: str


def read_trigger(event: Mapping[str, Any], bucket: str) -> Trigger | str:
    """The trigger in the Retrain execution's input, or why it is none."""
    if event.get("source") == contract.SCHEDULE_SOURCE:
        pipeline = event.get("pipeline")
        if not isinstance(pipeline, str):
            return f"a schedule's input names no pipeline: {event!r}"
        return Trigger(pipeline, None, f"schedule-{pipeline}", str(event.get("time", "")))
    detail = event.get("detail")
    if event.get("source") != contract.S3_SOURCE or not isinstance(detail, Mapping):
        return f"not an S3 event or a schedule: source {event.get('source')!r}"
    key = str((detail.get("object") or {}).get("key", ""))
    name = str((detail.get("bucket") or {}).get("name", ""))
    if name != bucket:
        return f"an object of bucket {name!r}, not of the stack's bucket {bucket!r}"
    upload = contract.dataset_upload(key)
    if isinstance(upload, str):
        return upload
    return Trigger(
        upload.pipeline,
        f"s3://{bucket}/{key}",
        str(event.get("id", key)),
        str(event.get("time", "")),
    )


def retrain_run_id(pipeline: str, event_id: str, now: float) -> str:
    """``<pipeline[:20]>-<YYYYmmddHHMMSS>-<4 hex of the event id>``: readable, sortable, at most
    40 characters, and the same for a retried claim of the same event within the second."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S")
    digest = hashlib.sha256(f"{pipeline}\0{event_id}".encode()).hexdigest()[:4]
    return f"{pipeline[:RUN_ID_PIPELINE_CHARS]}-{stamp}-{digest}"


def registered_run(store: Store, pipeline: str) -> str | None:
    """The run whose config the pipeline retrains: production's, else the newest registered."""
    records = store.runs.list_registry(pipeline)
    production = records.get(PRODUCTION_RECORD)
    if production is not None:
        return str(production["run_id"])
    models = [doc for sk, doc in records.items() if sk.startswith(MODEL_RECORD_PREFIX)]
    if not models:
        return None
    newest = max(models, key=lambda doc: (str(doc.get("created_at", "")), str(doc["run_id"])))
    return str(newest["run_id"])


def run_config(store: Store, pipeline: str, trigger: Trigger, run_id: str) -> dict[str, Any] | None:
    """The new run's config: the registered run's config with the new run id, the pipeline named
    and (for an upload) the uploaded dataset; None if the pipeline has no registered model."""
    source_run = registered_run(store, pipeline)
    if source_run is None:
        return None
    config: dict[str, Any] = json.loads(store.runs.get_config_json(source_run))
    config["run_id"] = run_id
    config["pipeline"] = pipeline
    if trigger.source is not None:
        config["dataset"] = {**config.get("dataset", {}), "source": trigger.source}
    return config


def claim(
    store: Store, event: Mapping[str, Any], execution: str, *, bucket: str, clock: Clock = time.time
) -> Outcome:
    """The Retrain machine's first step (module docstring)."""
    trigger = read_trigger(event, bucket)
    if isinstance(trigger, str):
        return Outcome("ignored", trigger)
    now = clock()
    run_id = retrain_run_id(trigger.pipeline, trigger.event_id, now)
    config = run_config(store, trigger.pipeline, trigger, run_id)
    if config is None:
        return Outcome(
            "ignored",
            f"pipeline {trigger.pipeline!r} has no registered model to retrain: train one first "
            '(POST /runs or stepnet start with "pipeline" set), then uploads retrain it',
            pipeline=trigger.pipeline,
        )
    run = {
        "run_id": run_id,
        "config": config,
        "source": trigger.source,
        "received_at": timestamp(now),
    }
    for _ in range(ATTEMPTS):
        current = store.runs.get_claim(trigger.pipeline)
        revision = 0 if current is None else int(current["revision"])
        holder = None if current is None else current.get("holder")
        if holder == execution:  # a retried claim: this execution took it already
            return _run(trigger.pipeline, current or {}, "claimed (again: a retried step)")
        try:
            if holder is None:
                store.runs.put_claim(
                    trigger.pipeline,
                    {"holder": execution, "run_id": run_id, "config": config, "pending": None},
                    revision + 1,
                )
                return Outcome("run", "the pipeline was free", trigger.pipeline, run_id, config)
            pending = (current or {}).get("pending")
            if pending is not None and pending.get("run_id") == run_id:
                return Outcome(
                    "pending", "already pending (a retried step)", trigger.pipeline, run_id
                )
            store.runs.put_claim(
                trigger.pipeline, {**_kept(current or {}), "pending": run}, revision + 1
            )
        except ClaimChangedError:
            continue
        replaced = "" if pending is None else f", replacing pending run {pending.get('run_id')}"
        return Outcome(
            "pending",
            f"run {(current or {}).get('run_id')} of execution {holder} holds the pipeline; this "
            f"data trains when it ends{replaced}",
            trigger.pipeline,
            run_id,
        )
    raise ClaimChangedError(trigger.pipeline, revision + 1)


def release(store: Store, pipeline: str, run_id: str, execution: str) -> Outcome:
    """The Retrain machine's step after a Training execution ends (module docstring)."""
    revision = 0
    for _ in range(ATTEMPTS):
        current = store.runs.get_claim(pipeline)
        if current is None or current.get("holder") != execution:
            return Outcome("done", "the pipeline is not held by this execution", pipeline)
        if current.get("run_id") != run_id:  # a retried release that handed over already
            return _run(pipeline, current, "handed over (again: a retried step)")
        pending = current.get("pending")
        revision = int(current["revision"])
        try:
            if pending is None:
                store.runs.put_claim(
                    pipeline, {"holder": None, "run_id": None, "config": None, "pending": None},
                    revision + 1,
                )  # fmt: skip
                return Outcome("done", f"run {run_id} ended; nothing pending", pipeline)
            store.runs.put_claim(
                pipeline,
                {"holder": execution, "run_id": pending["run_id"], "config": pending["config"],
                 "pending": None},
                revision + 1,
            )  # fmt: skip
        except ClaimChangedError:
            continue
        return Outcome(
            "run", f"run {run_id} ended; training the data uploaded meanwhile", pipeline,
            str(pending["run_id"]), dict(pending["config"]),
        )  # fmt: skip
    raise ClaimChangedError(pipeline, revision + 1)


def _run(pipeline: str, current: Mapping[str, Any], reason: str) -> Outcome:
    return Outcome("run", reason, pipeline, str(current["run_id"]), dict(current["config"]))


def _kept(current: Mapping[str, Any]) -> dict[str, Any]:
    return {key: current.get(key) for key in ("holder", "run_id", "config")}
