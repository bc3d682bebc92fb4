"""Registering, promoting and rolling back, on any :class:`~trainer.store.Store`.

The workflow's handlers (``trainer.handlers.register``, ``trainer.handlers.promote``) and the
CLI (``stepnet promote``, ``stepnet rollback``, ``stepnet models``, through ``stepnet.client``)
call these functions. Every store call goes through ``trainer.dal``.

**Atomic promotion.** The production record is replaced with a conditional put on its revision
(``trainer.store.registry``): two promotions cannot interleave; the one that loses reads the new
production and decides again. The S3 pointer the inference function reads is then written
from the record and checked against it (:func:`sync_pointer`): a writer whose pointer may have
been overtaken by a newer revision writes again, so the pointer always ends at the record's
latest revision.

**Retries.** Each step may run twice (Step Functions retries a task whose response was lost):
registering is write-once; the decision is recorded once and a retried decision returns the
recorded one (after re-syncing the pointer, in case the first attempt stopped before it).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from trainer import dal
from trainer.registry.records import (
    Action,
    Decision,
    ModelVersion,
    Production,
    RegistryError,
    decide,
    first_production,
    rollback_target,
)
from trainer.store import Store
from trainer.store.registry import ProductionChangedError
from trainer.store.runs import timestamp
from trainer.training import exports

Clock = Callable[[], float]
ATTEMPTS = 5  # conditional writes that lose a race are retried this often


def config_digest(config_document: dict[str, object]) -> str:
    """sha256 of the training recipe: the full config (defaults filled in) without what does not
    change the weights (``run_id``, ``pipeline``, ``promote_if``). Equal digests, same recipe."""
    recipe = {
        k: v for k, v in config_document.items() if k not in {"run_id", "pipeline", "promote_if"}
    }
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def register(store: Store, run_id: str, version: int) -> ModelVersion:
    """Register the run's exported model (weights ``version``) in its pipeline (write-once)."""
    config = dal.run_config(store, run_id)
    info = dal.dataset_info(store, run_id)
    metrics = dal.epoch_metrics(store, run_id)
    if not metrics:
        raise RegistryError(f"run {run_id!r} has no evaluated epoch to register")
    prefix = dal.model_prefix(run_id)
    names = (exports.MODEL_NPZ, exports.MODEL_JSON, exports.METRICS_JSON)
    model = ModelVersion(
        pipeline=config.pipeline_name,
        run_id=run_id,
        version=version,
        loss=config.loss,
        metrics=metrics[-1],
        promote_if={"metric": config.promotion_metric, "margin": config.promote_if.margin},
        config_digest=config_digest(config.model_dump(mode="json")),
        dataset={
            "source": config.dataset.source,
            "validation_fraction": config.dataset.validation_fraction,
            **{k: info[k] for k in ("n_train", "n_val", "n_features", "n_outputs")},
        },
        model_uri=store.objects.uri(prefix),
        files={name: store.objects.uri(prefix + name) for name in names},
    )
    return dal.save_model_version(store, model)


def promote_if_better(
    store: Store, pipeline: str, run_id: str, clock: Clock = time.time
) -> Decision:
    """The workflow's last stage: promote the run's registered model if its rule says so, and
    record the decision (promoted or why not)."""
    recorded = dal.decision(store, pipeline, run_id)
    if recorded is not None:  # a retry: the decision stands
        if recorded.promoted:
            sync_pointer(store, pipeline)
        return recorded
    candidate = _registered(store, pipeline, run_id)
    for _ in range(ATTEMPTS):
        current = dal.production(store, pipeline)
        at = timestamp(clock())
        if current is not None and current.run_id == run_id:  # promoted before a lost response
            decision = _decision(candidate, True, current.reason, None, None, at)
            break
        served = None if current is None else dal.model_version(store, pipeline, current.run_id)
        promote, reason, value, theirs = decide(candidate, served, current)
        decision = _decision(candidate, promote, reason, value, theirs, at)
        if not promote:
            break
        try:
            dal.save_production(store, _next(current, candidate, "promote", at, reason))
        except ProductionChangedError:
            continue
        break
    else:
        raise RegistryError(f"pipeline {pipeline!r}: production kept changing; retry")
    if decision.promoted:
        sync_pointer(store, pipeline)
    return dal.save_decision(store, decision)


