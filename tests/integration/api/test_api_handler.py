"""The API function (trainer.handlers.api) on moto: a bad config is a 400 listing each field and
starts nothing; a good one starts the Training execution named after the run; a second start of
the same run is a 409; the runs list and a run is described (its epochs and registry records
once Initialize and the registry wrote them).

moto's Step Functions here records executions without running them (the engine tests run them:
tests/engine/test_serve_api.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from stepnet.engine.runtime import LambdaContext
from trainer import dal, settings
from trainer.contract.environment import VARIABLES
from trainer.handlers import api
from trainer.messages import EpochMetrics

GOOD: dict[str, Any] = {
    "run_id": "api-run",
    "pipeline": "digits",
    "dataset": {"source": "builtin:digits"},
    "model": {"layers": [{"units": 10, "activation": "softmax"}]},
    "loss": "cross_entropy",
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "epochs": 2,
    "batch_size": 64,
}


@pytest.fixture
def machine(handler_env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A Training state machine (never run), named as the stack names it, and the API's
    environment pointing at it."""
    sfn = boto3.client("stepfunctions", region_name=handler_env.region)
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    arn = sfn.create_state_machine(
        name="stepnet-Training",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    monkeypatch.setenv(VARIABLES["training_state_machine_arn"], arn)
    settings.executions.cache_clear()
    yield {"sfn": sfn, "arn": arn, "aws": handler_env}
    settings.executions.cache_clear()


def call(method: str, resource: str, body: Any = None, **parameters: str) -> tuple[int, Any]:
    event = {
        "httpMethod": method,
        "resource": resource,
        "path": resource,
        "pathParameters": parameters or None,
        "queryStringParameters": None,
        "body": body if body is None or isinstance(body, str) else json.dumps(body),
        "headers": {"Content-Type": "application/json"},
        "requestContext": {"stage": "v1"},  # and the rest of API Gateway's event, ignored
    }
    response = api.handler(event, LambdaContext(function_name="stepnet-Api"))
    assert response["headers"] == {"Content-Type": "application/json"}
    return response["statusCode"], json.loads(response["body"])


def executions(machine: dict[str, Any]) -> list[str]:
    listed = machine["sfn"].list_executions(stateMachineArn=machine["arn"])["executions"]
    return [e["name"] for e in listed]


def test_a_bad_config_gets_a_400_listing_each_field_and_nothing_starts(
    machine: dict[str, Any],
) -> None:
    # Given a config with three bad fields, and one whose dataset the functions cannot read
    bad = GOOD | {"epochs": 0, "optimizer": {"name": "adamw", "learning_rate": 0.1}, "extra": 1}
    local = GOOD | {"dataset": {"source": "data/mine.csv"}}

    # When
    status, document = call("POST", "/runs", bad)
    local_status, local_document = call("POST", "/runs", local)
    text_status, text_document = call("POST", "/runs", "{not json")

    # Then each field is named with its fix, and no execution exists
    assert status == 400
    assert document["error"] == "invalid run config; nothing was started"
    assert [line.split(":")[0] for line in document["problems"]] == [
        "optimizer.name", "epochs", "extra",
    ]  # fmt: skip
    assert "unknown field; remove it" in document["problems"][2]
    assert local_status == 400
    assert "is a local path, which the functions cannot read" in local_document["problems"][0]
    assert text_status == 400 and "not valid JSON" in text_document["problems"][0]
    assert executions(machine) == []


def test_a_good_config_starts_its_run_once_and_the_api_reports_it(
    machine: dict[str, Any],
) -> None:
    # When the run is started
    status, started = call("POST", "/runs", GOOD)

    # Then its Training execution is named after it, with its config as input
    assert status == 201
    assert executions(machine) == ["api-run"]
    assert started["run_id"] == "api-run" and started["pipeline"] == "digits"
    assert started["execution_arn"].endswith(":execution:stepnet-Training:api-run")
    assert started["console_url"].endswith("#/v2/executions/details/" + started["execution_arn"])
    described = machine["sfn"].describe_execution(executionArn=started["execution_arn"])
    assert json.loads(described["input"])["run_id"] == "api-run"

    # and the same request again (a client's retry) is the same run, as StartExecution is
    # idempotent while it runs; another config under the same run id is a 409
    status, again = call("POST", "/runs", GOOD)
    assert status == 201 and again["execution_arn"] == started["execution_arn"]
    status, document = call("POST", "/runs", GOOD | {"epochs": 3})
    assert status == 409 and "exists already" in document["error"]
    assert executions(machine) == ["api-run"]

    # and the list and the run's page report it, before Initialize wrote anything
    status, listed = call("GET", "/runs")
    assert status == 200 and [r["run_id"] for r in listed["runs"]] == ["api-run"]
    assert listed["next"] is None
    status, run = call("GET", "/runs/{run_id}", run_id="api-run")
    assert status == 200
    assert (run["status"], run["epochs"]) == ("RUNNING", [])


def test_a_run_s_page_shows_its_epochs_with_links_and_its_registry_records(
    machine: dict[str, Any],
) -> None:
    # Given a started run whose first epoch was evaluated (records as the handlers write them)
    call("POST", "/runs", GOOD)
    store = settings.store()
    config = dal.parse_config(GOOD)
    store.runs.create_run(config.run_id, config.to_json())
    dal.save_epoch_metrics(
        store,
        "api-run",
        EpochMetrics(epoch=1, train_loss=0.5, val_loss=0.6, val_accuracy=0.8, version=23),
    )

    # When
    status, run = call("GET", "/runs/{run_id}", run_id="api-run")

    # Then epoch 1 with its metrics, epoch 2 being trained, each with its execution's link
    assert status == 200
    assert (run["pipeline"], run["epochs_total"]) == ("digits", 2)
    first, second = run["epochs"]
    assert first["metrics"] == {
        "train_loss": 0.5,
        "val_loss": 0.6,
        "val_accuracy": 0.8,
        "version": 23,
    }
    assert second["metrics"] is None
    assert [e["execution"] for e in run["epochs"]] == ["api-run-epoch-001", "api-run-epoch-002"]
    assert first["execution_arn"].endswith(":execution:stepnet-Epoch:api-run-epoch-001")
    assert first["console_url"].startswith("https://us-east-1.console.aws.amazon.com/states/")
    assert "model" not in run and "promotion" not in run


@pytest.mark.parametrize(
    ("method", "resource", "parameters", "status", "error"),
    [
        ("GET", "/runs/{run_id}", {"run_id": "nobody"}, 404, "no run 'nobody'"),
        ("GET", "/runs/{run_id}", {"run_id": "a b"}, 400, "is not a run id"),
        ("DELETE", "/runs", {}, 404, "no route DELETE /runs"),
    ],
)
def test_unknown_runs_and_routes_are_named(
    machine: dict[str, Any],
    method: str,
    resource: str,
    parameters: dict[str, str],
    status: int,
    error: str,
) -> None:
    # When
    answered, document = call(method, resource, **parameters)

    # Then
    assert answered == status and error in document["error"]


def test_the_list_pages_and_refuses_a_token_it_did_not_give(machine: dict[str, Any]) -> None:
    # Given three runs
    for index in range(3):
        call("POST", "/runs", GOOD | {"run_id": f"page-{index}"})

    # When listed two at a time
    event = {"httpMethod": "GET", "resource": "/runs", "queryStringParameters": {"limit": "2"}}
    first = json.loads(api.handler(event, LambdaContext("stepnet-Api"))["body"])
    event["queryStringParameters"] = {"limit": "2", "next": first["next"]}
    second = json.loads(api.handler(event, LambdaContext("stepnet-Api"))["body"])
    event["queryStringParameters"] = {"next": "forged"}
    forged = api.handler(event, LambdaContext("stepnet-Api"))

    # Then
    names = [r["run_id"] for r in first["runs"] + second["runs"]]
    assert sorted(names) == ["page-0", "page-1", "page-2"] and second["next"] is None
    assert forged["statusCode"] == 400 and "not a token" in json.loads(forged["body"])["error"]
