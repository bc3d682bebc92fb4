"""A failed run, as the handlers see it: Update refuses a step whose loss or gradients are not
finite and writes nothing; MarkFailed marks the run FAILED with the readable cause (only a run
this execution recorded), safe twice, and tells a divergence; Finalize exports a diverged run's
last good version, marked, and the run stays FAILED."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from support import emf
from support.pipeline_driver import Pipeline, invoke, microbatch_task

from trainer import settings
from trainer.contract import monitoring
from trainer.store import TensorNotFoundError, keys
from trainer.store.runs import FAILED, MAX_CAUSE_CHARS, RUNNING
from trainer.training.divergence import DIVERGENCE_ERROR, DivergenceError

RUN = "failing-run"


def tiny(run_id: str = RUN, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "run_id": run_id,
        "pipeline": "digits",
        "dataset": {"source": "builtin:digits"},
        "model": {"layers": [{"units": 10, "activation": "softmax"}]},
        "loss": "cross_entropy",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 2,
        "batch_size": 256,
        "workers": 2,
        "mode": "fused",
    }
    return document | changes


def _first_step(config: dict[str, Any]) -> tuple[Pipeline, dict[str, Any], list[dict[str, Any]]]:
    """The run initialized and its first step's micro-batches computed: (driver, cursor,
    the Map's results)."""
    pipeline = Pipeline()
    run = pipeline.initialize(config, config["run_id"])
    cursor = pipeline.task(
        "Plan", {"run_id": run["run_id"], "epoch": run["epoch"], "version": run["version"]}
    )
    items = [microbatch_task(cursor, m) for m in cursor["microbatches"]]
    return pipeline, cursor, pipeline.map(pipeline.microbatch, items)


def _lambda_error(error: Exception) -> dict[str, str]:
    """A Catch's view of a Lambda function's error: its class name and its error document."""
    cause = {"errorType": type(error).__name__, "errorMessage": str(error), "stackTrace": []}
    return {"Error": type(error).__name__, "Cause": json.dumps(cause)}


def test_update_refuses_non_finite_gradients_naming_the_micro_batch_and_writes_nothing(
    handler_env: Any,
) -> None:
    # Given a first step whose second micro-batch's gradients hold a NaN
    _, cursor, results = _first_step(tiny())
    store = settings.store()
    key = keys.gradients_key(RUN, cursor["version"], 1)
    bundle = {name: np.array(array) for name, array in store.tensors.get(key).items()}
    bundle["dW1"][3, 4] = np.nan
    store.tensors.put(key, bundle, immutable=False)

    # When
    with pytest.raises(DivergenceError) as raised:
        invoke("Update", {"cursor": cursor, "losses": [r["loss"] for r in results]})

    # Then it names where, and no weights version after the last good one was written
    assert str(raised.value) == (
        "training diverged at epoch 1, step 0, micro-batch 1: dW1 has 1 non-finite values "
        "(first: nan); weights version 0 is the last good one"
    )
    with pytest.raises(TensorNotFoundError):
        store.tensors.get(keys.weights_key(RUN, 1))
    with pytest.raises(TensorNotFoundError):
        store.tensors.get(keys.optimizer_key(RUN, 1))


def test_a_loss_that_travelled_as_null_is_a_divergence_of_its_micro_batch(
    handler_env: Any,
) -> None:
    # Given a first step whose first micro-batch's loss was not finite (JSON: null)
    _, cursor, results = _first_step(tiny())
    losses = [None, *(r["loss"] for r in results[1:])]

    # When / Then
    with pytest.raises(DivergenceError, match="step 0, micro-batch 0: loss is not finite"):
        invoke("Update", {"cursor": cursor, "losses": losses})


