"""A dataset of several shards, through the handlers in the workflow's order against moto: the
reference's weights and metrics bit for bit, whatever the shards' format; a bad shard refused
before anything is written; an epoch reads (nearly) only its own rows."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.pipeline_driver import Pipeline

from stepnet.datasets import synthetic_classification, synthetic_regression
from stepnet.reference import TrainedModel, train
from trainer import dal, settings
from trainer.config import RunConfig, parse_config
from trainer.data.errors import DatasetError
from trainer.data.shards import encode_shard

SIZES = (70, 23, 107)  # three shards of unequal sizes
EPOCHS = 2


def _npz(X: np.ndarray, y: np.ndarray, compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, X=X, y=y)
    return buffer.getvalue()


def _csv(X: np.ndarray, y: np.ndarray) -> bytes:
    header = ",".join([*(f"f{j}" for j in range(X.shape[1])), "target"])
    rows = [
        ",".join([*(repr(float(v)) for v in x), repr(float(t))]) for x, t in zip(X, y, strict=True)
    ]
    return ("\n".join([header, *rows]) + "\n").encode()


def shard_files(kind: str) -> dict[str, bytes]:
    """Three shards of one schema, named so that they list in order."""
    if kind == "csv":  # regression, two targets would not fit a CSV: one
        X, y = synthetic_regression(n=sum(SIZES), d=5, k=1, seed=3)
    else:
        X, y = synthetic_classification(n=sum(SIZES), d=5, k=3, seed=3)
    bounds = np.cumsum((0, *SIZES))
    files = {}
    for index, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        name = f"part-{index}.{kind}"
        if kind == "csv":
            files[name] = _csv(X[lo:hi], y[lo:hi])
        else:  # in place, compressed (converted), and stepnet's own layout
            files[name] = (
                _npz(X[lo:hi], y[lo:hi], compressed=index == 1)
                if index < 2
                else encode_shard(X[lo:hi], y[lo:hi])
            )
    return files


def document(kind: str, source: str, mode: str, train_loss: str) -> dict[str, Any]:
    classification = kind != "csv"
    return {
        "run_id": f"shards-{kind}",
        "dataset": {"source": source, "validation_fraction": 0.25, "block_rows": 4},
        "model": {
            "layers": [
                {"units": 12, "activation": "tanh"},
                {"units": 3, "activation": "softmax"}
                if classification
                else {"units": 1, "activation": "linear"},
            ]
        },
        "loss": "cross_entropy" if classification else "mse",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "l2": 0.001,
        "epochs": EPOCHS,
        "batch_size": 8,
        "workers": 3,
        "seed": 4,
        "mode": mode,
        "evaluation": {"train_loss": train_loss},
    }


def upload(aws: Any, prefix: str, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        aws.s3.put_object(Bucket=aws.bucket, Key=prefix + name, Body=data)
    return f"s3://{aws.bucket}/{prefix}"


def write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def reference(tmp_path: Path, kind: str, mode: str, train_loss: str) -> TrainedModel:
    folder = write(tmp_path / f"local-{kind}", shard_files(kind))
    return train(parse_config(document(kind, str(folder), mode, train_loss)))


CASES = [
    ("npz", "per_layer", "final"),
    ("npz", "fused", "running"),
    ("csv", "per_layer", "running"),
    ("csv", "fused", "final"),
]


@pytest.mark.parametrize(("kind", "mode", "train_loss"), CASES, ids=["-".join(c) for c in CASES])
def test_three_unequal_shards_train_the_reference_weights(
    handler_env: Any, tmp_path: Path, kind: str, mode: str, train_loss: str
) -> None:
    # Given three shards of 70, 23 and 107 rows in S3, and the same files in a local folder
    source = upload(handler_env, f"datasets/shards-{kind}/", shard_files(kind))
    config = document(kind, source, mode, train_loss)

    # When the handlers train on the prefix, and the reference on the folder
    summary = Pipeline(threads=3).train(config, execution_name=config["run_id"])
    expected = reference(tmp_path, kind, mode, train_loss)

    # Then the weights, the metrics and the model document are the reference's, bit for bit
    params = dal.load_params(settings.store(), config["run_id"], expected.version, 2)
    for (W, b), (W_ref, b_ref) in zip(params, expected.params, strict=True):
        np.testing.assert_array_equal(W, W_ref)
        np.testing.assert_array_equal(b, b_ref)
    metrics = dal.epoch_metrics(settings.store(), config["run_id"])
    assert [{k: v for k, v in row.items() if k != "version"} for row in metrics] == (
        expected.metrics
    )
    model = json.loads(
        handler_env.s3.get_object(
            Bucket=handler_env.bucket, Key=f"runs/{config['run_id']}/model/model.json"
        )["Body"].read()
    )
    assert model == expected.model
    assert summary["status"] == "SUCCEEDED"
    # and the dataset record keeps small facts only: the statistics are in the dataset's bundle
    info = settings.store().runs.get_dataset_info(config["run_id"])
    assert info["shards"] == 3 and info["n"] == sum(SIZES)
    assert "mean" not in info and "std" not in info


# --- bad shards ---------------------------------------------------------------------------------


def _bad(kind: str) -> bytes:
    X, y = synthetic_classification(n=20, d=5, k=3, seed=1)
    if kind == "nan":
        X = X.copy()
        X[4, 1] = np.nan
    if kind == "columns":
        X = X[:, :4]
    if kind == "dtype":
        X = X.astype(np.float64)
    if kind == "empty":
        X, y = X[:0], y[:0]
    if kind == "unreadable":
        return b"PK\x03\x04 this is not a zip archive"
    return _npz(X, y, compressed=False)


BAD = {
    "nan": "X has 1 NaN value (first at row 4, column 1)",
    "columns": "has 4 features (columns of X), not 5",
    "dtype": "stores X as float64, not float32",
    "empty": "X has no rows",
    "unreadable": "the .npz file is corrupt",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_shard_fails_the_run_before_anything_is_written(handler_env: Any, kind: str) -> None:
    # Given three good shards and a bad one among them
    files = shard_files("npz")
    files["part-1b.npz"] = _bad(kind)
    source = upload(handler_env, "datasets/bad/", files)
    config = document("npz", source, "fused", "final")

    # When the run starts
    with pytest.raises(DatasetError) as raised:
        Pipeline(threads=3).train(config, execution_name=config["run_id"])

    # Then the error names the shard and its problem
    message = str(raised.value)
    assert f"{source}part-1b.npz" in message, message
    assert BAD[kind] in message, message
    # and nothing of the run was written: no record, no tensor, no object but the uploads
    for table in (handler_env.runs_table, handler_env.tensors_table):
        assert handler_env.dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 0
    listed = handler_env.s3.list_objects_v2(Bucket=handler_env.bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"datasets/bad/{n}" for n in files)


# --- what an epoch reads ---------------------------------------------------------------------------


@pytest.fixture
def object_reads(handler_env: Any) -> Iterator[list[tuple[str, int]]]:
    """(key, bytes) of every GetObject the handlers' store makes, ranged or not."""
    reads: list[tuple[str, int]] = []

    def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name == "GetObject":
            context["object_key"] = params["Key"]

    def after(parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name == "GetObject":
            reads.append((context["object_key"], int(parsed.get("ContentLength", 0))))

    settings.install(None)
    s3 = settings.store().clients[1]
    s3.meta.events.register("before-parameter-build.s3", before)
    s3.meta.events.register("after-call.s3", after)
    yield reads


def _dataset_bytes(reads: list[tuple[str, int]]) -> int:
    """The bytes read from the shards (the tensors' objects are under tensors/)."""
    return sum(size for key, size in reads if not key.startswith("tensors/"))


@pytest.mark.parametrize(
    ("train_loss", "low", "high"), [("running", 1.0, 1.2), ("final", 1.7, 2.0)]
)
def test_an_epoch_reads_its_rows_once_with_a_running_train_loss(
    handler_env: Any,
    object_reads: list[tuple[str, int]],
    train_loss: str,
    low: float,
    high: float,
) -> None:
    # Given a run whose shards are prepared
    source = upload(handler_env, "datasets/bytes/", shard_files("npz"))
    config = document("npz", source, "fused", train_loss) | {"epochs": 1}
    pipeline = Pipeline()
    run = pipeline.initialize(config, config["run_id"])
    dataset_bytes = sum(SIZES) * (5 * 4 + 8)  # float32 features, int64 labels
    object_reads.clear()

    # When one epoch trains and is evaluated
    pipeline.train_epoch(run)

    # Then the shards' bytes read are the dataset's, once (the validation part for the
    # metrics); twice for the training part with a final train loss
    read = _dataset_bytes(object_reads)
    assert low * dataset_bytes <= read <= high * dataset_bytes, (read, dataset_bytes)


def test_many_features_fit_the_dataset_record(handler_env: Any) -> None:
    # Given 12,000 features (their mean and std would overflow a 400 KB DynamoDB item)
    X, y = synthetic_classification(n=30, d=12_000, k=3, seed=2)
    source = upload(handler_env, "datasets/wide/", {"wide.npz": _npz(X, y, compressed=False)})
    config = document("npz", source, "fused", "running") | {"epochs": 1, "batch_size": 4}

    # When
    Pipeline().initialize(config, config["run_id"])

    # Then the run started; its statistics are in the dataset's bundle, the record stays small
    store = settings.store()
    dataset = dal.load_dataset(store, config["run_id"])
    assert dataset.mean.shape == dataset.std.shape == (12_000,)
    info = store.runs.get_dataset_info(config["run_id"])
    assert len(json.dumps(info)) < 2_000
    assert isinstance(parse_config(store.runs.get_config_json(config["run_id"])), RunConfig)