def promote(store: Store, run_id: str, reason: str = "", clock: Clock = time.time) -> Production:
    """``stepnet promote RUN``: make the run's registered model its pipeline's production model,
    whatever its metrics."""
    config = dal.run_config(store, run_id)
    pipeline = config.pipeline_name
    candidate = _registered(store, pipeline, run_id)
    why = reason or "promoted by hand (stepnet promote)"
    for _ in range(ATTEMPTS):
        current = dal.production(store, pipeline)
        if current is not None and current.run_id == run_id:
            raise RegistryError(
                f"run {run_id!r} is already pipeline {pipeline!r}'s production model"
            )
        changed = _next(current, candidate, "manual", timestamp(clock()), why)
        try:
            dal.save_production(store, changed)
        except ProductionChangedError:
            continue
        return sync_pointer(store, pipeline) or changed
    raise RegistryError(f"pipeline {pipeline!r}: production kept changing; retry")


def rollback(store: Store, pipeline: str, reason: str = "", clock: Clock = time.time) -> Production:
    """``stepnet rollback PIPELINE``: serve again the model the current one replaced."""
    for _ in range(ATTEMPTS):
        current = dal.production(store, pipeline)
        if current is None:
            raise RegistryError(f"pipeline {pipeline!r} has no production model to roll back")
        target = rollback_target(current)
        model = _registered(store, pipeline, str(target["run_id"]))
        why = f"rolled back from {current.run_id!r}" + (f": {reason}" if reason else "")
        changed = _next(current, model, "rollback", timestamp(clock()), why)
        try:
            dal.save_production(store, changed)
        except ProductionChangedError:
            continue
        return sync_pointer(store, pipeline) or changed
    raise RegistryError(f"pipeline {pipeline!r}: production kept changing; retry")


def sync_pointer(store: Store, pipeline: str) -> Production | None:
    """Write the production pointer from the production record until the record did not change
    while it was written; returns the production the pointer names (None: nothing served)."""
    for _ in range(ATTEMPTS):
        current = dal.production(store, pipeline)
        if current is None:
            return None
        dal.write_pointer(store, current)
        again = dal.production(store, pipeline)
        if again is not None and again.revision == current.revision:
            return current
    raise RegistryError(f"pipeline {pipeline!r}: production kept changing; retry")


@dataclass(frozen=True)
class PipelineView:
    """A pipeline as ``stepnet models`` shows it."""

    pipeline: str
    models: list[ModelVersion]
    decisions: dict[str, Decision]
    production: Production | None


def pipeline_view(store: Store, pipeline: str) -> PipelineView:
    models, decisions, served = dal.registry_records(store, pipeline)
    if not models and served is None:
        known = dal.pipelines(store)
        raise RegistryError(
            f"pipeline {pipeline!r} has no registered model"
            + (f"; pipelines: {', '.join(known)}" if known else "; no pipeline has one yet")
        )
    return PipelineView(pipeline, models, decisions, served)


def _registered(store: Store, pipeline: str, run_id: str) -> ModelVersion:
    model = dal.model_version(store, pipeline, run_id)
    if model is None:
        raise RegistryError(
            f"run {run_id!r} has no model registered in pipeline {pipeline!r}; a run's model is "
            "registered when its Training execution finishes"
        )
    return model


def _next(
    current: Production | None, model: ModelVersion, action: Action, at: str, reason: str
) -> Production:
    if current is None:
        return first_production(model, action=action, at=at, reason=reason)
    return current.replaced_by(model, action=action, at=at, reason=reason)


def _decision(
    candidate: ModelVersion,
    promoted: bool,
    reason: str,
    value: float | None,
    theirs: dict[str, object] | None,
    at: str,
) -> Decision:
    return Decision(
        pipeline=candidate.pipeline, run_id=candidate.run_id, version=candidate.version,
        promoted=promoted, reason=reason, metric=str(candidate.promote_if["metric"]),
        candidate=value, production=theirs, decided_at=at,
    )  # fmt: skip