def test_mark_failed_records_the_readable_cause_once_and_again(handler_env: Any) -> None:
    # Given a recorded run whose epoch failed on a handler's error (nested as Step Functions
    # nests a child execution's failure)
    config = tiny()
    Pipeline().initialize(config, RUN)
    lambda_error = json.dumps({"errorType": "ValueError", "errorMessage": "shapes not aligned"})
    chunk = json.dumps({"status": "FAILED", "error": "stepnet.ChunkFailed", "cause": lambda_error})
    caught = {"Error": "States.TaskFailed", "Cause": chunk}
    request = {"execution_name": RUN, "execution_input": config, "error": caught}

    # When it is marked, twice (a retried task)
    first = invoke("MarkFailed", request)
    status = settings.store().runs.get_status(RUN)
    again = invoke("MarkFailed", request)

    # Then the record says FAILED with the innermost cause, the same both times
    assert first == again == {
        "run_id": RUN, "cause": "ValueError: shapes not aligned", "diverged": None,
    }  # fmt: skip
    again_status = settings.store().runs.get_status(RUN)
    assert status["status"] == again_status["status"] == FAILED
    assert {k: status[k] for k in ("error", "cause")} == {
        "error": "States.TaskFailed",
        "cause": "ValueError: shapes not aligned",
    }
    assert {k: v for k, v in again_status.items() if k != "updated_at"} == {
        k: v for k, v in status.items() if k != "updated_at"
    }


def test_a_long_cause_is_trimmed_to_fit_the_record(handler_env: Any) -> None:
    # Given a recorded run and a cause of 30,000 characters (Step Functions allows 32,768)
    config = tiny()
    Pipeline().initialize(config, RUN)
    caught = {"Error": "States.Runtime", "Cause": "x" * 30_000}

    # When
    invoke("MarkFailed", {"execution_name": RUN, "execution_input": config, "error": caught})

    # Then
    cause = settings.store().runs.get_status(RUN)["cause"]
    assert len(cause) <= MAX_CAUSE_CHARS
    assert cause.startswith("x" * 1000) and cause.endswith("more characters)")


def test_mark_failed_writes_nothing_for_a_run_refused_before_it_was_recorded(
    handler_env: Any,
) -> None:
    # Given no record of the run (its config was refused at Initialize)
    caught = {"Error": "ConfigError", "Cause": '{"errorMessage": "invalid run config"}'}

    # When
    request = {"execution_name": RUN, "execution_input": {"epochs": "x"}, "error": caught}
    result = invoke("MarkFailed", request)

    # Then
    assert result["run_id"] is None
    assert handler_env.dynamodb.scan(TableName=handler_env.runs_table)["Count"] == 0


def test_mark_failed_leaves_another_run_of_the_same_id_as_it_is(handler_env: Any) -> None:
    # Given a recorded, running run, and a second execution of its id with another config
    # (PrepareShards refused it: the id is taken)
    Pipeline().initialize(tiny(), RUN)
    other = tiny(epochs=3)
    caught = {"Error": "RunExistsError", "Cause": '{"errorMessage": "run exists"}'}

    # When the second execution's failure is marked
    request = {"execution_name": RUN, "execution_input": other, "error": caught}
    result = invoke("MarkFailed", request)

    # Then the first run's record is untouched
    assert result["run_id"] is None
    assert settings.store().runs.get_status(RUN)["status"] == RUNNING


def test_a_resumed_runs_failure_marks_the_run_it_resumed_keeping_the_attempt(
    handler_env: Any,
) -> None:
    # Given a recorded run resumed a second time (its status names the attempt)
    Pipeline().initialize(tiny(), RUN)
    invoke("Resume", {"run_id": RUN, "attempt": 2})
    caught = {"Error": "States.TaskFailed", "Cause": '{"errorMessage": "x", "errorType": "E"}'}

    # When that execution fails
    request = {
        "execution_name": f"{RUN}-resume-2",
        "execution_input": {"resume": {"run_id": RUN, "attempt": 2}},
        "error": caught,
    }
    result = invoke("MarkFailed", request)

    # Then the run is FAILED, still its second resume's (another run's name marks nothing)
    assert result["run_id"] == RUN
    status = settings.store().runs.get_status(RUN)
    assert (status["status"], status["cause"], status["attempt"]) == (FAILED, "E: x", 2)
    request["execution_name"] = "another-run-resume-2"
    assert invoke("MarkFailed", request)["run_id"] is None


