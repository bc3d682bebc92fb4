"""Retraining claims on moto: an upload for a pipeline with a registered config trains that config
on the upload; one run at a time per pipeline, uploads during a run coalesce into one pending run
(the newest), which the release hands over; retried steps change nothing; what is not a
pipeline's dataset is ignored with its reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trainer.registry import retrain
from trainer.store import Store
from trainer.store.claims import ClaimChangedError

BUCKET = "stepnet-test-bucket"
PIPELINE = "digits"


def registered(store: Store, run_id: str = "digits-1", **changes: Any) -> dict[str, Any]:
    config = {
        "run_id": run_id,
        "pipeline": PIPELINE,
        "dataset": {"source": "builtin:digits", "validation_fraction": 0.3},
        "model": {"layers": [{"units": 10, "activation": "softmax"}]},
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 2,
    } | changes
    store.runs.create_run(run_id, json.dumps(config))
    store.runs.put_model_version(PIPELINE, run_id, {"run_id": run_id})
    return config


def upload(key: str, event_id: str, bucket: str = BUCKET) -> dict[str, Any]:
    """S3's "Object Created" event as EventBridge delivers it."""
    return {
        "version": "0", "id": event_id, "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": "2026-11-30T12:00:00Z", "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket},
                   "object": {"key": key, "size": 10, "etag": "x", "sequencer": "1"},
                   "reason": "PutObject"},
    }  # fmt: skip


def test_an_upload_trains_the_registered_config_on_the_uploaded_data(store: Store) -> None:
    # Given a pipeline with a registered model
    original = registered(store)

    # When its new data is uploaded
    outcome = retrain.claim(
        store, upload("datasets/digits/fresh.npz", "e1"), "exec-1", bucket=BUCKET, clock=lambda: 0
    )

    # Then this execution takes the pipeline and runs the same recipe on the upload
    assert outcome.action == "run"
    assert outcome.run_id == retrain.retrain_run_id(PIPELINE, "e1", 0)
    assert outcome.config is not None
    assert outcome.config["dataset"] == {
        "source": f"s3://{BUCKET}/datasets/digits/fresh.npz",
        "validation_fraction": 0.3,
    }
    assert outcome.config["run_id"] == outcome.run_id and outcome.config["pipeline"] == PIPELINE
    unchanged = {k: v for k, v in original.items() if k not in ("run_id", "dataset")}
    assert {k: outcome.config[k] for k in unchanged} == unchanged


def test_the_production_model_s_config_is_preferred_to_a_newer_registered_one(
    store: Store,
) -> None:
    # Given two registered runs, the older one in production
    registered(store, "digits-1", epochs=3)
    registered(store, "digits-2", epochs=5)
    store.runs.put_production(PIPELINE, {"run_id": "digits-1"}, 1)

    # When
    outcome = retrain.claim(store, upload("datasets/digits/a.csv", "e"), "x", bucket=BUCKET)

    # Then
    assert outcome.config is not None and outcome.config["epochs"] == 3


def test_uploads_during_a_run_coalesce_into_the_newest_which_the_release_hands_over(
    store: Store,
) -> None:
    # Given a run holding the pipeline
    registered(store)
    first = retrain.claim(store, upload("datasets/digits/a.npz", "e1"), "exec-1", bucket=BUCKET)

    # When two more uploads arrive during it
    second = retrain.claim(store, upload("datasets/digits/b.npz", "e2"), "exec-2", bucket=BUCKET)
    third = retrain.claim(store, upload("datasets/digits/c.npz", "e3"), "exec-3", bucket=BUCKET)
    # and the run ends, and then the handed-over one
    handed = retrain.release(store, PIPELINE, str(first.run_id), "exec-1")
    last = retrain.release(store, PIPELINE, str(handed.run_id), "exec-1")

    # Then only the first and the newest train, one after the other, in the first execution
    assert (first.action, second.action, third.action) == ("run", "pending", "pending")
    assert "replacing pending run " + str(second.run_id) in third.reason
    assert handed.action == "run" and handed.run_id == third.run_id
    assert handed.config is not None
    assert handed.config["dataset"]["source"].endswith("/datasets/digits/c.npz")
    assert last.action == "done"
    claim = store.runs.get_claim(PIPELINE)
    assert claim is not None and claim["holder"] is None and claim["pending"] is None


