"""Retraining on the emulated account, end to end: a dataset uploaded under ``datasets/<p>/``
goes from S3 through EventBridge to the Retrain machine, which starts exactly one Training run of
the pipeline's registered config on the new data; the run registers its model and the promotion
stage records its decision; the pipeline is free again afterwards. Files uploaded during a run
coalesce: the newest trains next, in the same Retrain execution."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stepnet.datasets import npz_bytes, synthetic_regression
from stepnet.engine import LocalAccount
from tests.engine.conftest import regression_config
from trainer.store import Store

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PIPELINE = "reg"


def wait_ended(account: LocalAccount, arn: str, seconds: float = 300) -> dict[str, Any]:
    sfn = account.client("stepfunctions")
    deadline = time.monotonic() + seconds
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"{arn} still runs after {seconds} s"
        time.sleep(0.1)


def executions(account: LocalAccount, machine: str) -> list[dict[str, Any]]:
    sfn = account.client("stepfunctions")
    found: list[dict[str, Any]] = sfn.list_executions(
        stateMachineArn=account.machine_arns[machine]
    )["executions"]
    return found


def store_of(account: LocalAccount) -> Store:
    assert account.resources is not None
    return Store.from_clients(
        account.client("dynamodb"), account.client("s3"),
        runs_table=account.resources.runs_table, tensors_table=account.resources.tensors_table,
        bucket=account.resources.bucket,
    )  # fmt: skip


def test_an_upload_under_datasets_starts_one_run_whose_promotion_is_decided(
    account: LocalAccount,
) -> None:
    # Given a pipeline with a registered model, trained on a first dataset
    assert account.resources is not None
    s3, bucket = account.client("s3"), account.resources.bucket
    X, y = synthetic_regression(n=200, d=6, k=2, seed=3)
    s3.put_object(Bucket=bucket, Key="seed/first.npz", Body=npz_bytes(X, y))
    config = regression_config(
        "unused", run_id="reg-first", pipeline=PIPELINE, epochs=1, mode="fused", workers=2
    )
    config["dataset"]["source"] = f"s3://{bucket}/seed/first.npz"
    sfn = account.client("stepfunctions")
    first = sfn.start_execution(
        stateMachineArn=account.machine_arns["Training"], name="reg-first", input=json.dumps(config)
    )
    assert wait_ended(account, first["executionArn"])["status"] == "SUCCEEDED"
    trainings_before = {e["name"] for e in executions(account, "Training")}
    retrains_before = len(executions(account, "Retrain"))

    # When new data is uploaded for the pipeline
    X2, y2 = synthetic_regression(n=240, d=6, k=2, seed=4)
    s3.put_object(Bucket=bucket, Key=f"datasets/{PIPELINE}/fresh.npz", Body=npz_bytes(X2, y2))

    # Then exactly one Retrain execution started, and it started exactly one Training run
    retrains = executions(account, "Retrain")
    assert len(retrains) == retrains_before + 1
    retrain = wait_ended(account, retrains[0]["executionArn"])
    assert retrain["status"] == "SUCCEEDED", retrain
    new = {e["name"] for e in executions(account, "Training")} - trainings_before
    assert len(new) == 1
    (run_id,) = new
    training = wait_ended(
        account,
        f"{account.machine_arns['Training']}:{run_id}".replace(":stateMachine:", ":execution:"),
    )
    assert training["status"] == "SUCCEEDED"
    # on the pipeline's registered config, with the uploaded data
    started = json.loads(training["input"])
    assert started["dataset"]["source"] == f"s3://{bucket}/datasets/{PIPELINE}/fresh.npz"
    assert {k: v for k, v in started.items() if k not in ("run_id", "dataset")} == {
        k: v for k, v in config.items() if k not in ("run_id", "dataset")
    }
    # and the registry shows the new model and its promotion decision
    store = store_of(account)
    records = store.runs.list_registry(PIPELINE)
    assert f"model#{run_id}" in records
    decision = records[f"decision#{run_id}"]
    assert isinstance(decision["promoted"], bool) and decision["reason"]
    # and the pipeline is free again
    claim = store.runs.get_claim(PIPELINE)
    assert claim is not None and claim["holder"] is None and claim["pending"] is None


def test_uploads_during_a_run_coalesce_into_the_newest_which_trains_next(
    account: LocalAccount,
) -> None:
    # Given a pipeline with a registered model, and a retraining held at its first task
    assert account.resources is not None
    s3, bucket, pipeline = account.client("s3"), account.resources.bucket, "coalesce"
    sfn = account.client("stepfunctions")
    X, y = synthetic_regression(n=200, d=6, k=2, seed=3)
    s3.put_object(Bucket=bucket, Key="seed/coalesce.npz", Body=npz_bytes(X, y))
    config = regression_config(
        "unused", run_id="coalesce-first", pipeline=pipeline, epochs=1, mode="fused", workers=2
    )
    config["dataset"]["source"] = f"s3://{bucket}/seed/coalesce.npz"
    first = sfn.start_execution(
        stateMachineArn=account.machine_arns["Training"], name=config["run_id"],
        input=json.dumps(config),
    )  # fmt: skip
    assert wait_ended(account, first["executionArn"])["status"] == "SUCCEEDED"
    before = {e["name"] for e in executions(account, "Training")}
    release = threading.Event()

    @contextlib.contextmanager
    def hold(name: str) -> Iterator[None]:
        if name == "stepnet-Initialize":
            release.wait(60)
        yield

    def upload(name: str, seed: int) -> dict[str, Any]:
        known = {e["executionArn"] for e in executions(account, "Retrain")}
        data = npz_bytes(*synthetic_regression(n=200, d=6, k=2, seed=seed))
        s3.put_object(Bucket=bucket, Key=f"datasets/{pipeline}/{name}", Body=data)
        (new,) = [e for e in executions(account, "Retrain") if e["executionArn"] not in known]
        return new

    account.runtime.hooks.append(hold)
    try:
        # When three files arrive: the first starts a run, the others come during it
        running = upload("a.npz", 4)
        while len({e["name"] for e in executions(account, "Training")} - before) < 1:
            time.sleep(0.05)
        outcomes = []
        for name, seed in (("b.npz", 5), ("c.npz", 6)):
            ended = wait_ended(account, upload(name, seed)["executionArn"])
            outcomes.append(json.loads(ended["output"])["claim"])
    finally:
        release.set()
        account.runtime.hooks.remove(hold)
    assert wait_ended(account, running["executionArn"])["status"] == "SUCCEEDED"

    # Then the later two were kept pending, the newest replacing the other, and exactly two
    # runs trained, one after the other: on the first file, then on the newest
    assert [o["action"] for o in outcomes] == ["pending", "pending"]
    assert f"replacing pending run {outcomes[0]['run_id']}" in outcomes[1]["reason"]
    new = sorted(
        (e for e in executions(account, "Training") if e["name"] not in before),
        key=lambda e: e["startDate"],
    )
    sources = [
        json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])["dataset"]
        for e in new
    ]
    assert [s["source"].rsplit("/", 1)[1] for s in sources] == ["a.npz", "c.npz"]
    assert new[1]["name"] == outcomes[1]["run_id"]
    claim = store_of(account).runs.get_claim(pipeline)
    assert claim is not None and claim["holder"] is None and claim["pending"] is None
