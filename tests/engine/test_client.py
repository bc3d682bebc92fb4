"""`stepnet start / watch / fetch` against the emulated account, and `stepnet serve` driven by
the real AWS CLI from another process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stepnet.cli import main
from stepnet.reference import train
from tests.engine.conftest import digits_config, load_weights, max_weight_difference
from trainer.config import parse_config

pytestmark = pytest.mark.engine
BIN = Path(sys.executable).parent


def test_start_watch_fetch_on_the_emulated_account(account, tmp_path: Path, capsys) -> None:
    # Given a config file, as a user writes it
    config = digits_config(run_id="cli", epochs=2, mode="fused")
    path = tmp_path / "cli.json"
    path.write_text(json.dumps(config))

    # When the user starts, watches and fetches the run
    assert main(["start", str(path), "--region", "us-east-1"]) == 0
    assert main(["watch", "cli", "--region", "us-east-1", "--poll", "0.2"]) == 0
    assert main(["fetch", "cli", "--out", str(tmp_path / "out"), "--region", "us-east-1"]) == 0

    # Then the output names the execution and its console URL, then the epochs as they end
    printed = capsys.readouterr().out
    assert (
        "execution: arn:aws:states:us-east-1:123456789012:execution:stepnet-Training:cli" in printed
    )
    assert "console.aws.amazon.com/states/home?region=us-east-1" in printed
    assert "epoch   2" in printed and "cli-epoch-002: SUCCEEDED" in printed
    # and the fetched model is the reference's
    reference = train(parse_config(config))
    weights = load_weights(tmp_path / "out" / "model.npz")
    assert max_weight_difference(reference.params, weights) <= 1e-6
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [row["val_loss"] for row in metrics["epochs"]] == [
        row["val_loss"] for row in reference.metrics
    ]

    # and starting it again is refused, naming its status, with no traceback
    assert main(["start", str(path), "--region", "us-east-1"]) == 2
    refused = capsys.readouterr().out
    assert "error: a run with id 'cli' exists already (SUCCEEDED)" in " ".join(refused.split())


def test_a_mismatched_execution_name_is_refused(account, tmp_path: Path, capsys) -> None:
    # Given a config whose run_id differs from the execution name
    sfn = account.client("stepfunctions")
    document = digits_config(run_id="named-a", epochs=1)

    # When
    arn = sfn.start_execution(
        stateMachineArn=account.resources.training_arn, name="named-b", input=json.dumps(document)
    )["executionArn"]
    while (description := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        time.sleep(0.1)

    # Then
    assert description["status"] == "FAILED"
    assert "start the execution with --name named-a" in description["cause"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client_env() -> dict[str, str]:
    """What a user's shell has for the emulated account: any credentials and a region (the
    test must not depend on the ones a module's ``account`` fixture happens to have set)."""
    return os.environ | {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def _aws(endpoint: str, *args: str) -> dict:
    result = subprocess.run(
        [str(BIN / "aws"), "--endpoint-url", endpoint, "--output", "json", *args],
        capture_output=True, text=True, env=_client_env(), timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout) if result.stdout.strip() else {}


@pytest.mark.slow
def test_serve_works_with_the_real_aws_cli(tmp_path: Path) -> None:
    # Given `stepnet serve` in its own process
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "stepnet"), "serve", "--port", str(port), "--seconds", "240"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        machine = "arn:aws:states:us-east-1:123456789012:stateMachine:stepnet-Training"
        for _ in range(100):
            try:
                _aws(
                    endpoint,
                    "stepfunctions",
                    "describe-state-machine",
                    "--state-machine-arn",
                    machine,
                )
                break
            except subprocess.CalledProcessError:
                time.sleep(0.3)
        config = tmp_path / "digits.json"
        config.write_text(json.dumps(digits_config(run_id="served", epochs=2, mode="fused")))

        # When the AWS CLI starts the training, as the README shows
        started = _aws(
            endpoint, "stepfunctions", "start-execution", "--state-machine-arn", machine,
            "--name", "served", "--input", f"file://{config}",
        )  # fmt: skip
        arn = started["executionArn"]
        for _ in range(600):
            status = _aws(endpoint, "stepfunctions", "describe-execution", "--execution-arn", arn)
            if status["status"] != "RUNNING":
                break
            time.sleep(0.5)

        # Then it succeeded; the epoch executions are listed; the history shows them
        assert status["status"] == "SUCCEEDED", status
        epochs = _aws(
            endpoint, "stepfunctions", "list-executions", "--state-machine-arn",
            machine.replace("stepnet-Training", "stepnet-Epoch"),
        )["executions"]  # fmt: skip
        assert sorted(e["name"] for e in epochs) == ["served-epoch-001", "served-epoch-002"]
        history = _aws(endpoint, "stepfunctions", "get-execution-history", "--execution-arn", arn)
        # Initialize, Check and Prepare (one group of shards each), Start, 2 × Train epoch (it
        # evaluates the epoch too), Export model, Register model, Promote if better
        assert sum(e["type"] == "TaskSucceeded" for e in history["events"]) == 9
        # and stepnet's own client works through the same endpoint
        out = tmp_path / "out"
        for command in (
            ["watch", "served", "--poll", "0.2"],
            ["fetch", "served", "--out", str(out)],
        ):
            subprocess.run(
                [str(BIN / "stepnet"), *command, "--endpoint-url", endpoint, "--region", "us-east-1"],
                check=True, timeout=120, capture_output=True, env=_client_env(),
            )  # fmt: skip
        reference = train(parse_config(json.loads(config.read_text())))
        assert max_weight_difference(reference.params, load_weights(out / "model.npz")) <= 1e-6
        assert np.isfinite(json.loads((out / "metrics.json").read_text())["epochs"][-1]["val_loss"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_start_with_a_missing_local_dataset_says_so(account, tmp_path: Path, capsys) -> None:
    # Given a config naming a file that is not there
    config = digits_config(run_id="missing", epochs=1)
    config["dataset"]["source"] = str(tmp_path / "nowhere.csv")
    path = tmp_path / "missing.json"
    path.write_text(json.dumps(config))

    # When
    code = main(["start", str(path), "--region", "us-east-1"])

    # Then nothing started, and the error names the field and the path
    assert code == 2
    assert f"dataset.source: no file at {tmp_path / 'nowhere.csv'}" in capsys.readouterr().out
    sfn = account.client("stepfunctions")
    names = [
        e["name"]
        for e in sfn.list_executions(stateMachineArn=account.resources.training_arn)["executions"]
    ]
    assert "missing" not in names
