"""`stepnet resume`: a stopped run continues from its last complete weights version, in a new
Training execution, and ends with the weights an uninterrupted run has.

A run stopped after weights version V left exactly this in its store: versions 0..V (a version
is complete once its optimizer bundle is written), the metrics of the epochs evaluated by then,
no model, and a status that is not SUCCEEDED. Each test makes that state from a finished run
(deleting what came after) and resumes it in the same emulated account.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stepnet.client import StepnetClient
from stepnet.engine import LocalAccount
from stepnet.local import run_local
from stepnet.reference import train
from tests.engine.conftest import digits_config, load_weights, max_weight_difference
from trainer.config import RunConfig, parse_config
from trainer.contract.names import TENSORS_PK
from trainer.executions import ResumeError
from trainer.store import keys, runs
from trainer.training.cursor import epoch_name, resume_name

pytestmark = pytest.mark.engine

STEPS = 6  # digits: 1,437 training rows in steps of 64 × 4


def _client(account: LocalAccount) -> StepnetClient:
    assert account.resources is not None
    return StepnetClient(account.resources, endpoint_url=account.endpoint_url)


def _stop_after(account: LocalAccount, config: RunConfig, version: int, evaluated: int) -> None:
    """Leave the run's store as a process killed after weights ``version`` would have, with
    ``evaluated`` epochs evaluated."""
    client = _client(account)
    ddb = client.store.clients[0]
    assert account.resources is not None
    last = config.epochs * STEPS
    for later in range(version + 1, last + 1):
        for key in (
            keys.weights_key(config.run_id, later),
            keys.optimizer_key(config.run_id, later),
        ):
            ddb.delete_item(TableName=account.resources.tensors_table, Key={TENSORS_PK: {"S": key}})
    for epoch in range(evaluated + 1, config.epochs + 1):
        ddb.delete_item(
            TableName=account.resources.runs_table,
            Key=runs.record_key(config.run_id, runs.epoch_record(epoch)),
        )
    client.store.runs.set_status(config.run_id, "RUNNING")


def _config(run_id: str, **changes: object) -> RunConfig:
    return parse_config(
        digits_config(**{"run_id": run_id, "epochs": 2, "workers": 4, "batch_size": 64} | changes)
    )


@pytest.mark.parametrize(
    ("version", "evaluated", "epoch", "first_step"),
    [
        (0, 0, 1, 0),  # stopped before the first step
        (3, 0, 1, 3),  # inside the first epoch
        (STEPS, 0, 1, STEPS - 1),  # every step of epoch 1, not evaluated: its last step again
        (STEPS, 1, 2, 0),  # epoch 1 evaluated: epoch 2 from its first step
        (2 * STEPS - 1, 1, 2, STEPS - 1),  # one step before the end
        (2 * STEPS, 2, 3, 0),  # every epoch evaluated: only the export is left
    ],
)
def test_a_stopped_run_resumes_to_the_references_weights(
    account: LocalAccount,
    tmp_path: Path,
    version: int,
    evaluated: int,
    epoch: int,
    first_step: int,
) -> None:
    # Given a fused digits run that finished, rolled back to where it stopped
    config = _config(f"resume-{version}-{evaluated}", mode="fused")
    assert run_local(config, tmp_path / "first", account=account).succeeded
    _stop_after(account, config, version, evaluated)

    # When it is resumed
    run = run_local(config, tmp_path / "resumed", account=account, resume=True)

    # Then it finished in a new Training execution, named for its first resume, and its weights
    # and metrics are the reference's
    assert run.succeeded, run.description
    assert run.description["name"] == resume_name(config.run_id, 1)
    reference = train(config)
    difference = max_weight_difference(
        reference.params, load_weights(tmp_path / "resumed" / "model.npz")
    )
    assert difference == 0.0, f"max |resumed - reference| = {difference}"
    assert [row["train_loss"] for row in run.metrics] == [
        row["train_loss"] for row in reference.metrics
    ]
    # and it trained only from where it stopped: the epochs it trained are named for the resume
    names = set(run.histories)
    if epoch <= config.epochs:
        assert epoch_name(config.run_id, epoch, 1) in names
        plan = next(
            e
            for e in run.histories[epoch_name(config.run_id, epoch, 1)]
            if e["type"] == "TaskSucceeded"
        )
        assert f'"step":{first_step}' in plan["taskSucceededEventDetails"]["output"].replace(
            " ", ""
        )
    status = _client(account).store.runs.get_status(config.run_id)
    assert status["status"] == "SUCCEEDED"


def test_a_per_layer_run_stopped_inside_an_epoch_resumes_to_the_references_weights(
    account: LocalAccount, tmp_path: Path
) -> None:
    # Given a per-layer run stopped inside its second epoch
    config = _config("resume-per-layer", mode="per_layer")
    assert run_local(config, tmp_path / "first", account=account).succeeded
    _stop_after(account, config, STEPS + 2, 1)

    # When it is resumed twice (the second time after it stopped again at the same place)
    run_local(config, tmp_path / "once", account=account, resume=True)
    _stop_after(account, config, STEPS + 2, 1)
    run = run_local(config, tmp_path / "twice", account=account, resume=True)

    # Then the second resume is the run's second attempt, and the weights are the reference's
    assert run.succeeded, run.description
    assert run.description["name"] == resume_name(config.run_id, 2)
    difference = max_weight_difference(
        train(config).params, load_weights(tmp_path / "twice" / "model.npz")
    )
    assert difference == 0.0


def test_a_finished_or_unknown_run_is_not_resumed(account: LocalAccount, tmp_path: Path) -> None:
    # Given a finished run
    config = _config("resume-finished", mode="fused", epochs=1)
    assert run_local(config, tmp_path, account=account).succeeded
    client = _client(account)

    # When / Then resuming it, or a run that never was, is refused, naming why
    with pytest.raises(ResumeError, match="has finished"):
        client.resume(config.run_id)
    with pytest.raises(ResumeError, match="unknown here"):
        client.resume("never-was")
