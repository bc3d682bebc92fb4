"""`stepnet local` trains the same weights as `stepnet reference`, and its executions are shaped
as the product promises: one child execution per epoch, named in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stepnet.client import readable_cause
from stepnet.datasets import synthetic_classification, write_npz
from stepnet.local import run_local
from stepnet.reference import prepare_dataset, train
from tests.engine.conftest import (
    digits_config,
    each_store,
    load_weights,
    max_weight_difference,
    regression_config,
)
from trainer.config import parse_config
from trainer.contract import names

pytestmark = pytest.mark.engine


@each_store
@pytest.mark.parametrize("mode", ["per_layer", "fused", "per_step"])
def test_digits_with_four_workers_matches_the_reference(account, tmp_path: Path, mode: str) -> None:
    # Given
    config = parse_config(digits_config(run_id=f"digits-{mode}", epochs=2, workers=4, mode=mode))

    # When
    run = run_local(config, tmp_path, account=account)
    reference = train(config)

    # Then
    assert run.succeeded, run.description
    difference = max_weight_difference(reference.params, load_weights(tmp_path / "model.npz"))
    assert difference <= 1e-6, f"max |local - reference| = {difference}"
    assert run.metrics == [row | {"version": row_v} for row, row_v in _versions(reference)]


def _versions(reference):
    steps = reference.version // len(reference.metrics)
    return [(row, steps * (i + 1)) for i, row in enumerate(reference.metrics)]


@each_store
def test_synthetic_regression_matches_the_reference(
    account, tmp_path: Path, regression_npz
) -> None:
    # Given a local .npz dataset (the client uploads it to the bucket)
    config = parse_config(regression_config(regression_npz))

    # When
    run = run_local(config, tmp_path, account=account)
    reference = train(config)

    # Then
    assert run.succeeded, run.description
    difference = max_weight_difference(reference.params, load_weights(tmp_path / "model.npz"))
    assert difference <= 1e-6, f"max |local - reference| = {difference}"
    assert [row["val_loss"] for row in run.metrics] == [r["val_loss"] for r in reference.metrics]


def test_each_epoch_is_its_own_child_execution(account, tmp_path: Path) -> None:
    # Given
    config = parse_config(digits_config(run_id="children", epochs=3, mode="fused"))

    # When
    run = run_local(config, tmp_path, account=account)

    # Then the epoch executions exist, in order, each with its one chunk of steps, and succeeded
    names = [name for name in run.every_history if name != "children"]
    assert names == [
        "children-epoch-001", "children-epoch-002", "children-epoch-003",
        "children-epoch-001-part-01", "children-epoch-002-part-01", "children-epoch-003-part-01",
    ]  # fmt: skip
    sfn = account.client("stepfunctions")
    for execution in sfn.list_executions(stateMachineArn=account.resources.epoch_arn)["executions"]:
        if execution["name"].startswith("children-"):
            assert execution["status"] == "SUCCEEDED"
    # and the parent's history shows each child it started, by ARN
    parent = run.histories["children"]
    started = [
        e["taskSucceededEventDetails"]["output"]
        for e in parent
        if e["type"] == "TaskSucceeded"
        and e["taskSucceededEventDetails"]["resourceType"] == "states"
    ]
    assert len(started) == 3
    for epoch, output in enumerate(started, start=1):
        assert f":children-epoch-{epoch:03d}" in output
    # and the outputs are written next to the histories
    assert {p.name for p in tmp_path.iterdir()} >= {"model.npz", "model.json", "metrics.json"}
    assert len(list((tmp_path / "executions").glob("*.json"))) == 1 + 3  # as the APIs give them
    assert len(list((tmp_path / "executions" / "express").glob("*.json"))) == 3  # the chunks


# --- datasets of several shards -------------------------------------------------------------------


def _shard_folder(folder: Path, sizes: tuple[int, ...], seed: int = 2) -> Path:
    """A folder of .npz shards of ``sizes`` rows (compressed every other one: converted)."""
    X, y = synthetic_classification(n=sum(sizes), d=6, k=3, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for index, rows in enumerate(sizes):
        save = np.savez_compressed if index % 2 else np.savez
        save(folder / f"part-{index}.npz", X=X[start : start + rows], y=y[start : start + rows])
        start += rows
    return folder


def _shards_config(source: Path, run_id: str, mode: str) -> dict:
    return {
        "run_id": run_id,
        "dataset": {"source": str(source), "validation_fraction": 0.2},
        "model": {
            "layers": [{"units": 10, "activation": "relu"}, {"units": 3, "activation": "softmax"}]
        },
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 2,
        "batch_size": 16,
        "workers": 3,
        "seed": 9,
        "mode": mode,
    }


@pytest.mark.parametrize("mode", ["per_layer", "fused", "per_step"])
def test_a_folder_of_unequal_shards_matches_the_reference(
    account, tmp_path: Path, mode: str
) -> None:
    # Given a local folder of three shards of unequal sizes (the client uploads each one)
    folder = _shard_folder(tmp_path / "shards", (90, 31, 140))
    config = parse_config(_shards_config(folder, f"folder-{mode.replace('_', '-')}", mode))

    # When
    run = run_local(config, tmp_path / "out", account=account)
    reference = train(config)

    # Then
    assert run.succeeded, run.description
    assert (
        max_weight_difference(reference.params, load_weights(tmp_path / "out" / "model.npz")) == 0
    )
    assert [
        {k: v for k, v in r.items() if k != "version"} for r in run.metrics
    ] == reference.metrics


def test_a_large_file_is_cut_into_shards_as_the_reference_reads_it(account, tmp_path: Path) -> None:
    # Given a single file of about 1.6 MiB and shards of 1 MiB
    X, y = synthetic_classification(n=6000, d=64, k=3, seed=4)
    path = write_npz(tmp_path / "large.npz", X, y)
    assert path.stat().st_size > 1024 * 1024
    config = parse_config(
        _shards_config(path, "large-file", "fused") | {"batch_size": 128, "workers": 2}
    )

    # When the client uploads it cut into shards, and the reference cuts it the same way
    run = run_local(config, tmp_path / "out", account=account, shard_mb=1)
    reference = train(config, prepare_dataset(config, shard_mb=1))

    # Then two shards, the same weights
    assert run.succeeded, run.description
    listed = account.client("s3").list_objects_v2(
        Bucket=account.resources.bucket, Prefix=names.S3_UPLOADS_PREFIX
    )
    parts = [o["Key"] for o in listed["Contents"] if "-large-1mb/part-" in o["Key"]]
    assert len(parts) == 2
    assert (
        max_weight_difference(reference.params, load_weights(tmp_path / "out" / "model.npz")) == 0
    )


def test_a_bad_shard_fails_the_run_before_training_and_writes_nothing(
    account, tmp_path: Path
) -> None:
    # Given a folder whose second shard has an infinite value
    folder = _shard_folder(tmp_path / "bad", (40, 30, 50))
    X, y = synthetic_classification(n=30, d=6, k=3, seed=2)
    X[5, 3] = np.inf
    np.savez(folder / "part-1.npz", X=X, y=y)
    config = parse_config(_shards_config(folder, "bad-shard", "fused"))

    # When
    run = run_local(config, tmp_path / "out", account=account)

    # Then the run failed, its cause naming the shard and the problem, before any epoch
    assert not run.succeeded
    cause = readable_cause(run.description)
    assert "part-1.npz: X has 1 infinite value (first at row 5, column 3)" in cause, cause
    assert list(run.histories) == ["bad-shard"]
    # and nothing of the run is stored: no record, no tensor, no object but the uploads
    dynamodb = account.client("dynamodb")
    runs = dynamodb.scan(TableName=account.resources.runs_table)["Items"]
    assert not [i for i in runs if i[names.RUNS_PK]["S"] == "bad-shard"]
    tensors = dynamodb.scan(TableName=account.resources.tensors_table)["Items"]
    assert not [i for i in tensors if i[names.TENSORS_PK]["S"].startswith("bad-shard/")]
    listed = account.client("s3").list_objects_v2(Bucket=account.resources.bucket)
    assert not [o["Key"] for o in listed["Contents"] if "bad-shard" in o["Key"]]
