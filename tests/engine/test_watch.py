"""`stepnet watch`: a run's live progress on the emulated account, through the same client as on
AWS. Nothing here depends on timing: the polls are recorded and checked for what each shows."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from rich.console import Console

from stepnet.cli import main
from stepnet.client import StepnetClient
from stepnet.engine import LocalAccount
from stepnet.watch import Snapshot, follow, position
from tests.engine.conftest import digits_config
from trainer.config import parse_config
from trainer.training import schedule

pytestmark = pytest.mark.engine


def _client(account: LocalAccount) -> StepnetClient:
    assert account.resources is not None
    return StepnetClient(account.resources, endpoint_url=account.endpoint_url)


def test_watch_follows_a_run_to_its_end(account: LocalAccount) -> None:
    # Given a run started on the emulated account
    client = _client(account)
    config = parse_config(digits_config(run_id="watched", epochs=2, mode="fused", workers=3))
    client.start(client.upload_dataset(config))
    polls: list[Snapshot] = []
    console = Console(record=True, width=100, force_terminal=False)

    # When it is followed until it ends (the wait between polls: a short pause, whatever it is)
    last = follow(
        client, "watched", console, sleep=threading.Event().wait, poll_seconds=0.05,
        on_snapshot=polls.append,
    )  # fmt: skip

    # Then the last poll shows every epoch evaluated and the last epoch's steps all done
    assert last.status == "SUCCEEDED" and last.done and last.cause is None
    assert last.epochs == 2 and [row["epoch"] for row in last.metrics] == [1, 2]
    assert last.execution == "watched-epoch-002"
    assert last.position is not None and last.position.epoch == 2
    assert last.position.step == last.position.steps > 0
    assert 1 <= len(last.position.losses) <= 3  # the last step's micro-batches (workers = 3)
    # every poll before it showed no less than the one before (epochs evaluated, then the step)
    seen = [(len(p.metrics), p.position.epoch if p.position else 0,
             p.position.step if p.position else -1) for p in polls]  # fmt: skip
    assert seen == sorted(seen) and polls[-1] is last
    assert all(p.status == "RUNNING" for p in polls[:-1])
    # and the screen shows the bars, the losses and the table of epochs
    screen = console.export_text()
    assert "epochs evaluated" in screen and "2/2" in screen
    assert "epoch 2 steps" in screen and f"{last.position.step}/{last.position.steps}" in screen
    assert "last step's micro-batch losses" in screen
    assert f"{last.metrics[-1]['val_loss']:.4f}" in screen


def test_the_position_mid_epoch_is_the_steps_done(account: LocalAccount) -> None:
    # Given a finished epoch execution's history (its 12 steps in Express chunks of 5: the
    # functions' step budget says so), cut after each chunk it awaited
    client = _client(account)
    config = parse_config(digits_config(run_id="cut", epochs=1, mode="fused", workers=4))
    per_step = schedule.events_per_step(workers=4, layers=config.n_layers, mode="fused")
    with account.tuned(history_event_budget=5 * per_step + schedule.EVALUATION_EVENTS):
        client.start(client.upload_dataset(config))
        client.watch("cut", poll_seconds=0.1)
    (epoch,) = client.epoch_executions("cut")
    events = client.history(epoch.arn)
    chunks = [e for e in events if e["type"] == "TaskStateExited"
              and e["stateExitedEventDetails"]["name"] == "Train steps"]  # fmt: skip

    # When the position is read from the history as it was after each chunk
    seen = [position([e for e in events if e["id"] <= chunk["id"]]) for chunk in chunks]

    # Then it counts the steps done, a chunk more each time, with its last step's losses
    assert [(p.epoch, p.step, p.steps) for p in seen if p] == [(1, 5, 12), (1, 10, 12), (1, 12, 12)]
    assert all(p is not None and 1 <= len(p.losses) <= 4 for p in seen)
    # and before the first chunk ended (the plan only), no step and no losses yet
    before = position([e for e in events if e["id"] < chunks[0]["id"]])
    assert before is not None and before.step == 0 and before.losses == ()


def test_stepnet_watch_prints_a_failed_run_s_cause(
    account: LocalAccount, tmp_path: Path, capsys
) -> None:
    # Given a run whose config the workflow refuses
    document = digits_config(run_id="refused", epochs=1)
    document["optimizer"]["learnig_rate"] = 0.1
    sfn = account.client("stepfunctions")
    assert account.resources is not None
    sfn.start_execution(
        stateMachineArn=account.resources.training_arn, name="refused", input=json.dumps(document)
    )

    # When the user watches it
    code = main(["watch", "refused", "--region", "us-east-1", "--poll", "0.1"])

    # Then it ends with the failure and its readable cause, and points at the report
    printed = capsys.readouterr().out
    assert code == 1
    assert "run refused FAILED" in printed and "learnig_rate" in printed
    assert "stepnet report refused" in printed
