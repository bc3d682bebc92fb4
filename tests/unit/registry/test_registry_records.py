"""trainer.registry.records: the promotion rule, the production history and what a rollback
restores; the records' documents round-trip; the pointer they write is inference.pointer's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inference.pointer import ProductionPointer
from trainer.registry.records import (
    HISTORY_LIMIT,
    Decision,
    ModelVersion,
    Production,
    RegistryError,
    decide,
    first_production,
    rollback_target,
)


def model(
    run_id: str, metric: str = "val_accuracy", margin: float = 0.0, **metrics: Any
) -> ModelVersion:
    return ModelVersion(
        pipeline="digits",
        run_id=run_id,
        version=12,
        loss="cross_entropy" if "val_accuracy" in metrics or metric == "val_accuracy" else "mse",
        metrics={"epoch": 1, **metrics},
        promote_if={"metric": metric, "margin": margin},
        config_digest="sha256:x",
        dataset={"source": "builtin:digits"},
        model_uri=f"s3://b/runs/{run_id}/model/",
        files={"model.npz": f"s3://b/runs/{run_id}/model/model.npz"},
        created_at="2026-01-01T00:00:00.000Z",
    )


def serving(served: ModelVersion) -> Production:
    return first_production(served, action="promote", at="t0", reason="first")


def test_the_first_model_of_a_pipeline_is_promoted() -> None:
    # When
    promote, reason, value, production = decide(model("a", val_accuracy=0.9), None, None)

    # Then
    assert promote and value == 0.9 and production is None
    assert reason == "the pipeline's first model (val_accuracy 0.9)"


@pytest.mark.parametrize(
    ("candidate", "served", "margin", "promoted"),
    [
        (0.95, 0.90, 0.0, True),
        (0.90, 0.90, 0.0, False),  # equal is not better
        (0.89, 0.90, 0.0, False),
        (0.95, 0.90, 0.05, False),  # better, but not by more than the margin
        (0.96, 0.90, 0.05, True),
    ],
)
def test_accuracy_must_beat_production_by_more_than_the_margin(
    candidate: float, served: float, margin: float, promoted: bool
) -> None:
    # Given
    current = model("old", val_accuracy=served)

    # When
    promote, reason, _, production = decide(
        model("new", margin=margin, val_accuracy=candidate), current, serving(current)
    )

    # Then
    assert promote is promoted
    assert production == {"run_id": "old", "version": 12, "value": served}
    assert f"val_accuracy {candidate:.6g} vs {served:.6g} of production model 'old'" in reason
    assert (": better by" in reason) is promoted


def test_a_loss_must_be_lower_to_be_better() -> None:
    # Given a regression pipeline serving a val_loss of 0.5
    current = model("old", metric="val_loss", val_loss=0.5)

    # When
    better = decide(model("a", metric="val_loss", val_loss=0.4), current, serving(current))
    worse = decide(model("b", metric="val_loss", val_loss=0.6), current, serving(current))

    # Then
    assert better[0] is True and "better by 0.1" in better[1]
    assert worse[0] is False and "not better by more than the margin 0" in worse[1]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_candidate_without_a_finite_metric_is_never_promoted(value: float | None) -> None:
    # Given
    metrics = {} if value is None else {"val_accuracy": value}
    current = model("old", val_accuracy=0.5)

    # When
    alone = decide(model("a", **metrics), None, None)
    against = decide(model("a", **metrics), current, serving(current))

    # Then
    assert alone[0] is False and "has no finite final val_accuracy" in alone[1]
    assert against[0] is False and "has no finite final val_accuracy" in against[1]


def test_a_production_model_without_the_metric_is_not_replaced_automatically() -> None:
    # Given a pipeline serving a regression model, and a classifier's run comparing accuracy
    current = model("old", metric="val_loss", val_loss=0.5)

    # When
    promote, reason, _, production = decide(
        model("new", val_accuracy=0.99), current, serving(current)
    )

    # Then
    assert not promote
    assert reason.startswith("production model 'old' has no val_accuracy to compare")
    assert "stepnet promote" in reason and production is not None


def test_promotions_append_to_a_bounded_history_and_bump_the_revision() -> None:
    # Given a pipeline promoted HISTORY_LIMIT + 5 times
    production = serving(model("r0", val_accuracy=0.1))
    for index in range(1, HISTORY_LIMIT + 5):
        production = production.replaced_by(
            model(f"r{index}", val_accuracy=0.1), action="promote", at=f"t{index}", reason="x"
        )

    # Then
    assert production.revision == HISTORY_LIMIT + 5
    assert len(production.history) == HISTORY_LIMIT
    last = production.history[-1]
    assert (last.run_id, last.previous) == (
        f"r{HISTORY_LIMIT + 4}",
        {"run_id": f"r{HISTORY_LIMIT + 3}", "version": 12},
    )


def test_rollback_walks_back_through_the_promotions() -> None:
    # Given A, then B, then C promoted
    a, b, c = (model(name, val_accuracy=0.5) for name in "abc")
    production = serving(a)
    production = production.replaced_by(b, action="promote", at="t1", reason="better")
    production = production.replaced_by(c, action="manual", at="t2", reason="by hand")

    # When rolled back twice, as rollback() does it
    first = rollback_target(production)
    production = production.replaced_by(b, action="rollback", at="t3", reason="rolled back")
    second = rollback_target(production)
    production = production.replaced_by(a, action="rollback", at="t4", reason="rolled back")

    # Then C -> B -> A, and then there is nothing left
    assert (first["run_id"], second["run_id"]) == ("b", "a")
    with pytest.raises(RegistryError, match="nothing to roll back to: 'a' is the first model"):
        rollback_target(production)


def test_documents_round_trip() -> None:
    # Given
    candidate = model("a", val_accuracy=0.5)
    production = serving(candidate).replaced_by(
        model("b", val_accuracy=0.6), action="promote", at="t1", reason="better"
    )
    decision = Decision("digits", "b", 12, True, "better", "val_accuracy", 0.6, None, "t1")

    # When
    read_model = ModelVersion.from_document(candidate.document() | {"created_at": "c"})
    read_production = Production.from_document(
        json.loads(json.dumps(production.document())) | {"revision": production.revision}
    )

    # Then
    assert read_model == ModelVersion(**{**candidate.__dict__, "created_at": "c"})
    assert read_production == production
    assert Decision.from_document(decision.document()) == decision


def test_the_pointer_is_inference_s_with_when_and_why_added() -> None:
    # Given
    production = serving(model("a", val_accuracy=0.5))

    # When
    data = production.pointer_json()

    # Then the inference function reads it, and the extra keys say what changed it
    assert ProductionPointer.from_json(data) == ProductionPointer("a", 12)
    assert json.loads(data) == {
        "run_id": "a", "version": 12, "revision": 1, "since": "t0", "action": "promote",
    }  # fmt: skip
