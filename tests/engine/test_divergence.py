"""The divergence guard and failed runs on the local engine, end to end: a run whose learning rate
overflows stops at the step where the reference stops, names epoch, step and micro-batch, exports
its last good weights (marked in model.json) and writes nothing after them; a run that fails for
another reason leaves its record FAILED with the cause."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stepnet.client import readable_cause
from stepnet.engine import LocalAccount
from stepnet.local import run_local
from stepnet.reference import train
from tests.engine.conftest import digits_config, each_store, load_weights, regression_config
from trainer.config import parse_config
from trainer.contract import names
from trainer.store import Store, TensorNotFoundError, keys
from trainer.store.runs import FAILED
from trainer.training.divergence import DIVERGED

pytestmark = pytest.mark.engine


def _store(account: LocalAccount) -> Store:
    """The account's store: its emulated DynamoDB and S3, or its home."""
    return account.stepnet_client().store


def _overflowing(regression_npz: Path, run_id: str, mode: str, rate: float) -> dict[str, Any]:
    """A regression whose plain SGD overflows: at learning rate 1.5 the gradients of epoch 2's
    fourth step (its loss still finite); at 3 the first epoch's evaluation."""
    document = regression_config(regression_npz, run_id=run_id, epochs=3, mode=mode)
    document["optimizer"] = {"name": "sgd", "learning_rate": rate}
    return document


@each_store
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize(
    ("mode", "rate", "stage"),
    [
        ("per_layer", 1.5, "micro-batch"),
        ("fused", 1.5, "micro-batch"),
        ("per_step", 1.5, "micro-batch"),  # one task checks as Update does: the same step
        ("fused", 3.0, "evaluation"),
    ],
)
def test_a_run_that_overflows_stops_at_that_step_and_exports_its_last_good_weights(
    account: LocalAccount, regression_npz: Path, tmp_path: Path, mode: str, rate: float, stage: str
) -> None:
    # Given a config whose learning rate overflows, and where the reference stops on it
    run_id = f"overflow-{mode.replace('_', '-')}-{stage}"
    config = parse_config(_overflowing(regression_npz, run_id, mode, rate))
    reference = train(config)
    assert reference.diverged is not None
    where = reference.diverged
    assert where.stage == stage

    # When it runs on the local engine
    run = run_local(config, tmp_path, account=account)

    # Then it failed as diverged, its cause naming the epoch, step and micro-batch
    assert run.description["status"] == "FAILED"
    assert run.description["error"] == DIVERGED
    assert run.diverged
    cause = readable_cause(run.description)
    assert cause == f"DivergenceError: {where.message()}"
    named = f"micro-batch {where.microbatch}" if stage == "micro-batch" else "the evaluation"
    assert f"epoch {where.epoch}, step {where.step}, {named}:" in cause
    # and the exported model is the last good version, equal to the reference's, marked so
    model = json.loads((tmp_path / "model.json").read_text())
    assert model["diverged"] == where.document()
    assert model["version"] == where.last_good_version == reference.version
    exported = load_weights(tmp_path / "model.npz")
    store = _store(account)
    last_good = store.tensors.get(keys.weights_key(config.run_id, where.last_good_version))
    for name, array in exported.items():
        np.testing.assert_array_equal(array, last_good[name])
    for layer, (W, b) in enumerate(reference.params, start=1):
        np.testing.assert_allclose(exported[f"W{layer}"], W, rtol=0, atol=1e-6)
        np.testing.assert_allclose(exported[f"b{layer}"], b, rtol=0, atol=1e-6)
    # and nothing after it was applied: no newer weights version, no metrics of the epoch
    # (an evaluation finds the epoch's versions written already: the newest is its last step's)
    newest = where.last_good_version + (where.step if stage == "evaluation" else 0)
    store.tensors.get(keys.weights_key(config.run_id, newest))
    with pytest.raises(TensorNotFoundError):
        store.tensors.get(keys.weights_key(config.run_id, newest + 1))
    assert [row["epoch"] for row in run.metrics] == list(range(1, where.epoch))
    # and the run's record says FAILED, with the cause, where and the exported model
    status = store.runs.get_status(config.run_id)
    assert status["status"] == FAILED
    assert status["cause"] == cause
    assert status["diverged"] == where.document()
    assert status["model_uri"].endswith(f"runs/{config.run_id}/model/")
    # and the report says so
    assert run.report is not None
    page = run.report.read_text()
    assert "FAILED" in page and "training diverged at epoch" in page


@each_store
def test_a_run_that_fails_otherwise_is_marked_failed_with_its_cause(
    account: LocalAccount, tmp_path: Path
) -> None:
    # Given an update that fails with a non-transient error once the run is recorded
    config = parse_config(digits_config(run_id="marked", epochs=1))
    function = names.function_name(account.stack_name, "Update")
    account.runtime.inject_fault(function, "RuntimeError", "the optimizer state is corrupt")

    # When
    run = run_local(config, tmp_path, account=account)

    # Then the execution failed with the original cause, and the run's record says so
    assert run.description["error"] == "stepnet.RunFailed"
    cause = readable_cause(run.description)
    assert cause == "RuntimeError: the optimizer state is corrupt"
    status = _store(account).runs.get_status(config.run_id)
    assert status["status"] == FAILED
    assert status["cause"] == cause
    assert status["error"] == "States.TaskFailed"  # the epoch's failure, as the Catch saw it
    assert "diverged" not in status
    assert not (tmp_path / "model.npz").exists()


def test_a_run_refused_before_anything_was_written_gets_no_record(
    account: LocalAccount, tmp_path: Path
) -> None:
    # Given a dataset whose shard check refuses it (nothing of the run is written before it)
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,x,0\n2,3,1\n")
    document = digits_config(run_id="refused", epochs=1)
    document["dataset"] = {"source": str(path)}
    document["model"]["layers"][-1]["units"] = 2

    # When
    run = run_local(parse_config(document), tmp_path / "out", account=account)

    # Then the execution failed, the marking task ran, and no record of the run exists
    assert run.description["status"] == "FAILED"
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in run.histories["refused"]
        if e["type"] == "TaskStateEntered"
    ]
    assert "Mark run failed" in entered
    assert account.resources is not None
    items = account.client("dynamodb").scan(TableName=account.resources.runs_table)["Items"]
    assert [item for item in items if "refused" in json.dumps(item)] == []
