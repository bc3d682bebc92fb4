"""The API's run routes (``trainer.contract.api.ROUTES``), behind ``trainer.handlers.api``.

* ``POST /runs``: the body is a run config. It is validated first, with ``parse_config`` and the
  stack's rules for a dataset (``builtin:digits`` or an ``s3://`` URI in the stack's bucket):
  a bad config is a 400 whose ``problems`` list each field and its fix, and nothing starts.
  A good one starts the Training execution named after the run (201), or is a 409 if a run of
  that id exists.
* ``GET /runs``: the runs, newest first, a page at a time (``?limit=`` 1-100, default 20;
  ``?next=`` the previous page's ``next``; ``?status=`` RUNNING, SUCCEEDED, FAILED, …).
* ``GET /runs/{run_id}``: the run's status (its execution's), its per-epoch metrics and the
  console link of each epoch's execution, and, once it finished, its registered model and
  the promotion decision.

Answers are API Gateway proxy responses: ``{"statusCode", "headers", "body"}`` with a JSON body;
errors are ``{"error": reason}`` (and ``problems`` for a bad config).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainer import dal
from trainer.config import RUN_ID_PATTERN, ConfigError, RunConfig, parse_config
from trainer.executions import (
    STATUSES,
    Execution,
    ExecutionExistsError,
    Executions,
    PageTokenError,
    console_url,
)
from trainer.store import RunNotFoundError, Store
from trainer.store.objects import parse_s3_uri

DEFAULT_PAGE = 20
MAX_PAGE = 100


class ApiRequest(BaseModel):
    """What the function reads of API Gateway's REST proxy event (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    http_method: str = Field(alias="httpMethod")
    resource: str
    path_parameters: dict[str, str] | None = Field(default=None, alias="pathParameters")
    query: dict[str, str] | None = Field(default=None, alias="queryStringParameters")
    body: str | None = None
    is_base64_encoded: bool = Field(default=False, alias="isBase64Encoded")

    def parameter(self, name: str) -> str:
        return (self.path_parameters or {}).get(name, "")

    def text(self) -> str:
        """The body as text (API Gateway base64-encodes bodies it takes for binary)."""
        if not self.is_base64_encoded:
            return self.body or ""
        try:
            return base64.b64decode(self.body or "", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "\ufffd"  # not JSON either: parse_config says so


class ApiResponse(BaseModel):
    """An API Gateway proxy response."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)

    status_code: int = Field(alias="statusCode")
    headers: dict[str, str] = Field(default_factory=lambda: {"Content-Type": "application/json"})
    body: str

    @classmethod
    def of(cls, status: int, document: dict[str, Any]) -> ApiResponse:
        return cls(status_code=status, body=json.dumps(document))

    def document(self) -> Any:
        return json.loads(self.body)


def error(status: int, reason: str, **extra: Any) -> ApiResponse:
    return ApiResponse.of(status, {"error": reason, **extra})


def handle(store: Store, executions: Executions, request: ApiRequest) -> ApiResponse:
    """Answer one request of a run route."""
    route = (request.http_method, request.resource)
    if route == ("POST", "/runs"):
        return start_run(store, executions, request.text())
    if route == ("GET", "/runs"):
        return list_runs(executions, request.query or {})
    if route == ("GET", "/runs/{run_id}"):
        return describe_run(store, executions, request.parameter("run_id"))
    return error(404, f"no route {request.http_method} {request.resource} in this function")


# --- POST /runs ----------------------------------------------------------------------------------


def start_run(store: Store, executions: Executions, body: str) -> ApiResponse:
    try:
        config = parse_config(body)
    except ConfigError as problem:
        return error(400, "invalid run config; nothing was started", problems=problem.problems)
    problems = dataset_problems(config, bucket_uri=store.objects.uri(""))
    if problems:
        return error(400, "invalid run config; nothing was started", problems=problems)
    try:
        started = executions.start(config.run_id, config.to_json())
    except ExecutionExistsError as exists:
        state = f" ({exists.status})" if exists.status else ""
        return error(
            409,
            f"a run with id {config.run_id!r} exists already{state} with another config or has "
            "ended, and is left as it is (execution names are unique for 90 days); choose "
            "another run_id, or leave it out to get a generated one",
        )
    document = started.summary() | {"pipeline": config.pipeline_name, "links": _links(config)}
    return ApiResponse.of(201, document)


def dataset_problems(config: RunConfig, *, bucket_uri: str) -> list[str]:
    """What the functions could not read: a local path, or an object of another bucket."""
    source = config.dataset.source
    if source.startswith("builtin:"):
        return []
    upload = f"upload it first (aws s3 cp FILE {bucket_uri}datasets/) and name its s3:// URI"
    if not source.startswith("s3://"):
        return [
            f"dataset.source: {source!r} is a local path, which the functions cannot read; {upload}"
        ]
    bucket, _ = parse_s3_uri(source)
    ours, _ = parse_s3_uri(bucket_uri)
    if bucket != ours:
        return [
            f"dataset.source: the functions may read the stack's bucket only ({ours}), not {bucket!r}; {upload}"
        ]
    return []


def _links(config: RunConfig) -> dict[str, str]:
    return {"run": f"runs/{config.run_id}", "predict": f"models/{config.pipeline_name}/predict"}


# --- GET /runs -----------------------------------------------------------------------------------


def list_runs(executions: Executions, query: dict[str, str]) -> ApiResponse:
    limit_text = query.get("limit", str(DEFAULT_PAGE))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
        return error(400, f"limit must be a whole number from 1 to {MAX_PAGE}, got {limit_text!r}")
    status = query.get("status")
    if status is not None and status not in STATUSES:
        return error(400, f"status must be one of {sorted(STATUSES)}, got {status!r}")
    try:
        found, next_token = executions.list(
            limit=int(limit_text), next_token=query.get("next"), status=status
        )
    except PageTokenError:
        return error(400, "next is not a token this API gave (or it expired); list from the start")
    return ApiResponse.of(200, {"runs": [e.summary() for e in found], "next": next_token})


# --- GET /runs/{run_id} --------------------------------------------------------------------------


def describe_run(store: Store, executions: Executions, run_id: str) -> ApiResponse:
    if not re.match(RUN_ID_PATTERN, run_id):
        return error(400, f"{run_id!r} is not a run id (1-40 of A-Z a-z 0-9 - _)")
    execution = executions.describe(run_id)
    if execution is None:
        return error(404, f"no run {run_id!r}: the Training machine has no execution of that name")
    document = execution.summary()
    try:
        config = dal.run_config(store, run_id)
    except RunNotFoundError:  # not initialized (yet, or it failed before)
        return ApiResponse.of(200, document | {"epochs": []})
    metrics = dal.epoch_metrics(store, run_id)
    document |= {
        "pipeline": config.pipeline_name,
        "epochs_total": config.epochs,
        "epochs": _epochs(executions, execution, config, metrics),
    }
    model = dal.model_version(store, config.pipeline_name, run_id)
    if model is not None:
        document["model"] = {
            "version": model.version,
            "uri": model.model_uri,
            "files": dict(model.files),
        }
        decision = dal.decision(store, config.pipeline_name, run_id)
        if decision is not None:
            document["promotion"] = decision.document()
    return ApiResponse.of(200, document)


def _epochs(
    executions: Executions,
    execution: Execution,
    config: RunConfig,
    metrics: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Per epoch: its metrics (None while it trains) and its execution's console link. Its
    steps run in Express chunks (``…-part-01``, …), linked from that execution."""
    rows = {int(row["epoch"]): row for row in metrics}
    epochs = sorted(rows)
    if execution.status == "RUNNING" and len(epochs) < config.epochs:
        epochs.append(len(epochs) + 1)  # the epoch being trained (or about to be)
    found = []
    for epoch in epochs:
        arn = executions.epoch_arn(config.run_id, epoch)
        row = rows.get(epoch)
        found.append(
            {
                "epoch": epoch,
                "metrics": None if row is None else {k: v for k, v in row.items() if k != "epoch"},
                "execution": arn.rsplit(":", 1)[1],
                "execution_arn": arn,
                "console_url": console_url(arn),
            }
        )
    return found
