"""A run's initialization (Initialize, CheckShards, PrepareShards, Start, as the workflow runs
them) refuses bad configs and bad datasets with a clear error that names the shard, and writes
nothing; a run id is taken once (a retry with the same config is fine)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from support.pipeline_driver import Pipeline

from stepnet.datasets import npz_bytes, synthetic_classification
from trainer import settings
from trainer.config import ConfigError, parse_config
from trainer.data.errors import DatasetError
from trainer.store import RunExistsError, keys

RUN = "errors-run"


def document(source: str, **overrides: Any) -> dict[str, Any]:
    """A small classification config: 4 features, 3 classes."""
    return {
        "run_id": RUN,
        "dataset": {"source": source},
        "model": {
            "layers": [{"units": 8, "activation": "relu"}, {"units": 3, "activation": "softmax"}]
        },
        "loss": "cross_entropy",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 1,
        "batch_size": 8,
        "workers": 2,
    } | overrides


def initialize(
    config: dict[str, Any], execution_name: str = RUN, *, retry: bool = False
) -> dict[str, Any]:
    """The Training execution up to its first epoch: Start's result."""
    return Pipeline(retry=retry).initialize(config, execution_name)


def upload(aws: Any, name: str, data: bytes) -> str:
    key = f"datasets/{name}"
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=data)
    return f"s3://{aws.bucket}/{key}"


def good_npz() -> bytes:
    return npz_bytes(*synthetic_classification(n=60, d=4, k=3, seed=2))


