"""RunStore on moto: config, dataset facts, status and per-epoch metrics."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from trainer.contract.names import RUNS_PK, RUNS_SK
from trainer.store import (
    RecordConflictError,
    RunExistsError,
    RunNotFoundError,
    RunStore,
    Store,
    StoreError,
    runs,
)

RUN = "digits-demo"
CONFIG = json.dumps({"run_id": RUN, "epochs": 3, "optimizer": {"learning_rate": 0.005}})


def _run_store(aws: Any, clock: Any = lambda: 1_700_000_000.0) -> RunStore:
    return RunStore(aws.dynamodb, table=aws.runs_table, clock=clock)


# --- config --------------------------------------------------------------------------------------


def test_create_run_records_the_config(aws: Any) -> None:
    # Given
    runs = _run_store(aws)

    # When
    runs.create_run(RUN, CONFIG)

    # Then
    assert runs.get_config_json(RUN) == CONFIG
    item = aws.dynamodb.get_item(
        TableName=aws.runs_table, Key={RUNS_PK: {"S": RUN}, RUNS_SK: {"S": "config"}}
    )["Item"]
    assert item["created_at"]["S"] == "2023-11-14T22:13:20.000Z"


def test_create_run_again_with_the_same_config_is_a_no_op(store: Store) -> None:
    # Given
    store.runs.create_run(RUN, CONFIG)
    reordered = json.dumps(json.loads(CONFIG), sort_keys=True, indent=2)

    # When a retried Initialize records it again (spelled differently, same content)
    store.runs.create_run(RUN, CONFIG)
    store.runs.create_run(RUN, reordered)

    # Then
    assert store.runs.get_config_json(RUN) == CONFIG


def test_create_run_with_another_config_says_to_choose_another_run_id(store: Store) -> None:
    # Given
    store.runs.create_run(RUN, CONFIG)
    other = json.dumps({**json.loads(CONFIG), "epochs": 4})

    # When
    with pytest.raises(RunExistsError) as raised:
        store.runs.create_run(RUN, other)

    # Then
    assert raised.value.run_id == RUN
    assert "choose another run_id" in str(raised.value)
    assert isinstance(raised.value, StoreError)
    assert store.runs.get_config_json(RUN) == CONFIG


def test_create_run_rejects_text_that_is_not_json(store: Store) -> None:
    # Given
    text = "{not json"

    # When / Then
    with pytest.raises(ValueError, match="JSON"):
        store.runs.create_run(RUN, text)


def test_unknown_run_raises_run_not_found(store: Store) -> None:
    # Given no run at all

    # When / Then
    with pytest.raises(RunNotFoundError, match="does not exist"):
        store.runs.get_config_json("nope")
    with pytest.raises(RunNotFoundError, match="'status'"):
        store.runs.get_status("nope")
    with pytest.raises(RunNotFoundError, match="'dataset'"):
        store.runs.get_dataset_info("nope")
    assert store.runs.list_epoch_metrics("nope") == []


# --- dataset facts -------------------------------------------------------------------------------


def test_dataset_info_round_trips_exactly_and_is_write_once(store: Store) -> None:
    # Given
    info = {
        "n_train": 1437,
        "n_val": 360,
        "n_features": 64,
        "n_outputs": 10,
        "classes": [str(c) for c in range(10)],
        "mean": [0.1 + 0.2, 1e-300, 5.0],
        "std": np.array([1.0, 2.5, 1 / 3]),
        "train_key": "digits-demo/data/train",
        "val_key": "digits-demo/data/val",
        "regression_only": None,
        "n_rows": np.int64(1797),
    }

    # When
    store.runs.put_dataset_info(RUN, info)
    store.runs.put_dataset_info(RUN, info)  # a retry
    loaded = store.runs.get_dataset_info(RUN)

    # Then
    assert loaded["mean"] == [0.1 + 0.2, 1e-300, 5.0]
    assert loaded["std"] == [1.0, 2.5, 1 / 3]
    assert loaded["n_rows"] == 1797 and isinstance(loaded["n_rows"], int)
    assert loaded["classes"] == [str(c) for c in range(10)]
    assert loaded["regression_only"] is None
    with pytest.raises(RecordConflictError, match="'dataset'"):
        store.runs.put_dataset_info(RUN, {**info, "n_train": 1})
    assert store.runs.get_dataset_info(RUN)["n_train"] == 1437


# --- status --------------------------------------------------------------------------------------


def test_status_is_mutable_and_carries_fields(aws: Any) -> None:
    # Given
    clock = iter([1_700_000_000.0, 1_700_000_060.5])
    runs = _run_store(aws, clock=lambda: next(clock))
    runs.set_status(RUN, "RUNNING", message="started", epoch=0)

    # When
    runs.set_status(RUN, "SUCCEEDED", model_uri="s3://bucket/runs/digits-demo/model/")

    # Then
    assert runs.get_status(RUN) == {
        "status": "SUCCEEDED",
        "updated_at": "2023-11-14T22:14:20.500Z",
        "model_uri": "s3://bucket/runs/digits-demo/model/",
    }


@pytest.mark.parametrize("field", ["updated_at", "run_id", "record", "status"])
def test_status_fields_may_not_shadow_the_record_itself(store: Store, field: str) -> None:
    # Given a field named like the record's own attributes

    # When / Then
    with pytest.raises(ValueError, match=field):
        store.runs.set_status(RUN, "RUNNING", **{field: "x"})


# --- epoch metrics -------------------------------------------------------------------------------


def _metrics(epoch: int) -> dict[str, float | int | None]:
    return {
        "train_loss": 1.0 / (epoch + 3),
        "val_loss": 0.1 + 0.2 * epoch,
        "val_accuracy": None if epoch == 2 else epoch / 7,
        "weights_version": 45 * epoch,
        "seconds": np.float32(1.5),
    }


def test_epoch_metrics_come_back_in_epoch_order_exactly(store: Store) -> None:
    # Given epochs written out of order, across the 4-digit boundary, next to other records
    store.runs.create_run(RUN, CONFIG)
    store.runs.set_status(RUN, "RUNNING")
    for epoch in (10, 2, 1000, 1, 9):
        store.runs.put_epoch_metrics(RUN, epoch, _metrics(epoch))
    store.runs.put_epoch_metrics(f"{RUN}-2", 5, _metrics(5))

    # When
    rows = store.runs.list_epoch_metrics(RUN)

    # Then
    assert [row["epoch"] for row in rows] == [1, 2, 9, 10, 1000]
    for row in rows:
        expected = {"epoch": row["epoch"], **_metrics(row["epoch"]), "seconds": 1.5}
        assert row == expected
        assert isinstance(row["weights_version"], int)


def test_epoch_metrics_keep_nan_and_infinity(store: Store) -> None:
    # Given a diverged epoch
    store.runs.put_epoch_metrics(RUN, 1, {"train_loss": math.nan, "val_loss": math.inf})

    # When
    (row,) = store.runs.list_epoch_metrics(RUN)

    # Then
    assert math.isnan(row["train_loss"]) and row["val_loss"] == math.inf


def test_epoch_metrics_are_write_once(store: Store) -> None:
    # Given
    store.runs.put_epoch_metrics(RUN, 3, _metrics(3))

    # When a retried Evaluate writes the same metrics
    store.runs.put_epoch_metrics(RUN, 3, _metrics(3))

    # Then different metrics for that epoch are refused
    with pytest.raises(RecordConflictError, match="epoch 3"):
        store.runs.put_epoch_metrics(RUN, 3, {**_metrics(3), "train_loss": 0.0})
    assert store.runs.list_epoch_metrics(RUN)[0]["train_loss"] == _metrics(3)["train_loss"]


@pytest.mark.parametrize(
    ("epoch", "metrics"),
    [(-1, {}), (10_000, {}), (1, {"loss": "low"}), (1, {"ok": True}), (2, {"epoch": 3})],
    ids=["negative", "too big", "string", "bool", "epoch mismatch"],
)
def test_bad_epoch_metrics_are_rejected(store: Store, epoch: int, metrics: dict) -> None:
    # Given an epoch or a metric value that cannot be stored

    # When / Then
    with pytest.raises(ValueError):
        store.runs.put_epoch_metrics(RUN, epoch, metrics)


class _SmallPages:
    """Passes everything through, but makes every Query return at most ``limit`` items."""

    def __init__(self, client: Any, limit: int) -> None:
        self._client = client
        self._limit = limit
        self.queries = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query(self, **request: Any) -> dict[str, Any]:
        self.queries += 1
        return self._client.query(**request, Limit=self._limit)


def test_list_epoch_metrics_follows_pages(aws: Any) -> None:
    # Given
    _run_store(aws).create_run(RUN, CONFIG)
    for epoch in range(1, 24):
        _run_store(aws).put_epoch_metrics(RUN, epoch, {"train_loss": epoch / 10})
    paged = _SmallPages(aws.dynamodb, limit=5)

    # When
    rows = RunStore(paged, table=aws.runs_table).list_epoch_metrics(RUN)

    # Then
    assert [row["epoch"] for row in rows] == list(range(1, 24))
    assert paged.queries >= 5


# --- the item formats ----------------------------------------------------------------------------


def test_every_record_is_the_item_its_one_writer_builds(aws: Any) -> None:
    # Given a run store at a fixed time, and the time as the records spell it
    store = _run_store(aws)
    now = runs.timestamp(1_700_000_000.0)
    info = {"n_train": 8, "mean": [0.5, 1 / 3]}
    metrics = {"train_loss": 0.25, "val_loss": 0.5, "version": 12}

    # When a run's records are written
    store.create_run(RUN, CONFIG)
    store.put_dataset_info(RUN, info)
    store.set_status(RUN, "SUCCEEDED", model_uri="s3://b/runs/x/model/")
    store.put_epoch_metrics(RUN, 3, metrics)

    # Then each item in the table is what its builder returns, and reads back through its reader
    def stored(record: str) -> dict[str, Any]:
        key = {RUNS_PK: {"S": RUN}, RUNS_SK: {"S": record}}
        item: dict[str, Any] = aws.dynamodb.get_item(TableName=aws.runs_table, Key=key)["Item"]
        return item

    assert now == "2023-11-14T22:13:20.000Z"
    assert stored("config") == runs.config_item(RUN, CONFIG, now)
    assert stored("dataset") == runs.dataset_item(RUN, info, now)
    assert runs.dataset_info_of(stored("dataset")) == info
    assert stored("status") == runs.status_item(
        RUN, "SUCCEEDED", {"model_uri": "s3://b/runs/x/model/"}, now
    )
    assert stored("epoch#0003") == runs.epoch_item(RUN, 3, metrics, now)
    assert runs.metrics_row(stored("epoch#0003")) == {"epoch": 3, **metrics}


def test_a_record_over_the_item_limit_is_refused(store: Store) -> None:
    # Given dataset facts larger than DynamoDB's 400 KB item limit
    store.runs.create_run("big", '{"epochs": 1}')
    facts = {"names": ["x" * 1000] * 500}

    # When / Then: refused, naming the record and the limit, and nothing is written
    with pytest.raises(StoreError, match="400 KB"):
        store.runs.put_dataset_info("big", facts)
    with pytest.raises(RunNotFoundError):
        store.runs.get_dataset_info("big")
