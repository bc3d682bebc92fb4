"""The registry's handlers and service on moto: every finished run registers its model; a better
model is promoted and a worse one is not (and the decision says why); the production pointer
the inference function reads follows; a rollback restores the previous version; a promotion
that loses a race decides again; a retried step changes nothing.

Runs go through the handlers as the workflow calls them (``support.pipeline_driver``): tiny
digits networks, fused mode, one worker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.pipeline_driver import Pipeline, invoke

from inference import handlers as inference_handlers
from inference.pointer import ProductionPointer, pointer_key
from trainer import dal, settings
from trainer.registry import service
from trainer.registry.records import ModelVersion, Production, RegistryError
from trainer.store import RunNotFoundError, Store

PIPELINE = "digits"


def digits(run_id: str, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "run_id": run_id,
        "pipeline": PIPELINE,
        "dataset": {"source": "builtin:digits"},
        "model": {"layers": [{"units": 10, "activation": "softmax"}]},
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 1,
        "batch_size": 128,
        "mode": "fused",
    }
    return document | changes


# a barely trained network (lower accuracy), and one trained longer (higher)
WORSE = {"optimizer": {"name": "sgd", "learning_rate": 1e-6}}
BETTER = {"epochs": 4, "optimizer": {"name": "adam", "learning_rate": 0.02}}


def train(document: dict[str, Any]) -> Pipeline:
    pipeline = Pipeline()
    pipeline.train(document, execution_name=document["run_id"])
    return pipeline


def pointer(aws: Any) -> dict[str, Any]:
    body = aws.s3.get_object(Bucket=aws.bucket, Key=pointer_key(PIPELINE))["Body"].read()
    document: dict[str, Any] = json.loads(body)
    return document


def accuracy(run_id: str) -> float:
    model = dal.model_version(settings.store(), PIPELINE, run_id)
    assert model is not None
    return float(model.metrics["val_accuracy"])


def test_every_finished_run_registers_its_model_version(handler_env: Any) -> None:
    # When
    run = train(digits("reg-a"))

    # Then the model version names the run, its metrics, config digest, dataset and files
    model = dal.model_version(settings.store(), PIPELINE, "reg-a")
    assert model is not None
    assert run.registered == {
        "pipeline": PIPELINE, "run_id": "reg-a", "version": model.version,
        "metrics": dict(model.metrics),
    }  # fmt: skip
    assert model.metrics["epoch"] == 1 and "val_accuracy" in model.metrics
    assert model.version == model.metrics["version"]
    assert model.config_digest.startswith("sha256:")
    assert model.dataset["source"] == "builtin:digits" and model.dataset["n_features"] == 64
    bucket = f"s3://{handler_env.bucket}/runs/reg-a/model/"
    assert model.model_uri == bucket
    assert model.files == {n: bucket + n for n in ("model.npz", "model.json", "metrics.json")}
    assert model.promote_if == {"metric": "val_accuracy", "margin": 0.0}
    assert model.created_at.endswith("Z")
    # and the same recipe under another run id has the same digest
    train(digits("reg-a2"))
    again = dal.model_version(settings.store(), PIPELINE, "reg-a2")
    assert again is not None and again.config_digest == model.config_digest
    assert dal.pipelines(settings.store()) == [PIPELINE]


def test_a_worse_model_is_not_promoted_a_better_one_is_and_rollback_restores(
    handler_env: Any,
) -> None:
    # Given a pipeline serving its first model
    first = train(digits("reg-first"))
    assert first.promotion["promoted"] is True
    assert first.promotion["reason"].startswith("the pipeline's first model")
    assert pointer(handler_env)["run_id"] == "reg-first"

    # When a worse model finishes
    worse = train(digits("reg-worse", **WORSE))

    # Then it is not promoted, the decision says why, and the pointer still names the first
    assert accuracy("reg-worse") < accuracy("reg-first")
    assert worse.promotion["promoted"] is False
    assert "not better by more than the margin 0" in worse.promotion["reason"]
    assert worse.promotion["production"] == {
        "run_id": "reg-first", "version": first.registered["version"],
        "value": accuracy("reg-first"),
    }  # fmt: skip
    assert pointer(handler_env)["run_id"] == "reg-first"
    decision = dal.decision(settings.store(), PIPELINE, "reg-worse")
    assert decision is not None and decision.promoted is False

    # When a better model finishes
    better = train(digits("reg-better", **BETTER))

    # Then it is promoted: the production record (with when and why) and the pointer name it
    assert accuracy("reg-better") > accuracy("reg-first")
    assert better.promotion["promoted"] is True
    assert "better by" in better.promotion["reason"]
    production = dal.production(settings.store(), PIPELINE)
    assert production is not None
    assert (production.run_id, production.revision, production.action) == (
        "reg-better",
        2,
        "promote",
    )
    assert production.history[-1].previous == {
        "run_id": "reg-first", "version": first.registered["version"],
    }  # fmt: skip
    served = pointer(handler_env)
    assert ProductionPointer.from_json(json.dumps(served).encode()) == ProductionPointer(
        "reg-better", better.registered["version"]
    )
    assert served["revision"] == 2 and served["since"] == production.since

    # When the pipeline is rolled back
    restored = service.rollback(settings.store(), PIPELINE, "a bad day")

    # Then the previous version is served again, and the history says so
    assert (restored.run_id, restored.revision, restored.action) == ("reg-first", 3, "rollback")
    assert restored.reason == "rolled back from 'reg-better': a bad day"
    assert pointer(handler_env)["run_id"] == "reg-first"
    assert pointer(handler_env)["version"] == first.registered["version"]
    # and the inference function serves it
    inference_handlers.reset()
    response = inference_handlers.online(
        {"pathParameters": {"pipeline": PIPELINE}, "body": json.dumps({"rows": [[0.0] * 64]})}
    )
    assert json.loads(response["body"])["run_id"] == "reg-first"
    inference_handlers.reset()
    # and there is nothing before the first
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        service.rollback(settings.store(), PIPELINE)


def test_a_run_is_promoted_by_hand_whatever_its_metrics(handler_env: Any) -> None:
    # Given a pipeline serving a model, and a worse one it did not promote
    train(digits("reg-one"))
    train(digits("reg-two", **WORSE))

    # When the worse one is promoted by hand
    production = service.promote(settings.store(), "reg-two", "a test")

    # Then
    assert (production.run_id, production.action, production.reason) == (
        "reg-two",
        "manual",
        "a test",
    )
    assert pointer(handler_env)["run_id"] == "reg-two"
    with pytest.raises(RegistryError, match="already pipeline 'digits'"):
        service.promote(settings.store(), "reg-two")
    # and a rollback undoes it
    assert service.rollback(settings.store(), PIPELINE).run_id == "reg-one"
    # and a run that is not registered cannot be promoted
    with pytest.raises(RunNotFoundError):
        service.promote(settings.store(), "reg-nothing")


def _version(run_id: str, accuracy: float) -> ModelVersion:
    """A registered model version of pipeline "race", made up (no training)."""
    return ModelVersion(
        pipeline="race", run_id=run_id, version=1, loss="cross_entropy",
        metrics={"epoch": 1, "val_accuracy": accuracy},
        promote_if={"metric": "val_accuracy", "margin": 0.0}, config_digest="sha256:0",
        dataset={"source": "builtin:digits"}, model_uri=f"s3://b/runs/{run_id}/model/", files={},
    )  # fmt: skip


def test_a_promotion_that_loses_a_race_decides_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pipeline serving a model, and two better ones registered
    for run_id, value in (("first", 0.5), ("mid", 0.7), ("best", 0.9)):
        dal.save_model_version(store, _version(run_id, value))
    assert service.promote_if_better(store, "race", "first").promoted

    # When mid's promotion has read production, but best is promoted before mid writes
    original = dal.save_production
    raced: list[str] = []

    def save_production(store: Store, production: Production) -> None:
        if production.run_id == "mid" and not raced:
            raced.append("best")
            monkeypatch.setattr(dal, "save_production", original)  # best's own writes
            service.promote_if_better(store, "race", "best")
            monkeypatch.setattr(dal, "save_production", save_production)
        original(store, production)

    monkeypatch.setattr(dal, "save_production", save_production)
    decision = service.promote_if_better(store, "race", "mid")

    # Then mid's write failed on the revision, and mid was compared again, with best
    assert raced == ["best"]
    assert decision.promoted is False
    assert decision.production == {"run_id": "best", "version": 1, "value": 0.9}
    production = dal.production(store, "race")
    assert production is not None
    assert (production.run_id, production.revision) == ("best", 2)
    assert [entry.run_id for entry in production.history] == ["first", "best"]
    assert (
        json.loads(store.objects.get_bytes(store.objects.uri(pointer_key("race"))))["run_id"]
        == "best"
    )


def test_a_retried_promotion_returns_the_recorded_decision(store: Store) -> None:
    # Given a decided promotion
    dal.save_model_version(store, _version("first", 0.5))
    decided = service.promote_if_better(store, "race", "first", clock=lambda: 1.0)

    # When the step runs again (Step Functions retries after a lost response)
    again = service.promote_if_better(store, "race", "first", clock=lambda: 2.0)

    # Then the same decision, and production was written once
    assert again == decided and decided.decided_at == "1970-01-01T00:00:01.000Z"
    production = dal.production(store, "race")
    assert production is not None and production.revision == 1


def test_a_model_that_is_not_registered_cannot_be_decided(store: Store) -> None:
    # When / Then
    with pytest.raises(
        RegistryError, match="run 'ghost' has no model registered in pipeline 'race'"
    ):
        service.promote_if_better(store, "race", "ghost")
    with pytest.raises(RegistryError, match="pipeline 'race' has no production model to roll back"):
        service.rollback(store, "race")


def test_the_handlers_are_the_workflow_s_steps(handler_env: Any) -> None:
    # Given a finished run
    run = train(digits("steps-1"))

    # When Register and Promote run again with the same events (retries)
    registered = invoke("Register", {"run_id": "steps-1", "version": run.registered["version"]})
    promoted = invoke("Promote", {"pipeline": PIPELINE, "run_id": "steps-1"})

    # Then their results are the first ones
    assert registered == run.registered
    assert promoted == run.promotion
    # and a message the ASL does not send is refused
    with pytest.raises(ValueError, match="pipline"):
        invoke("Promote", {"pipline": PIPELINE, "run_id": "steps-1"})