def raw_npz(**arrays: Any) -> bytes:
    """An .npz written without any checks (npz_bytes refuses bad arrays)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def table_items(aws: Any, table: str) -> int:
    count: int = aws.dynamodb.scan(TableName=table, Select="COUNT")["Count"]
    return count


def bucket_keys(aws: Any) -> list[str]:
    response = aws.s3.list_objects_v2(Bucket=aws.bucket)
    return sorted(item["Key"] for item in response.get("Contents", []))


def assert_nothing_written(aws: Any, uploaded: list[str]) -> None:
    assert table_items(aws, aws.runs_table) == 0
    assert table_items(aws, aws.tensors_table) == 0
    assert bucket_keys(aws) == sorted(uploaded)


# --- bad configs ---------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set("optimizer.learning_rate", -1), "optimizer.learning_rate: Input should be greater"),
        (_set("model.layers.0.units", 0), "model.layers.0.units: Input should be greater"),
        (_set("epochs", 0), "epochs: Input should be greater than or equal to 1"),
        (_set("dataset.source", "data.txt"), "dataset.source: must be 'builtin:digits', a .npz"),
        (_set("learning_rate", 0.1), "learning_rate: unknown field"),
        (_set("loss", "mse"), "a softmax last layer needs loss 'cross_entropy'"),
    ],
    ids=["learning_rate", "units", "epochs", "source", "unknown", "loss"],
)
def test_a_bad_config_is_refused_and_nothing_is_written(
    handler_env: Any, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    # Given
    source = upload(handler_env, "good.npz", good_npz())
    config = document(source)
    mutate(config)

    # When
    with pytest.raises(ConfigError) as raised:
        initialize(config)

    # Then
    assert message in str(raised.value)
    assert_nothing_written(handler_env, ["datasets/good.npz"])


def test_a_bad_execution_name_is_refused_as_the_run_id(handler_env: Any) -> None:
    # Given: a config without run_id takes the execution's name, which has a space
    source = upload(handler_env, "good.npz", good_npz())
    config = document(source)
    del config["run_id"]

    # When
    with pytest.raises(ConfigError) as raised:
        initialize(config, execution_name="my run")

    # Then
    assert "run_id: String should match pattern" in str(raised.value)
    assert_nothing_written(handler_env, ["datasets/good.npz"])


def test_a_config_without_run_id_is_named_after_the_execution(handler_env: Any) -> None:
    # Given
    source = upload(handler_env, "good.npz", good_npz())
    config = document(source)
    del config["run_id"]

    # When
    run = initialize(config, execution_name="from-execution")

    # Then
    assert run["run_id"] == "from-execution"
    assert run["epoch_name"] == "from-execution-epoch-001"
    stored = parse_config(settings.store().runs.get_config_json("from-execution"))
    assert stored == parse_config(config | {"run_id": "from-execution"})


# --- bad datasets --------------------------------------------------------------------------------

X_GOOD = np.arange(40, dtype=np.float64).reshape(10, 4)
Y_GOOD = np.arange(10) % 3


def with_nan() -> bytes:
    X = X_GOOD.copy()
    X[3, 2] = np.nan
    return raw_npz(X=X, y=Y_GOOD)


@pytest.mark.parametrize(
    ("name", "data", "overrides", "fragments"),
    [
        ("nan.npz", with_nan(), {}, ["X has 1 NaN value", "row 3, column 2"]),
        ("flat.npz", raw_npz(X=np.arange(10.0), y=Y_GOOD), {}, ["X must be 2-D", "(10,)"]),
        (
            "rows.npz",
            raw_npz(X=X_GOOD, y=Y_GOOD[:9]),
            {},
            ["X has 10 rows but y has 9", "one label per sample"],
        ),
        (
            "label.csv",
            b"a,b,c,label\n1,2,3,0\n4,5,6,1\n7,8,9,2\n",
            {"label": "target"},
            ["dataset.label 'target' is not a column", "['a', 'b', 'c', 'label']"],
        ),
        ("empty.csv", b"", {}, ["the CSV file is empty"]),
        ("empty.npz", b"", {}, ["the .npz file is empty"]),
        (
            "classes.npz",
            raw_npz(X=X_GOOD, y=np.arange(10) % 5),
            {},
            ["it holds 5 classes", "model.layers[-1].units is 3"],
        ),
        (
            "floats.npz",
            raw_npz(X=X_GOOD, y=np.linspace(0.0, 1.0, 10)),
            {},
            ["classification labels must be integers"],
        ),
    ],
    ids=["nan", "1-d-X", "rows", "csv-label", "empty-csv", "empty-npz", "classes", "float-labels"],
)
def test_a_bad_dataset_is_refused_and_nothing_is_written(
    handler_env: Any, name: str, data: bytes, overrides: dict[str, Any], fragments: list[str]
) -> None:
    # Given
    source = upload(handler_env, name, data)
    config = document(source)
    config["dataset"] |= overrides

    # When
    with pytest.raises(DatasetError) as raised:
        initialize(config)

    # Then
    message = str(raised.value)
    assert message.startswith(f"dataset: shard {source}: ")
    for fragment in fragments:
        assert fragment in message
    assert_nothing_written(handler_env, [f"datasets/{name}"])


def test_a_missing_dataset_object_is_a_dataset_error(handler_env: Any) -> None:
    # Given
    source = f"s3://{handler_env.bucket}/datasets/absent.npz"

    # When
    with pytest.raises(DatasetError) as raised:
        initialize(document(source))

    # Then
    assert f"dataset.source: cannot read {source}" in str(raised.value)
    assert_nothing_written(handler_env, [])


@pytest.mark.parametrize("source", ["data/train.npz", "/tmp/train.csv", "~/train.npz"])
def test_a_local_path_is_refused_with_how_to_upload_it(handler_env: Any, source: str) -> None:
    # When
    with pytest.raises(DatasetError) as raised:
        initialize(document(source))

    # Then
    message = str(raised.value)
    assert f"{source!r} is a local path, which a Lambda function cannot read" in message
    assert "stepnet start" in message
    assert "s3:// URI" in message
    assert_nothing_written(handler_env, [])


# --- a run id is taken once ----------------------------------------------------------------------


def test_a_second_run_with_the_same_id_and_another_config_is_refused(handler_env: Any) -> None:
    # Given
    source = upload(handler_env, "good.npz", good_npz())
    first = document(source)
    initialize(first)
    store = settings.store()
    config_json = store.runs.get_config_json(RUN)
    weights = store.tensors.get(keys.weights_key(RUN, 0))["W1"].copy()
    items = table_items(handler_env, handler_env.tensors_table)
    settings.install(None)  # the second attempt runs in a fresh container

    # When: another seed and learning rate under the same run id
    second = document(source, seed=99, optimizer={"name": "sgd", "learning_rate": 0.5})
    with pytest.raises(RunExistsError, match=f"a run with id '{RUN}' already exists"):
        initialize(second)

    # Then: the first run is intact (read through a store with nothing cached)
    store = settings.store()
    assert store.runs.get_config_json(RUN) == config_json
    assert parse_config(config_json) == parse_config(first)
    np.testing.assert_array_equal(store.tensors.get(keys.weights_key(RUN, 0))["W1"], weights)
    assert table_items(handler_env, handler_env.tensors_table) == items
    assert store.runs.get_status(RUN)["status"] == "RUNNING"


def test_initialize_retried_with_the_same_config_is_idempotent(handler_env: Any) -> None:
    # Given
    source = upload(handler_env, "good.npz", good_npz())
    config = document(source)
    first = initialize(config)
    store = settings.store()
    weights = store.tensors.get(keys.weights_key(RUN, 0))["W2"].copy()
    runs = table_items(handler_env, handler_env.runs_table)
    items = table_items(handler_env, handler_env.tensors_table)

    # When: every task again with the same event, as a Step Functions retry delivers it
    again = initialize(json.loads(json.dumps(config)), retry=True)

    # Then
    assert again == first
    assert first == {
        "run_id": RUN, "epochs": 1, "epoch": 1, "epoch_name": f"{RUN}-epoch-001",
        "version": 0, "done": False, "metrics": None, "attempt": 0,
    }  # fmt: skip
    store.tensors.clear_cache()
    np.testing.assert_array_equal(store.tensors.get(keys.weights_key(RUN, 0))["W2"], weights)
    assert table_items(handler_env, handler_env.runs_table) == runs
    assert table_items(handler_env, handler_env.tensors_table) == items
