"""What the stack watches: the functions' own metrics (Embedded Metric Format, written by
Powertools), the alarms and the dashboard — one spelling for the Lambdas that emit the metrics
(``trainer.metrics``, ``inference.handlers``), the stack that graphs and alarms on them
(``infra/monitoring.py``) and the tests.

**Namespace.** ``stepnet/<stack name>`` (:func:`metrics_namespace`, the functions'
``POWERTOOLS_METRICS_NAMESPACE``), so two stacks in one account keep their curves apart.

**Dimensions: what is one and what is a property.** Every custom metric is a distinct series per
combination of dimension values, and each series is a billed custom metric for the hours it
receives data. Powertools always adds ``service``. The epoch metrics are written with three
dimension sets: ``[service]`` (the stack-wide series the alarms watch: an alarm needs fixed
dimensions, and pipelines are created at run time), ``[service, pipeline]`` (the learning curves
per pipeline on the dashboard: pipelines are few and long-lived) and ``[service, pipeline,
run_id]`` (one run's curves; a run reports for its own hours only, so the series cost nothing
once it ends). The epoch number, the weights version and the steps are **properties** (EMF
members that are not dimensions): searchable in CloudWatch Logs Insights, never series of their
own. The predictions use ``[service, entry]`` (online or batch: their latencies differ by orders
of magnitude) and ``[service, entry, pipeline]``; the served run and version are properties.

Pure (stdlib only).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from trainer.contract import names

PIPELINE: Final = "pipeline"
RUN: Final = "run_id"
ENTRY: Final = "entry"  # "online" or "batch"
SERVICE: Final = "service"  # Powertools' own dimension (names.SERVICE_NAME)
Entry = Literal["online", "batch"]


def metrics_namespace(prefix: str) -> str:
    """The stack's custom metrics' namespace, e.g. ``stepnet/stepnet``."""
    return f"{names.SERVICE_NAME}/{prefix}"


Unit = Literal["None", "Seconds", "Milliseconds", "Count", "Count/Second"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: Unit
    description: str


# Per epoch, from the Evaluate function (trainer.metrics.epoch_metrics).
TRAIN_LOSS: Final = MetricSpec(
    "TrainLoss", "None", "data loss of the epoch's final weights, training part"
)
VALIDATION_LOSS: Final = MetricSpec("ValidationLoss", "None", "the same on the validation part")
VALIDATION_ACCURACY: Final = MetricSpec("ValidationAccuracy", "None", "classification only, 0-1")
STEP_TIME: Final = MetricSpec("StepTime", "Seconds", "the epoch's wall time per optimizer step")
EXAMPLES_PER_SECOND: Final = MetricSpec(
    "ExamplesPerSecond",
    "Count/Second",
    "training examples of the epoch per second of its wall time",
)
DIVERGED: Final = MetricSpec(
    "Diverged",
    "Count",
    "1 if a loss is not finite or the validation loss exceeds "
    "DIVERGENCE_RATIO x the previous epoch's, else 0",
)
EPOCH_METRICS: Final = (
    TRAIN_LOSS,
    VALIDATION_LOSS,
    VALIDATION_ACCURACY,
    STEP_TIME,
    EXAMPLES_PER_SECOND,
    DIVERGED,
)
EPOCH_DIMENSION_SETS: Final[tuple[tuple[str, ...], ...]] = ((), (PIPELINE,), (PIPELINE, RUN))
DIVERGENCE_RATIO: Final = 2.0

# Per invocation of a prediction function (inference.handlers): one per request or per file.
INFERENCE_LATENCY: Final = MetricSpec(
    "InferenceLatency", "Milliseconds", "the handler's time for one request or one file"
)
INFERENCE_ROWS: Final = MetricSpec("InferenceRows", "Count", "rows predicted")
INFERENCE_METRICS: Final = (INFERENCE_LATENCY, INFERENCE_ROWS)
INFERENCE_DIMENSION_SETS: Final[tuple[tuple[str, ...], ...]] = ((ENTRY,), (ENTRY, PIPELINE))

# --- alarms ---------------------------------------------------------------------------------------

Source = Literal["states", "lambda", "custom"]  # AWS/States per machine, AWS/Lambda, ours
Comparison = Literal["GreaterThanOrEqualToThreshold", "GreaterThanThreshold"]


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm: a metric of a machine (``states``), a function (``lambda``) or ours
    (``custom``, ``dimensions`` beside ``service``), its statistic over ``period_s`` compared
    with ``threshold`` in ``evaluation_periods`` consecutive periods. Missing data is not
    breaching (nothing ran)."""

    id: str
    description: str
    source: Source
    metric: str
    statistic: str
    threshold: float
    subject: str | None = None  # the machine or function (logical name), for states / lambda
    dimensions: Mapping[str, str] | None = None
    comparison: Comparison = "GreaterThanOrEqualToThreshold"
    period_s: int = 300
    evaluation_periods: int = 1


