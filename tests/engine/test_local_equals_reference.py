"""`stepnet local` trains the same weights as `stepnet reference`, and its executions are shaped
as the product promises: one child execution per epoch, named in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepnet.local import run_local
from stepnet.reference import train
from tests.engine.conftest import (
    digits_config,
    load_weights,
    max_weight_difference,
    regression_config,
)
from trainer.config import parse_config

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("mode", ["per_layer", "fused"])
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

    # Then the epoch executions exist, in order, and succeeded
    names = [name for name in run.histories if name != "children"]
    assert names == ["children-epoch-001", "children-epoch-002", "children-epoch-003"]
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
    assert len(list((tmp_path / "executions").glob("*.json"))) == 4
