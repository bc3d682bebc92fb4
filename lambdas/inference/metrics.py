"""A prediction's CloudWatch metrics, written by Powertools in the Embedded Metric Format: one
JSON document on stdout per request (online) or per file (batch). Names, units and dimension
sets: ``trainer.contract.monitoring`` (the latency in milliseconds, the rows predicted; the
served run and model version are properties, not dimensions).

The ``pipeline`` dimension is added only for a pipeline that serves a model: a caller could
otherwise mint a new metric series, each a billed custom metric, with every name it sends.
"""

from __future__ import annotations

from typing import Any, Literal

# trainer.contract.monitoring's spelling (the inference package ships without the trainer's
# contract; tests/unit/inference/test_inference_metrics.py checks they agree)
ENTRY, PIPELINE = "entry", "pipeline"
LATENCY, LATENCY_UNIT = "InferenceLatency", "Milliseconds"
ROWS, ROWS_UNIT = "InferenceRows", "Count"


def emit_prediction(
    entry: Literal["online", "batch"],
    *,
    latency_ms: float,
    rows: int,
    pipeline: str | None,
    served: tuple[str, int] | None,
    namespace: str,
    service: str,
) -> dict[str, Any]:
    """Write one prediction's EMF document to stdout and return it. ``pipeline``: the pipeline
    if it serves a model (else None: no pipeline series); ``served``: its (run id, version)."""
    # imported here: only a function Lambda runs writes metrics, and `stepnet predict` and the
    # bundle's imports stay free of it (the asset ships it: infra.bundling)
    from aws_lambda_powertools.metrics import EphemeralMetrics

    metrics = EphemeralMetrics(namespace=namespace, service=service)
    metrics.add_dimension(name=ENTRY, value=entry)
    metrics.add_metric(name=LATENCY, unit=LATENCY_UNIT, value=latency_ms)
    metrics.add_metric(name=ROWS, unit=ROWS_UNIT, value=rows)
    if pipeline is not None:
        metrics.add_dimensions(service=service, entry=entry, pipeline=pipeline)
    if served is not None:
        metrics.add_metadata(key="run_id", value=served[0])
        metrics.add_metadata(key="model_version", value=served[1])
    document: dict[str, Any] = dict(metrics.serialize_metric_set())
    metrics.flush_metrics()
    return document
