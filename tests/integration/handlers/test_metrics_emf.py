"""The functions' CloudWatch metrics, as Lambda would log them: each epoch's Evaluate writes one
valid EMF document (Powertools) with the contract's metrics, namespace, dimension sets and
properties; where no Lambda runs the handler (no AWS_LAMBDA_FUNCTION_NAME), nothing is written."""

from __future__ import annotations

from typing import Any

import pytest
from support import emf
from support.pipeline_driver import Pipeline

from trainer.contract import monitoring, names

NAMESPACE = monitoring.metrics_namespace("test")


def tiny(run_id: str, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "run_id": run_id,
        "pipeline": "digits",
        "dataset": {"source": "builtin:digits"},
        "model": {"layers": [{"units": 10, "activation": "softmax"}]},
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 2,
        "batch_size": 256,
        "mode": "fused",
    }
    return document | changes


def test_each_epoch_writes_one_valid_emf_document_with_the_expected_metrics(
    handler_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the handlers run as Lambda runs them, in a stack whose namespace is NAMESPACE
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "test-Evaluate")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    capsys.readouterr()

    # When a two-epoch run trains
    Pipeline().train(tiny("emf-run"), execution_name="emf-run")

    # Then each epoch wrote one document, valid EMF
    lines = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(lines) == 2
    for line in lines:
        assert emf.problems(line) == []
    first, second = emf.documents("\n".join(lines))
    (directive,) = second["_aws"]["CloudWatchMetrics"]
    # with the contract's namespace, metrics and units, and the three dimension sets
    assert directive["Namespace"] == NAMESPACE
    assert {(m["Name"], m["Unit"]) for m in directive["Metrics"]} == {
        (spec.name, spec.unit) for spec in monitoring.EPOCH_METRICS
    }
    assert directive["Dimensions"] == [
        ["service", *dimension_set] for dimension_set in monitoring.EPOCH_DIMENSION_SETS
    ]
    assert (second["service"], second["pipeline"], second["run_id"]) == (
        names.SERVICE_NAME,
        "digits",
        "emf-run",
    )
    # the epoch is a property, the values are the epoch's
    assert (first["epoch"], second["epoch"]) == (1, 2)
    assert second["steps"] == second["version"] - first["version"] > 0
    assert 0 <= second["ValidationAccuracy"][0] <= 1
    assert second["Diverged"] == [0.0]
    assert second["StepTime"][0] > 0 and second["ExamplesPerSecond"][0] > 0


def test_a_regression_has_no_accuracy_and_a_blown_up_loss_is_divergence() -> None:
    # Given
    from trainer.metrics import EpochReport, epoch_values

    report = EpochReport(
        pipeline="p", run_id="r", epoch=3, version=30, steps=10, n_train=100,
        train_loss=float("nan"), val_loss=5.0, val_accuracy=None, wall_seconds=2.0,
        previous_val_loss=1.0,
    )  # fmt: skip

    # When
    values = {spec.name: value for spec, value in epoch_values(report).items()}

    # Then (a NaN is never written: CloudWatch refuses it; Diverged tells it)
    assert values == {
        "ValidationLoss": 5.0, "Diverged": 1.0, "StepTime": 0.2, "ExamplesPerSecond": 50.0
    }  # fmt: skip


def test_outside_lambda_no_metrics_are_written(
    handler_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    capsys.readouterr()

    # When
    Pipeline().train(tiny("no-emf", epochs=1), execution_name="no-emf")

    # Then
    assert emf.documents(capsys.readouterr().out) == []
