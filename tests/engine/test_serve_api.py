"""`stepnet serve` driven as a user drives the deployed stack: curl (SigV4-signed) on the API
and the AWS CLI on the bucket, from other processes.

One served account, one tiny digits run started through the API: a bad config is refused
with its fields and starts nothing; the run is reported (status, per-epoch metrics and console
links, its model and promotion); then its predictions, by the online route, by a file uploaded
with `aws s3 cp` under inference/<pipeline>/in/, and by `stepnet predict`, equal the model's own
forward pass bit for bit; bad inputs get their reasons (a 400, an error file); the registry
commands answer through the same endpoint; and a dataset uploaded with `aws s3 cp` under
datasets/<pipeline>/ retrains the pipeline (S3 -> EventBridge -> the Retrain machine).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.engine.test_client import _client_env, _free_port
from tests.integration.inference.conftest import forward_pass

pytestmark = [pytest.mark.engine, pytest.mark.slow]
BIN = Path(sys.executable).parent
CURL = "/usr/bin/curl"
BUCKET = "stepnet-data-123456789012"
TRAINING_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:stepnet-Training"
PIPELINE = "served-digits"
CONFIG: dict[str, Any] = {
    "run_id": "served-api",
    "pipeline": PIPELINE,
    "dataset": {"source": "builtin:digits"},
    "model": {
        "layers": [{"units": 16, "activation": "relu"}, {"units": 10, "activation": "softmax"}]
    },
    "loss": "cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "epochs": 1,
    "batch_size": 64,
    "workers": 2,
    "mode": "fused",
}


class Served:
    """A `stepnet serve` process: its AWS endpoint and its API's base URL."""

    def __init__(self, process: subprocess.Popen[str], endpoint: str, api: str) -> None:
        self.process, self.endpoint, self.api = process, endpoint, api

    def curl(
        self, method: str, path: str, body: Any = None, *, sign: bool = True
    ) -> tuple[int, Any]:
        """(status, JSON document) of one request to the API, signed as for execute-api."""
        args = [CURL, "-sS", "-X", method, "-w", "\n%{http_code}", self.api + path]
        if sign:
            args[1:1] = [
                "--aws-sigv4",
                "aws:amz:us-east-1:execute-api",
                "--user",
                "testing:testing",
            ]
        if body is not None:
            data = body if isinstance(body, str) else json.dumps(body)
            args[1:1] = ["-H", "Content-Type: application/json", "--data-binary", data]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
        text, _, status = result.stdout.rpartition("\n")
        return int(status), json.loads(text)

    def aws(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "aws"), "--endpoint-url", self.endpoint, *args],
            capture_output=True, text=True, env=_client_env(), timeout=60, check=check,
        )  # fmt: skip

    def stepnet(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "stepnet"), *args, "--endpoint-url", self.endpoint, "--region", "us-east-1"],
            capture_output=True, text=True, env=_client_env(), timeout=120, check=False,
        )  # fmt: skip

    def wait_for_object(self, key: str, seconds: float = 60) -> bytes:
        """An object's bytes once it exists (S3 invokes the batch function asynchronously)."""
        deadline = time.monotonic() + seconds
        while True:
            got = self.aws("s3", "cp", f"s3://{BUCKET}/{key}", "-", check=False)
            if got.returncode == 0:
                return got.stdout.encode()
            if time.monotonic() > deadline:
                raise AssertionError(f"{key} did not appear: {got.stderr}")
            time.sleep(0.3)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    port, api_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [str(BIN / "stepnet"), "serve", "--port", str(port), "--api-port", str(api_port),
         "--seconds", "600"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    server = Served(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}/v1/")
    try:
        for _ in range(150):
            try:
                if server.curl("GET", "runs")[0] == 200:
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("stepnet serve did not answer")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def finished_run(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run, started through the API and followed until it ends; its fetched model."""
    status, started = served.curl("POST", "runs", CONFIG)
    assert status == 201, started
    for _ in range(600):
        status, run = served.curl("GET", f"runs/{CONFIG['run_id']}")
        if run["status"] != "RUNNING":
            break
        time.sleep(0.3)
    out = tmp_path_factory.mktemp("served-model")
    fetched = served.stepnet("fetch", CONFIG["run_id"], "--out", str(out))
    assert fetched.returncode == 0, fetched.stderr
    return {"started": started, "run": run, "model_dir": out}


def rows() -> np.ndarray:
    return load_digits().data[:40].astype(np.float64)


def write_csv(path: Path, X: np.ndarray) -> Path:
    with path.open("w") as f:
        f.write(",".join(f"pixel{j}" for j in range(X.shape[1])) + "\n")
        np.savetxt(f, X, fmt="%g", delimiter=",")
    return path


def test_a_bad_config_is_refused_with_its_fields_and_starts_nothing(served: Served) -> None:
    # When the API is asked to start a run with a bad config, unsigned, and with a non-object
    bad = CONFIG | {"run_id": "served-bad", "epochs": 0, "batch_size": "many"}
    status, refused = served.curl("POST", "runs", bad)
    unsigned, denied = served.curl("POST", "runs", CONFIG, sign=False)
    listed_status, listed = served.curl("POST", "runs", "[1, 2]")

    # Then a 400 lists each field, and no execution of that name exists
    assert status == 400
    assert [p.split(":")[0] for p in refused["problems"]] == ["epochs", "batch_size"]
    assert (unsigned, denied) == (403, {"message": "Missing Authentication Token"})
    assert listed_status == 400 and listed["error"].startswith("the request body must be")
    names = json.loads(
        served.aws(
            "stepfunctions", "list-executions", "--state-machine-arn",
            "arn:aws:states:us-east-1:123456789012:stateMachine:stepnet-Training",
        ).stdout
    )["executions"]  # fmt: skip
    assert "served-bad" not in [e["name"] for e in names]


def test_the_api_starts_a_run_and_reports_it(finished_run: dict[str, Any], served: Served) -> None:
    # Given the run the API started
    started, run = finished_run["started"], finished_run["run"]

    # Then it succeeded; its page has the metrics and console link of each epoch, its
    # model version and the promotion (the pipeline's first model)
    assert started["execution_arn"].endswith(":execution:stepnet-Training:served-api")
    assert run["status"] == "SUCCEEDED", run
    (epoch,) = run["epochs"]
    assert epoch["execution"] == "served-api-epoch-001"
    assert set(epoch["metrics"]) == {"train_loss", "val_loss", "val_accuracy", "version"}
    assert epoch["console_url"].endswith(epoch["execution_arn"])
    assert run["model"]["uri"] == f"s3://{BUCKET}/runs/served-api/model/"
    assert run["promotion"]["promoted"] is True
    # and the list has it
    status, listed = served.curl("GET", "runs?status=SUCCEEDED")
    assert status == 200 and "served-api" in [r["run_id"] for r in listed["runs"]]
    # and the registry says so through the CLI
    models = served.stepnet("models", PIPELINE)
    assert (
        models.returncode == 0 and "production" in models.stdout and "served-api" in models.stdout
    )


def test_the_three_ways_to_predict_equal_the_model_s_forward_pass(
    finished_run: dict[str, Any], served: Served, tmp_path: Path
) -> None:
    # Given rows, and the model's own forward pass on them
    X = rows()
    expected = forward_pass(finished_run["model_dir"], X)

    # When predicted online (curl), from an uploaded file (aws s3 cp) and by stepnet predict
    status, online = served.curl("POST", f"models/{PIPELINE}/predict", {"rows": X.tolist()})
    upload = write_csv(tmp_path / "day1.csv", X)
    served.aws("s3", "cp", str(upload), f"s3://{BUCKET}/inference/{PIPELINE}/in/day1.csv")
    batch = served.wait_for_object(f"inference/{PIPELINE}/out/day1.csv").decode()
    local = tmp_path / "local.csv"
    predicted = served.stepnet("predict", "served-api", str(upload), "--out", str(local))

    # Then each is the forward pass, bit for bit
    assert status == 200, online
    assert (online["run_id"], online["pipeline"]) == ("served-api", PIPELINE)
    assert np.array_equal(np.asarray(online["probabilities"], dtype=np.float32), expected)
    assert online["predictions"] == [int(k) for k in np.argmax(expected, axis=1)]
    table = list(csv.DictReader(io.StringIO(batch)))
    probabilities = [[np.float32(row[f"p_{k}"]) for k in range(10)] for row in table]
    assert np.array_equal(np.asarray(probabilities, dtype=np.float32), expected)
    assert {row["run_id"] for row in table} == {"served-api"}
    assert predicted.returncode == 0, predicted.stdout
    lines = [line.rsplit(",", 2)[0] for line in batch.splitlines()]  # without run_id, version
    assert local.read_text().splitlines() == lines


def test_bad_inputs_get_their_reasons(
    finished_run: dict[str, Any], served: Served, tmp_path: Path
) -> None:
    # When rows of the wrong width are sent online and uploaded, and a pipeline has no model
    status, wrong = served.curl("POST", f"models/{PIPELINE}/predict", {"rows": [[1.0, 2.0]]})
    missing_status, missing = served.curl("POST", "models/nothing-here/predict", {"rows": [[1.0]]})
    typo_status, typo = served.curl("POST", f"models/{PIPELINE}/predict", {"instances": [[1.0]]})
    upload = write_csv(tmp_path / "narrow.csv", rows()[:, :10])
    served.aws("s3", "cp", str(upload), f"s3://{BUCKET}/inference/{PIPELINE}/in/narrow.csv")
    error = json.loads(served.wait_for_object(f"inference/{PIPELINE}/out/narrow.error.json"))

    # Then each says what is wrong
    assert status == 400 and "rows[0] has 2 values; the model takes 64 features" in wrong["error"]
    assert missing_status == 404 and "has no production model" in missing["error"]
    assert typo_status == 400 and "instances" in typo["error"]
    assert error["status"] == 400 and "64" in error["error"]
    assert not served.aws(
        "s3", "ls", f"s3://{BUCKET}/inference/{PIPELINE}/out/narrow.csv", check=False
    ).stdout  # no partial or stale output beside the error


def test_the_registry_commands_answer_through_the_endpoint(
    finished_run: dict[str, Any], served: Served
) -> None:
    # When the pipeline's only model is rolled back, and promoted again by hand
    rollback = served.stepnet("rollback", PIPELINE)
    promote = served.stepnet("promote", "served-api")
    pipelines = served.stepnet("models")

    # Then there was nothing to roll back to; it is production already; the pipeline is listed
    assert rollback.returncode == 2 and "nothing to roll back to" in rollback.stdout
    assert promote.returncode == 2 and "already pipeline" in promote.stdout
    assert pipelines.returncode == 0 and PIPELINE in pipelines.stdout


def test_a_dataset_uploaded_with_the_cli_retrains_the_pipeline(
    finished_run: dict[str, Any], served: Served, tmp_path: Path
) -> None:
    # Given the served pipeline's registered run, and new data for it as a CSV file
    X, y = load_digits(return_X_y=True)
    path = tmp_path / "fresh.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"p{i}" for i in range(X.shape[1])] + ["label"])
        writer.writerows(
            [[*map(float, row), int(label)] for row, label in zip(X[:600], y[:600], strict=True)]
        )

    def trainings() -> list[dict[str, Any]]:
        listed = served.aws("stepfunctions", "list-executions", "--state-machine-arn", TRAINING_ARN)
        found: list[dict[str, Any]] = json.loads(listed.stdout)["executions"]
        return found

    before = {e["name"] for e in trainings()}

    # When it is uploaded under datasets/<pipeline>/ with the AWS CLI
    served.aws("s3", "cp", str(path), f"s3://{BUCKET}/datasets/{PIPELINE}/fresh.csv")

    # Then exactly one new Training run trains on it, and the registry shows its decision
    new: list[dict[str, Any]] = []
    for _ in range(600):
        new = [e for e in trainings() if e["name"] not in before]
        if new and all(e["status"] != "RUNNING" for e in new):
            break
        time.sleep(0.3)
    (run,) = new
    assert run["status"] == "SUCCEEDED"
    models = served.stepnet("models", PIPELINE)
    assert models.returncode == 0 and run["name"] in models.stdout


def test_a_failed_run_is_resumed_through_the_endpoint(served: Served, tmp_path: Path) -> None:
    # Given a run started with `stepnet start` that finished, its model fetched, then rolled
    # back to how a failure after weights version 3 would have left it (later versions, epochs
    # and the exported model gone, the status FAILED)
    import boto3

    from trainer.contract.names import TENSORS_PK
    from trainer.contract.storage import RUNS_TABLE, TENSORS_TABLE
    from trainer.store import keys, runs

    run_id = "served-resumed"
    config = CONFIG | {"run_id": run_id, "pipeline": "served-resumed", "epochs": 2}
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    assert served.stepnet("start", str(config_file)).returncode == 0

    def ended(name: str) -> dict[str, Any]:
        arn = TRAINING_ARN.replace(":stateMachine:", ":execution:") + f":{name}"
        for _ in range(600):
            described = served.aws("stepfunctions", "describe-execution", "--execution-arn", arn)
            found: dict[str, Any] = json.loads(described.stdout)
            if found["status"] != "RUNNING":
                return found
            time.sleep(0.3)
        raise AssertionError(f"{name} still runs")

    assert ended(run_id)["status"] == "SUCCEEDED"
    assert served.stepnet("fetch", run_id, "--out", str(tmp_path / "whole")).returncode == 0
    ddb = boto3.client("dynamodb", endpoint_url=served.endpoint, **_credentials())
    runs_table, tensors_table = (
        RUNS_TABLE.physical_name("stepnet"),
        TENSORS_TABLE.physical_name("stepnet"),
    )
    steps = 12  # 1,437 training rows in steps of 64 × 2
    for version in range(4, 2 * steps + 1):
        for key in (keys.weights_key(run_id, version), keys.optimizer_key(run_id, version)):
            ddb.delete_item(TableName=tensors_table, Key={TENSORS_PK: {"S": key}})
    ddb.delete_item(TableName=runs_table, Key=runs.record_key(run_id, runs.epoch_record(1)))
    ddb.delete_item(TableName=runs_table, Key=runs.record_key(run_id, runs.epoch_record(2)))
    served.aws("s3", "rm", "--recursive", f"s3://{BUCKET}/runs/{run_id}/model/")  # the export
    ddb.put_item(
        TableName=runs_table,
        Item=runs.status_item(
            run_id, runs.FAILED, {"cause": "rolled back"}, "2026-01-01T00:00:00Z"
        ),
    )

    # When `stepnet resume` is run against the endpoint, as against a deployed stack
    resumed = served.stepnet("resume", run_id)

    # Then it continues in a new Training execution, which ends with the same weights
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"in execution {run_id}-resume-1" in " ".join(resumed.stdout.split())
    assert ended(f"{run_id}-resume-1")["status"] == "SUCCEEDED"
    assert served.stepnet("fetch", run_id, "--out", str(tmp_path / "resumed")).returncode == 0
    with (
        np.load(tmp_path / "whole" / "model.npz") as whole,
        np.load(tmp_path / "resumed" / "model.npz") as again,
    ):
        assert whole.files == again.files
        assert all(np.array_equal(whole[name], again[name]) for name in whole.files)
    # and resuming it again is refused: it finished
    refused = served.stepnet("resume", run_id)
    assert refused.returncode == 2 and "has finished" in refused.stdout


def _credentials() -> dict[str, str]:
    return {
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