def test_a_divergence_is_marked_counted_and_its_last_good_model_exported(
    handler_env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run whose first step's loss was not finite, as Lambda runs the handlers
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "test-MarkFailed")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", monitoring.metrics_namespace("test"))
    config = tiny()
    _, cursor, results = _first_step(config)
    with pytest.raises(DivergenceError) as raised:
        invoke("Update", {"cursor": cursor, "losses": [None] * len(results)})
    capsys.readouterr()

    # When the Training machine's failure path runs: mark, then export the last good version
    failure = invoke(
        "MarkFailed",
        {"execution_name": RUN, "execution_input": config, "error": _lambda_error(raised.value)},
    )
    diverged = failure["diverged"]
    summary = invoke(
        "Finalize",
        {"run_id": RUN, "version": diverged["last_good_version"], "diverged": diverged},
    )

    # Then MarkFailed read where it diverged and counted it in the Diverged metric
    assert diverged == {
        "epoch": 1, "step": 0, "microbatch": 0, "what": "loss is not finite",
        "last_good_version": 0, "stage": "micro-batch",
    }  # fmt: skip
    (line,) = [x for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]
    assert emf.problems(line) == []
    (document,) = emf.documents(line)
    assert document[monitoring.DIVERGED.name] == [1.0]
    assert (document["run_id"], document["epoch"], document["step"]) == (RUN, 1, 0)
    # and the model is version 0, marked in model.json, the run FAILED with the export
    assert summary["status"] == FAILED and summary["version"] == 0
    store = settings.store()
    model = json.loads(store.objects.get_bytes(f"{summary['model_uri']}model.json"))
    assert model["diverged"] == diverged and model["version"] == 0
    status = store.runs.get_status(RUN)
    assert status["status"] == FAILED
    assert status["error"] == DIVERGENCE_ERROR
    assert status["cause"] == f"{DIVERGENCE_ERROR}: {raised.value}"
    assert status["diverged"] == diverged
    assert status["model_uri"] == summary["model_uri"]


def test_an_evaluation_that_is_not_finite_stops_the_run_before_recording_the_epoch(
    handler_env: Any,
) -> None:
    # Given a first epoch trained and evaluated per group, one group's validation sum infinite
    pipeline = Pipeline()
    pipeline.initialize(tiny(), RUN)
    cursor = pipeline.task("Plan", {"run_id": RUN, "epoch": 1, "version": 0})
    while not cursor["done"]:
        cursor = pipeline.train_step(cursor)
    for group in cursor["groups"]:
        invoke("EvaluateShards", {"run_id": RUN, "epoch": 1, "version": cursor["version"],
                                  "group": group})  # fmt: skip
    store = settings.store()
    key = keys.evaluation_key(RUN, 1, 0)
    bundle = {name: np.array(array) for name, array in store.tensors.get(key).items()}
    bundle["val_loss"][0] = np.inf
    store.tensors.put(key, bundle, immutable=False)
    end = {"run_id": RUN, "epoch": 1, "version": cursor["version"],
           "loss_sum": cursor["loss_sum"]}  # fmt: skip

    # When
    with pytest.raises(DivergenceError) as raised:
        invoke("Evaluate", end)

    # Then it names the epoch's evaluation and keeps version 0 (no epoch evaluated before)
    assert str(raised.value) == (
        f"training diverged at epoch 1, step {cursor['version']}, the evaluation: validation "
        "loss not finite; weights version 0 is the last good one"
    )
    assert store.runs.get_epoch_metrics(RUN, 1) is None
