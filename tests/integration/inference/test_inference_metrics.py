"""The prediction functions' metrics, as Lambda would log them: one valid EMF document per request
and per predicted file, with the latency and the rows; the pipeline is a dimension only if it
serves a model (a caller cannot mint metric series with made-up names)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import emf

from inference import metrics
from inference.handlers import batch, online
from trainer.contract import monitoring

NAMESPACE = monitoring.metrics_namespace("test")


@pytest.fixture
def in_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "test-Predict")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)


def request(pipeline: str, rows: list[list[float]]) -> dict[str, Any]:
    return {"pathParameters": {"pipeline": pipeline}, "body": json.dumps({"rows": rows})}


def written(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if '"_aws"' in line]
    for line in lines:
        assert emf.problems(line) == []
    return emf.documents("\n".join(lines))


def test_a_request_writes_its_latency_and_rows_under_its_pipeline(
    container: Any, promote: Any, classifier_dir: Path, in_lambda: None,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given
    pointer = promote("digits", classifier_dir)
    capsys.readouterr()

    # When
    status = online(request("digits", np.zeros((3, 64)).tolist()))["statusCode"]

    # Then
    (document,) = written(capsys)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert status == 200
    assert directive["Namespace"] == NAMESPACE
    assert directive["Dimensions"] == [["entry", "service"], ["service", "entry", "pipeline"]]
    assert {(m["Name"], m["Unit"]) for m in directive["Metrics"]} == {
        (spec.name, spec.unit) for spec in monitoring.INFERENCE_METRICS
    }
    assert document["entry"] == "online" and document["pipeline"] == "digits"
    assert document["InferenceRows"] == [3] and document["InferenceLatency"][0] > 0
    assert (document["run_id"], document["model_version"]) == (pointer.run_id, pointer.version)


def test_a_pipeline_that_serves_nothing_is_no_dimension(
    container: Any, in_lambda: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # When
    status = online(request("made-up-name", [[0.0]]))["statusCode"]

    # Then
    (document,) = written(capsys)
    assert status == 404
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["entry", "service"]]
    assert "pipeline" not in document and document["InferenceRows"] == [0]


def test_a_predicted_file_writes_its_metrics_as_batch(
    container: Any, promote: Any, classifier_dir: Path, in_lambda: None,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # Given
    promote("digits", classifier_dir)
    buffer = io.BytesIO()
    np.savez(buffer, X=np.zeros((5, 64)))
    key = "inference/digits/in/five.npz"
    container.s3.put_object(Bucket=container.bucket, Key=key, Body=buffer.getvalue())
    event = {"Records": [{"s3": {"bucket": {"name": container.bucket}, "object": {"key": key}}}]}
    capsys.readouterr()

    # When
    batch(event)

    # Then
    (document,) = written(capsys)
    assert (document["entry"], document["pipeline"], document["InferenceRows"]) == (
        "batch", "digits", [5]
    )  # fmt: skip


def test_the_inference_package_spells_the_metrics_as_the_contract() -> None:
    assert (
        monitoring.INFERENCE_LATENCY.name, monitoring.INFERENCE_LATENCY.unit
    ) == (metrics.LATENCY, metrics.LATENCY_UNIT)  # fmt: skip
    assert (
        monitoring.INFERENCE_ROWS.name, monitoring.INFERENCE_ROWS.unit
    ) == (metrics.ROWS, metrics.ROWS_UNIT)  # fmt: skip
    assert (metrics.ENTRY, metrics.PIPELINE) == (monitoring.ENTRY, monitoring.PIPELINE)
