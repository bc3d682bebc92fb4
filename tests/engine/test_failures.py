"""Failures on the local engine: a handler's own error fails the run with a readable cause; a
transient Lambda service error is retried and the run ends with the reference's weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepnet.client import readable_cause
from stepnet.local import run_local
from stepnet.reference import train
from tests.engine.conftest import digits_config, each_store, load_weights, max_weight_difference
from trainer.config import parse_config
from trainer.contract import names

pytestmark = pytest.mark.engine


def _function(account, logical: str) -> str:
    return names.function_name(account.stack_name, logical)


@each_store
def test_a_handler_error_fails_the_run_with_a_readable_cause(account, tmp_path: Path) -> None:
    # Given a backward pass that fails with a non-transient error
    config = parse_config(digits_config(run_id="broken", epochs=2))
    account.runtime.inject_fault(
        _function(account, "Backward"), "ValueError", "shapes (32,10) and (64,10) not aligned"
    )

    # When
    run = run_local(config, tmp_path, account=account)

    # Then the run failed, and the cause names the error and its message
    assert run.description["status"] == "FAILED"
    assert run.description["error"] == "stepnet.RunFailed"
    assert readable_cause(run.description) == "ValueError: shapes (32,10) and (64,10) not aligned"
    # the failed epoch is its own failed execution (its failed chunk beside it), and no model
    # was exported
    assert [name for name in run.every_history if "epoch" in name] == [
        "broken-epoch-001", "broken-epoch-001-part-01"
    ]  # fmt: skip
    assert not (tmp_path / "model.npz").exists()
    assert (tmp_path / "executions" / "broken-epoch-001.json").exists()
    # and the report beside it says why
    assert run.report is not None
    page = run.report.read_text()
    assert "FAILED" in page and "ValueError: shapes (32,10) and (64,10) not aligned" in page
    # and a home keeps the run FAILED, with that cause, after the process ends
    if account.home_store is not None:
        status = account.home_store.runs.get_status("broken")
        assert status["status"] == "FAILED"
        assert status["cause"] == "ValueError: shapes (32,10) and (64,10) not aligned"


def test_a_bad_config_fails_before_anything_runs(account, tmp_path: Path) -> None:
    # Given a config the CLI would reject, sent straight to the state machine (as the AWS CLI can)
    import json

    sfn = account.client("stepfunctions")
    document = digits_config(run_id="typo", epochs=1)
    document["optimizer"]["learnig_rate"] = 0.1

    # When
    arn = sfn.start_execution(
        stateMachineArn=account.resources.training_arn, name="typo", input=json.dumps(document)
    )["executionArn"]
    description = _wait(sfn, arn)

    # Then
    assert description["status"] == "FAILED"
    cause = readable_cause(description)
    assert cause.startswith("ConfigError: invalid run config")
    assert "optimizer.learnig_rate: unknown field" in cause


@each_store
def test_a_transient_error_is_retried_and_changes_nothing(account, tmp_path: Path) -> None:
    # Given a Lambda service hiccup on the first forward pass and the first update
    config = parse_config(digits_config(run_id="flaky", epochs=1, workers=4))
    account.runtime.inject_fault(_function(account, "Forward"), "Lambda.ServiceException")
    account.runtime.inject_fault(_function(account, "Update"), "Lambda.TooManyRequestsException")

    # When
    run = run_local(config, tmp_path, account=account)

    # Then it was retried (the chunk's history shows the failures) and the weights equal the
    # reference's
    assert run.succeeded, run.description
    failed = [e for e in run.every_history["flaky-epoch-001-part-01"] if e["type"] == "TaskFailed"]
    assert sorted(e["taskFailedEventDetails"]["error"] for e in failed) == [
        "Lambda.ServiceException",
        "Lambda.TooManyRequestsException",
    ]
    difference = max_weight_difference(train(config).params, load_weights(tmp_path / "model.npz"))
    assert difference <= 1e-6, f"max |local - reference| = {difference}"


def _wait(sfn, arn: str) -> dict:
    import time

    while (description := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        time.sleep(0.1)
    return description