INFERENCE_P99_MS: Final = 1000.0  # online p99 over 3 x 5 min; the handler takes ~0.1 ms warm
PREDICTION_FUNCTIONS: Final = ("Predict", "PredictBatch")


def alarms(machines: Iterable[str]) -> tuple[AlarmSpec, ...]:
    """The stack's alarms, given its state machines (``trainer.contract.statemachines``, which
    this module does not import: the Lambdas that write the metrics ship without it)."""
    return (
        *(
            AlarmSpec(
                f"{machine}{metric.removeprefix('Executions')}",
                f"an execution of {machine} "
                f"{'failed' if metric == 'ExecutionsFailed' else 'timed out'}",
                "states",
                metric,
                "Sum",
                1,
                subject=machine,
            )
            for machine in machines
            for metric in ("ExecutionsFailed", "ExecutionsTimedOut")
        ),
        AlarmSpec(
            "Divergence",
            "a run's loss is not finite or its validation loss more than doubled in one epoch",
            "custom",
            DIVERGED.name,
            "Maximum",
            1,
        ),
        *(
            AlarmSpec(
                f"{function}Errors",
                f"the {function} function failed",
                "lambda",
                "Errors",
                "Sum",
                1,
                subject=function,
            )
            for function in PREDICTION_FUNCTIONS
        ),
        AlarmSpec(
            "InferenceLatencyP99",
            f"online predictions' p99 latency above {INFERENCE_P99_MS:g} ms for 15 minutes",
            "custom",
            INFERENCE_LATENCY.name,
            "p99",
            INFERENCE_P99_MS,
            dimensions={ENTRY: "online"},
            comparison="GreaterThanThreshold",
            evaluation_periods=3,
        ),
    )


# --- the dashboard: rows of graphs, each a title and what it shows ---------------------------------

Graph = Literal["per_pipeline", "executions", "lambda", "inference"]


@dataclass(frozen=True)
class WidgetSpec:
    """A graph: ``per_pipeline`` (our epoch metrics, one line per pipeline: a SEARCH), ``executions``
    (AWS/States ``metrics`` per machine), ``lambda`` (AWS/Lambda ``metrics`` per function, with
    ``statistic``), ``inference`` (our prediction metrics per entry)."""

    title: str
    graph: Graph
    metrics: tuple[str, ...]
    statistic: str = "Average"


DASHBOARD: Final[tuple[tuple[WidgetSpec, ...], ...]] = (
    (
        WidgetSpec("Training loss per pipeline", "per_pipeline", (TRAIN_LOSS.name,)),
        WidgetSpec("Validation loss per pipeline", "per_pipeline", (VALIDATION_LOSS.name,)),
        WidgetSpec("Validation accuracy per pipeline", "per_pipeline", (VALIDATION_ACCURACY.name,)),
    ),
    (
        WidgetSpec("Step time (s) per pipeline", "per_pipeline", (STEP_TIME.name,)),
        WidgetSpec("Examples per second per pipeline", "per_pipeline", (EXAMPLES_PER_SECOND.name,)),
        WidgetSpec(
            "Executions started, failed, timed out",
            "executions",
            ("ExecutionsStarted", "ExecutionsFailed", "ExecutionsTimedOut"),
            "Sum",
        ),
    ),
    (
        WidgetSpec("Lambda errors", "lambda", ("Errors",), "Sum"),
        WidgetSpec("Lambda throttles", "lambda", ("Throttles",), "Sum"),
        WidgetSpec("Lambda duration p99 (ms)", "lambda", ("Duration",), "p99"),
    ),
    (
        WidgetSpec(
            "Inference latency p50 / p99 (ms)", "inference", (INFERENCE_LATENCY.name,), "p99"
        ),
        WidgetSpec("Rows predicted", "inference", (INFERENCE_ROWS.name,), "Sum"),
    ),
)

# --- the alarm topic's email subscription: a deploy-time setting ----------------------------------

ALARM_EMAIL_CONTEXT: Final = "alarm_email"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SettingError(ValueError):
    """A deploy-time setting (CDK context) is malformed; the message names it and the fix."""


def alarm_email(value: object, *, source: str = f'context "{ALARM_EMAIL_CONTEXT}"') -> str | None:
    """The address the alarm topic mails (None: no subscription; the topic is still there)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise SettingError(
            f"{source} must be one email address (name@example.com), got {value!r}; "
            "leave it out for no subscription"
        )
    return value.strip()
