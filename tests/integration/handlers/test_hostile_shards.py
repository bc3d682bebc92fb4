"""Hostile shards through a run's initialization (Initialize, CheckShards, PrepareShards, Start
on moto, as the workflow runs them): a prefix holding a good shard and a generated hostile file
either starts the run or fails it with a DatasetError that names the hostile file (or, for the
classes of all the shards together, the classes) — never another exception — and a refused run
writes nothing."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from support.hostile_files import FILES, NAMES, npz_bytes
from support.pipeline_driver import Pipeline

from stepnet.datasets import synthetic_classification
from trainer import settings as trainer_settings
from trainer.data.errors import DatasetError

RUNS = itertools.count()
GOOD = npz_bytes(**dict(zip("Xy", synthetic_classification(n=24, d=4, k=3, seed=5), strict=True)))


@st.composite
def near_good(draw: st.DrawFn) -> bytes:
    """An .npz of the good shard's schema (float32 X of 4 features, int64 y) whose values are
    hostile: NaN, ±inf, huge or tiny floats, labels outside the 3 classes, 0 to 6 rows."""
    n = draw(st.integers(0, 6))  # 0 rows: an empty shard
    X = draw(
        hnp.arrays(np.float32, (n, 4), elements=st.floats(-10, 10, width=32) | st.floats(width=32))
    )
    y = draw(
        hnp.arrays(np.int64, (n,), elements=st.integers(0, 2) | st.integers(-(2**63), 2**63 - 1))
    )
    return npz_bytes(X=X, y=y)


def document(run_id: str, source: str) -> dict[str, Any]:
    """A small classification config: 4 features, 3 classes."""
    return {
        "run_id": run_id,
        "dataset": {"source": source, "block_rows": 4},
        "model": {
            "layers": [{"units": 6, "activation": "relu"}, {"units": 3, "activation": "softmax"}]
        },
        "loss": "cross_entropy",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 1,
        "batch_size": 8,
        "workers": 2,
        "mode": "fused",
    }


def _keys(aws: Any) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=aws.bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def _items(aws: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws.dynamodb.scan(TableName=table)["Items"]
    return items


def _wipe(aws: Any) -> None:
    """Empty the bucket and the tables: each generated example starts from a clean account."""
    for key in _keys(aws):
        aws.s3.delete_object(Bucket=aws.bucket, Key=key)
    for table in (aws.runs_table, aws.tensors_table):
        schema = aws.dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
        for item in _items(aws, table):
            key = {part["AttributeName"]: item[part["AttributeName"]] for part in schema}
            aws.dynamodb.delete_item(TableName=table, Key=key)
    trainer_settings.install(None)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    file=st.tuples(FILES, NAMES) | st.tuples(near_good(), st.sampled_from(["data.npz", "X.NPZ"]))
)
def test_a_hostile_shard_starts_the_run_or_fails_it_by_name_writing_nothing(
    handler_env: Any, file: tuple[bytes, str]
) -> None:
    # Given a prefix holding a good shard and a hostile file after it
    data, name = file
    _wipe(handler_env)
    run_id = f"hostile-{next(RUNS)}"
    prefix = f"uploads/{run_id}/"
    uploaded = [f"{prefix}part-0.npz", f"{prefix}part-1-{name}"]
    for key, body in zip(uploaded, (GOOD, data), strict=True):
        handler_env.s3.put_object(Bucket=handler_env.bucket, Key=key, Body=body)
    source = f"s3://{handler_env.bucket}/{prefix}"

    # When the run is initialized
    try:
        run = Pipeline().initialize(document(run_id, source), run_id)

    # Then it fails naming the hostile file, and nothing of the run is written...
    except DatasetError as error:
        event("refused")
        message = str(error)
        whole_dataset = message.startswith(("dataset: the data has", "dataset: y has a single"))
        assert f"{source}part-1-{name}" in message or whole_dataset, message
        assert _items(handler_env, handler_env.runs_table) == []
        assert _items(handler_env, handler_env.tensors_table) == []
        assert _keys(handler_env) == sorted(uploaded)
        return

    # ...or the run starts on both shards
    event("started")
    assert run["run_id"] == run_id
    info = trainer_settings.store().runs.get_dataset_info(run_id)
    assert info["shards"] == 2 and info["n"] > 24


@pytest.mark.parametrize(
    ("first", "second", "fragment"),
    [
        ([-1, 0, -1, 0], [0, 1, 2, 0], "the data has 4 classes [-1, 0, 1, 2] but"),
        ([3, 0, 3, 0], [0, 0, 3, 3], "the data has 2 classes [0, 3] but"),
    ],
    ids=["one-class-too-many", "one-class-too-few"],
)
def test_the_classes_of_all_the_shards_are_checked_before_anything_is_written(
    handler_env: Any, first: list[int], second: list[int], fragment: str
) -> None:
    # Given two shards (two groups), each with at most 3 classes, whose classes together are not 3
    prefix = "uploads/classes/"
    uploaded = [f"{prefix}part-0.npz", f"{prefix}part-1.npz"]
    for key, labels in zip(uploaded, (first, second), strict=True):
        y = np.array(labels, dtype=np.int64)
        X = np.arange(16, dtype=np.float32).reshape(4, 4)
        handler_env.s3.put_object(Bucket=handler_env.bucket, Key=key, Body=npz_bytes(X=X, y=y))
    config = document("classes", f"s3://{handler_env.bucket}/{prefix}") | {"batch_size": 2}

    # When the run is initialized
    with pytest.raises(DatasetError) as raised:
        Pipeline().initialize(config, "classes")

    # Then it is refused for its classes, and nothing of it was written
    assert fragment in str(raised.value), str(raised.value)
    assert _items(handler_env, handler_env.runs_table) == []
    assert _items(handler_env, handler_env.tensors_table) == []
    assert _keys(handler_env) == uploaded
