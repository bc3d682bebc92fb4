"""An epoch's CloudWatch metrics, written by Powertools in the Embedded Metric Format (EMF): one
JSON document on stdout per epoch, which CloudWatch Logs turns into metrics without an API call.
The names, units, dimension sets and what is a property are ``trainer.contract.monitoring``'s.

From the epoch's record alone (Evaluate runs once per epoch): the losses and accuracy, and the
epoch's wall time, from the previous epoch's evaluation (or the run's start, for the first) to
this one's::

    step_time          = wall_seconds / steps
    examples_per_second = n_train / wall_seconds

(the wall time includes the Training execution's transitions between epochs; it is what an
epoch costs in time, not the compute inside it). ``Diverged`` is 1 when a loss is not finite or
the validation loss exceeds ``DIVERGENCE_RATIO`` times the previous epoch's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics

from trainer.contract import monitoring
from trainer.contract.monitoring import MetricSpec
from trainer.training.divergence import Divergence


@dataclass(frozen=True)
class EpochReport:
    """What Evaluate knows of an epoch (``val_accuracy`` None for a regression)."""

    pipeline: str
    run_id: str
    epoch: int
    version: int
    steps: int
    n_train: int
    train_loss: float
    val_loss: float
    val_accuracy: float | None
    wall_seconds: float | None  # None: the previous evaluation's time is unknown
    previous_val_loss: float | None


def diverged(val_loss: float, train_loss: float, previous_val_loss: float | None) -> bool:
    """A loss not finite, or the validation loss above DIVERGENCE_RATIO x the previous epoch's."""
    if not (math.isfinite(val_loss) and math.isfinite(train_loss)):
        return True
    return (
        previous_val_loss is not None and val_loss > monitoring.DIVERGENCE_RATIO * previous_val_loss
    )


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one ISO 8601 timestamp (the store's, ``…Z``) to another."""
    return (_parse(later) - _parse(earlier)).total_seconds()


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def epoch_values(report: EpochReport) -> dict[MetricSpec, float]:
    """The epoch's metric values (a metric without a value, such as a regression's accuracy or
    the timing of an epoch whose start is unknown, is left out)."""
    values: dict[MetricSpec, float] = {
        monitoring.TRAIN_LOSS: report.train_loss,
        monitoring.VALIDATION_LOSS: report.val_loss,
        monitoring.DIVERGED: float(
            diverged(report.val_loss, report.train_loss, report.previous_val_loss)
        ),
    }
    if report.val_accuracy is not None:
        values[monitoring.VALIDATION_ACCURACY] = report.val_accuracy
    if report.wall_seconds is not None and report.wall_seconds > 0 and report.steps > 0:
        values[monitoring.STEP_TIME] = report.wall_seconds / report.steps
        values[monitoring.EXAMPLES_PER_SECOND] = report.n_train / report.wall_seconds
    # CloudWatch refuses NaN and infinities: a diverged loss is told by Diverged alone
    return {spec: value for spec, value in values.items() if math.isfinite(value)}


def emit_epoch(report: EpochReport, *, namespace: str, service: str) -> dict[str, Any]:
    """Write the epoch's EMF document to stdout (Powertools' flush) and return it."""
    metrics = EphemeralMetrics(namespace=namespace, service=service)
    for spec, value in epoch_values(report).items():
        metrics.add_metric(name=spec.name, unit=spec.unit, value=value)
    _add_dimensions(metrics, service, pipeline=report.pipeline, run_id=report.run_id)
    for key, value in (
        ("epoch", report.epoch),
        ("version", report.version),
        ("steps", report.steps),
    ):
        metrics.add_metadata(key=key, value=value)
    document: dict[str, Any] = dict(metrics.serialize_metric_set())
    metrics.flush_metrics()
    return document


def _add_dimensions(metrics: EphemeralMetrics, service: str, *, pipeline: str, run_id: str) -> None:
    labels = {monitoring.PIPELINE: pipeline, monitoring.RUN: run_id}
    for dimension_set in monitoring.EPOCH_DIMENSION_SETS:
        if dimension_set:  # the first set, [service], is Powertools' own
            metrics.add_dimensions(service=service, **{d: labels[d] for d in dimension_set})


def emit_divergence(
    pipeline: str, run_id: str, divergence: Divergence, *, namespace: str, service: str
) -> dict[str, Any]:
    """``Diverged`` = 1 for a run the divergence guard stopped mid-epoch (its epoch is never
    evaluated, so the epoch document never tells it), with the epoch's dimension sets and where
    it diverged as properties; written to stdout (Powertools' flush) and returned."""
    metrics = EphemeralMetrics(namespace=namespace, service=service)
    spec = monitoring.DIVERGED
    metrics.add_metric(name=spec.name, unit=spec.unit, value=1.0)
    _add_dimensions(metrics, service, pipeline=pipeline, run_id=run_id)
    for key, value in divergence.document().items():
        if value is not None:
            metrics.add_metadata(key=key, value=value)
    document: dict[str, Any] = dict(metrics.serialize_metric_set())
    metrics.flush_metrics()
    return document
