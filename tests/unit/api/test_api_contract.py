"""The API's routes (trainer.contract.api), the run routes' request parsing and dataset rules
(trainer.routes), and the local API's answers before a function runs (stepnet.engine.api)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from stepnet.engine.api import LocalApi, proxy_event
from trainer.config import ConfigError, parse_config
from trainer.contract.api import ROUTES, STAGE, Route, find_route, resource_paths
from trainer.routes import ApiRequest, dataset_problems, list_runs

DIGITS: dict[str, Any] = {
    "dataset": {"source": "builtin:digits"},
    "model": {"layers": [{"units": 10, "activation": "softmax"}]},
    "loss": "cross_entropy",
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "epochs": 1,
    "batch_size": 32,
}
SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/execute-api/aws4_request"
}


def test_the_routes_are_the_issue_s() -> None:
    # Then
    assert {(r.method, r.path, r.function) for r in ROUTES} == {
        ("POST", "/runs", "Api"),
        ("GET", "/runs", "Api"),
        ("GET", "/runs/{run_id}", "Api"),
        ("POST", "/models/{pipeline}/predict", "Predict"),
    }
    assert resource_paths() == (
        "/", "/models", "/runs", "/models/{pipeline}", "/runs/{run_id}",
        "/models/{pipeline}/predict",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/runs", ("/runs", {})),
        ("GET", "/runs/", ("/runs", {})),
        ("GET", "/runs/digits-1", ("/runs/{run_id}", {"run_id": "digits-1"})),
        ("POST", "/models/digits/predict", ("/models/{pipeline}/predict", {"pipeline": "digits"})),
        ("DELETE", "/runs/digits-1", None),
        ("GET", "/runs/a/b", None),
        ("GET", "/models/digits", None),
    ],
)
def test_a_request_finds_its_route_and_path_parameters(
    method: str, path: str, expected: tuple[str, dict[str, str]] | None
) -> None:
    # When
    found = find_route(method, path)

    # Then
    assert (None if found is None else (found[0].path, found[1])) == expected


def test_a_route_names_a_known_function() -> None:
    # When / Then
    with pytest.raises(ValueError, match="unknown function 'Nope'"):
        Route("GET", "/x", "Nope")


def test_a_proxy_event_parses_into_the_api_request() -> None:
    # Given a REST proxy event as API Gateway (and the local API) builds it
    route, parameters = find_route("GET", "/runs/r-1") or pytest.fail("no route")
    event = proxy_event(
        route, parameters, path="/runs/r-1", query="limit=5&limit=7&next=t", headers={}, body=None
    )

    # When
    request = ApiRequest.model_validate(event)

    # Then
    assert (request.http_method, request.resource, request.parameter("run_id")) == (
        "GET", "/runs/{run_id}", "r-1",
    )  # fmt: skip
    assert request.query == {"limit": "7", "next": "t"}
    assert event["requestContext"]["stage"] == STAGE
    assert event["multiValueQueryStringParameters"] == {"limit": ["5", "7"], "next": ["t"]}


def test_a_base64_body_is_decoded() -> None:
    # Given
    body = base64.b64encode(json.dumps(DIGITS).encode()).decode()

    # When
    request = ApiRequest.model_validate(
        {"httpMethod": "POST", "resource": "/runs", "body": body, "isBase64Encoded": True}
    )

    # Then
    assert json.loads(request.text()) == DIGITS


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("builtin:digits", None),
        ("s3://stepnet-data/datasets/x.csv", None),
        ("data/x.csv", "is a local path, which the functions cannot read; upload it first"),
        ("s3://someone-else/x.csv", "the functions may read the stack's bucket only"),
    ],
)
def test_a_dataset_must_be_one_the_functions_can_read(source: str, problem: str | None) -> None:
    # Given
    config = parse_config(DIGITS | {"dataset": {"source": source}})

    # When
    problems = dataset_problems(config, bucket_uri="s3://stepnet-data/")

    # Then
    if problem is None:
        assert problems == []
    else:
        (line,) = problems
        assert line.startswith("dataset.source: ") and problem in line
        assert "aws s3 cp FILE s3://stepnet-data/datasets/" in line


def test_a_bad_config_lists_each_field_and_its_fix() -> None:
    # When
    with pytest.raises(ConfigError) as raised:
        parse_config(DIGITS | {"epochs": 0, "pipeline": "a b", "promote_if": {"metric": "f1"}})

    # Then one line per field, each naming it
    problems = raised.value.problems
    assert [line.split(":")[0] for line in problems] == ["pipeline", "promote_if.metric", "epochs"]
    assert all(line in str(raised.value) for line in problems)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 100"),
        ({"limit": "x"}, "limit must be a whole number from 1 to 100"),
        ({"status": "DONE"}, "status must be one of"),
    ],
)
def test_a_bad_list_query_is_a_400_before_any_call(query: dict[str, str], error: str) -> None:
    # When (no executions client is needed: nothing is called)
    response = list_runs(None, query)  # type: ignore[arg-type]

    # Then
    assert response.status_code == 400 and error in response.document()["error"]


class FakeRuntime:
    """Records invocations; answers with a fixed payload."""

    def __init__(self, payload: Any, error: str | None = None) -> None:
        self.payload, self.error = payload, error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(self, function: str, event: dict[str, Any]) -> tuple[Any, str | None]:
        self.calls.append((function, event))
        return self.payload, self.error


def _api(runtime: FakeRuntime) -> LocalApi:
    return LocalApi(runtime, stack_name="stepnet", port=0)  # type: ignore[arg-type]


def test_the_local_api_refuses_unsigned_requests_and_unknown_routes_as_api_gateway_does() -> None:
    # Given
    runtime = FakeRuntime({"statusCode": 200, "body": "{}"})
    api = _api(runtime)

    # When
    unsigned = api.answer("GET", f"/{STAGE}/runs", {}, None)
    unknown = api.answer("GET", f"/{STAGE}/nothing", SIGNED, None)
    no_stage = api.answer("GET", "/runs", SIGNED, None)

    # Then
    for status, _, body in (unsigned, unknown, no_stage):
        assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    assert runtime.calls == []


def test_the_local_api_invokes_the_route_s_function_with_a_proxy_event() -> None:
    # Given
    runtime = FakeRuntime({"statusCode": 404, "headers": {"X-A": "1"}, "body": '{"error": "x"}'})
    api = _api(runtime)

    # When
    status, headers, body = api.answer(
        "POST", f"/{STAGE}/models/my%2Dpipe/predict?x=1", SIGNED, '{"rows": []}'
    )

    # Then the function's response is the answer
    assert (status, headers, json.loads(body)) == (404, {"X-A": "1"}, {"error": "x"})
    ((function, event),) = runtime.calls
    assert function == "stepnet-Predict"
    assert event["pathParameters"] == {"pipeline": "my-pipe"}
    assert event["resource"] == "/models/{pipeline}/predict"
    assert event["queryStringParameters"] == {"x": "1"}
    assert event["body"] == '{"rows": []}'


@pytest.mark.parametrize("body", ["[1, 2]", "not json", None])
def test_the_local_api_validates_a_post_body_as_the_stack_s_model(body: str | None) -> None:
    # Given
    runtime = FakeRuntime({"statusCode": 200, "body": "{}"})

    # When
    status, _, answer = _api(runtime).answer("POST", f"/{STAGE}/runs", SIGNED, body)

    # Then
    assert status == 400
    assert json.loads(answer)["error"].startswith("the request body must be a JSON object: ")
    assert runtime.calls == []


def test_a_function_error_is_a_502_as_api_gateway_answers() -> None:
    # Given a function that raised
    runtime = FakeRuntime({"errorMessage": "boom"}, error="Unhandled")

    # When
    status, _, body = _api(runtime).answer("GET", f"/{STAGE}/runs", SIGNED, None)

    # Then
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})