def test_retried_steps_return_what_they_returned(store: Store) -> None:
    # Given
    registered(store)
    event = upload("datasets/digits/a.npz", "e1")
    first = retrain.claim(store, event, "exec-1", bucket=BUCKET, clock=lambda: 5)
    second = upload("datasets/digits/b.npz", "e2")
    pending = retrain.claim(store, second, "exec-2", bucket=BUCKET, clock=lambda: 6)

    # When each step runs again (a lost response)
    again = retrain.claim(store, event, "exec-1", bucket=BUCKET, clock=lambda: 5)
    pending_again = retrain.claim(store, second, "exec-2", bucket=BUCKET, clock=lambda: 6)
    handed = retrain.release(store, PIPELINE, str(first.run_id), "exec-1")
    handed_again = retrain.release(store, PIPELINE, str(first.run_id), "exec-1")

    # Then
    assert again.action == "run" and again.run_id == first.run_id
    assert pending_again.action == "pending" and pending_again.run_id == pending.run_id
    assert "retried" in pending_again.reason
    assert handed_again.action == "run" and handed_again.run_id == handed.run_id == pending.run_id


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (upload("datasets/digits.npz", "e"), "not a pipeline's dataset"),
        (upload("datasets/digits/folder/part-0.npz", "e"), "not a pipeline's dataset"),
        (upload("datasets/digits/notes.txt", "e"), "neither .csv nor .npz"),
        (upload("datasets/digits/a.csv", "e", bucket="other"), "not of the stack's bucket"),
        (upload("datasets/nobody/a.csv", "e"), "no registered model"),
        ({"source": "aws.events", "detail": {}}, "not an S3 event or a schedule"),
    ],
)
def test_what_is_not_a_pipeline_s_dataset_is_ignored_with_its_reason(
    store: Store, event: dict[str, Any], reason: str
) -> None:
    # Given
    registered(store)

    # When
    outcome = retrain.claim(store, event, "exec", bucket=BUCKET)

    # Then
    assert outcome.action == "ignored" and reason in outcome.reason
    assert store.runs.get_claim(PIPELINE) is None


def test_a_schedule_retrains_the_registered_config_on_its_own_dataset(store: Store) -> None:
    # Given
    original = registered(store)

    # When
    outcome = retrain.claim(
        store, {"source": "stepnet.schedule", "pipeline": PIPELINE}, "exec", bucket=BUCKET
    )

    # Then
    assert outcome.action == "run"
    assert outcome.config is not None and outcome.config["dataset"] == original["dataset"]


def test_a_claim_written_over_by_another_execution_is_read_again(store: Store) -> None:
    # Given a pipeline another execution takes between our read and our write
    registered(store)
    real_put = store.runs.put_claim
    raced = []

    def put_claim(pipeline: str, document: dict[str, Any], revision: int) -> None:
        if not raced:
            raced.append(True)
            real_put(
                pipeline, {"holder": "other", "run_id": "r0", "config": {}, "pending": None}, 1
            )
            raise ClaimChangedError(pipeline, revision)
        real_put(pipeline, document, revision)

    store.runs.put_claim = put_claim  # type: ignore[method-assign]

    # When
    outcome = retrain.claim(store, upload("datasets/digits/a.npz", "e"), "mine", bucket=BUCKET)

    # Then it decided again, on the record the other one wrote
    assert outcome.action == "pending"
    claim = store.runs.get_claim(PIPELINE)
    assert claim is not None and claim["holder"] == "other"
    assert claim["pending"]["run_id"] == outcome.run_id
