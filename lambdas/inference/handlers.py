"""The inference function's Lambda entry points: ``online`` (API Gateway) and ``batch`` (S3).

``online(event, context)``: ``POST /models/{pipeline}/predict`` as an API Gateway proxy event
(REST or HTTP API payload 1.0/2.0), body ``{"rows": [[…], …]}`` (:mod:`inference.rows`).
Answers ``{statusCode, headers, body}``:

* 200: :func:`inference.output.prediction_document` (labels and probabilities, or outputs, with
  the pipeline, ``run_id`` and ``model_version``);
* 400: the rows cannot be used (``{"error": reason}``, the reason names the row and the fix),
  or the pipeline name is invalid;
* 404: the pipeline has no production model;
* 500: the production model's files are missing or inconsistent (logged).

``batch(event, context)``: an S3 ObjectCreated event for ``inference/<pipeline>/in/<name>.csv``
or ``.npz`` (:mod:`inference.keys`). Writes ``inference/<pipeline>/out/<name>.csv`` (one line per
row, :func:`inference.output.csv_bytes` with ``run_id`` and ``model_version`` columns), or on bad
input, no production model or a broken model ``…/out/<name>.error.json`` (``{"input", "error",
"status"}``), never both: the whole body is built in memory and written with one PUT (S3 writes are
atomic, so no reader sees a partial file), then the other one of the pair is deleted. Bad input
never raises, so S3's asynchronous retries never replay it; only an S3 failure (reading or
writing) raises and is retried. Returns a summary per record.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote_plus

from inference.cache import ModelCache, ServedModel
from inference.errors import InputError, ModelError, NoModelError
from inference.keys import batch_input
from inference.metrics import emit_prediction
from inference.output import csv_bytes, prediction_document
from inference.pointer import check_pipeline
from inference.rows import batch_limits, online_limits, parse_file, parse_json_rows
from inference.settings import InferenceEnvironment

logger = logging.getLogger("stepnet.inference")
logger.setLevel(logging.INFO)

LAMBDA_FUNCTION_VARIABLE = "AWS_LAMBDA_FUNCTION_NAME"  # set by Lambda (and the engine's sandboxes)
Event = dict[str, Any]
Response = dict[str, Any]


# --- the container's state: environment, S3 client, model cache ---------------------------------


@lru_cache(maxsize=1)
def environment() -> InferenceEnvironment:
    return InferenceEnvironment.from_env(os.environ)


@lru_cache(maxsize=1)
def s3_client() -> Any:
    """One boto3 S3 client per container (imported here: ``stepnet predict`` never needs it)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def read_object(bucket: str, key: str) -> bytes | None:
    """An object's bytes, or None if there is no such key."""
    s3 = s3_client()
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return body


@lru_cache(maxsize=1)
def model_cache() -> ModelCache:
    env = environment()
    return ModelCache(lambda key: read_object(env.bucket, key), ttl_seconds=env.pointer_ttl_seconds)


def reset() -> None:
    """Forget the environment, the S3 client and every loaded model (a new container)."""
    environment.cache_clear()
    s3_client.cache_clear()
    model_cache.cache_clear()


# --- online --------------------------------------------------------------------------------------


def online(event: Event, context: Any = None) -> Response:
    """``POST /models/{pipeline}/predict``: see the module doc; its metrics (latency, rows)."""
    started = time.perf_counter()
    measured: dict[str, Any] = {}
    response = _online(event, measured)
    _report("online", started, measured)
    return response


def _report(entry: Literal["online", "batch"], started: float, measured: dict[str, Any]) -> None:
    """The invocation's EMF metrics (``inference.metrics``), where Lambda runs it."""
    if not os.environ.get(LAMBDA_FUNCTION_VARIABLE):
        return  # in-process (tests, stepnet predict): EMF is CloudWatch Logs' format
    env = environment()
    served: ServedModel | None = measured.get("served")
    emit_prediction(
        entry,
        latency_ms=(time.perf_counter() - started) * 1000,
        rows=int(measured.get("rows", 0)),
        pipeline=measured.get("pipeline"),
        served=None if served is None else (served.pointer.run_id, served.pointer.version),
        namespace=env.metrics_namespace,
        service=env.service_name,
    )


def _online(event: Event, measured: dict[str, Any]) -> Response:
    pipeline = str((event.get("pathParameters") or {}).get("pipeline", ""))
    try:
        check_pipeline(pipeline)
    except ValueError as error:
        return _response(400, {"error": str(error)})
    try:
        served = model_cache().get(pipeline)
        measured |= {"served": served, "pipeline": pipeline}
        model = served.model
        X = parse_json_rows(_body(event), model.n_features, model.n_outputs, online_limits())
        prediction = model.predict(X)
        measured["rows"] = X.shape[0]
    except InputError as error:
        return _response(400, {"error": str(error)})
    except NoModelError as error:
        return _response(404, {"error": str(error)})
    except ModelError as error:
        logger.error("production model unusable: %s", error)
        return _response(500, {"error": f"the production model cannot be used: {error}"})
    document = prediction_document(
        prediction, pipeline=pipeline, run_id=served.pointer.run_id, version=served.pointer.version
    )
    return _response(200, document)


def _body(event: Event) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise InputError("the request body is marked base64 but is not valid base64") from None
    return body.encode() if isinstance(body, str) else bytes(body)


def _response(status: int, document: dict[str, Any]) -> Response:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(document),
    }


# --- batch ---------------------------------------------------------------------------------------


def batch(event: Event, context: Any = None) -> dict[str, Any]:
    """An S3 ObjectCreated event: one output (or error) file per input record; the metrics of
    each predicted file (latency, rows)."""
    results = []
    for record in event.get("Records", []):
        started = time.perf_counter()
        measured: dict[str, Any] = {}
        results.append(_predict_object(record, measured))
        if "skipped" not in results[-1]:
            _report("batch", started, measured)
    return {"results": results}


def _status(error: Exception) -> int:
    """The HTTP status the error would have online: 400 bad input, 404 no model, 500 else."""
    if isinstance(error, InputError):
        return 400
    return 404 if isinstance(error, NoModelError) else 500


def _predict_object(record: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    bucket = record["s3"]["bucket"]["name"]
    key = unquote_plus(record["s3"]["object"]["key"])
    source = batch_input(key)
    if source is None:
        logger.warning("ignored %s: not under inference/<pipeline>/in/", key)
        return {"input": key, "skipped": "not under inference/<pipeline>/in/"}
    limits = batch_limits(environment().memory_mb)
    try:
        size = record["s3"]["object"].get("size")
        if isinstance(size, int):
            limits.check_bytes(size, "file")  # before downloading it
        served = model_cache().get(source.pipeline)
        measured |= {"served": served, "pipeline": source.pipeline}
        data = read_object(bucket, key)
        if data is None:
            logger.warning("ignored %s: deleted before it was read", key)
            return {"input": key, "skipped": "the object no longer exists"}
        model = served.model
        X = parse_file(source.name, data, model.n_features, model.n_outputs, limits)
        body = csv_bytes(model.predict(X), (served.pointer.run_id, served.pointer.version))
        measured["rows"] = X.shape[0]
    except (InputError, NoModelError, ModelError) as error:
        _replace(bucket, source.error_key, _error_body(key, error), source.output_key)
        logger.warning("%s: %s", key, error)
        return {"input": key, "error": str(error), "error_file": source.error_key}
    _replace(bucket, source.output_key, body, source.error_key, served)
    logger.info("%s: %d rows -> %s", key, X.shape[0], source.output_key)
    return {
        "input": key,
        "output": source.output_key,
        "rows": int(X.shape[0]),
        "run_id": served.pointer.run_id,
        "model_version": served.pointer.version,
    }


def _error_body(key: str, error: Exception) -> bytes:
    return (
        json.dumps({"input": key, "status": _status(error), "error": str(error)}, indent=1) + "\n"
    ).encode()


def _replace(
    bucket: str, key: str, body: bytes, stale_key: str, served: ServedModel | None = None
) -> None:
    """Write ``key`` in one PUT, then delete ``stale_key`` (the other file of the pair)."""
    s3 = s3_client()
    if served is None:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    else:
        s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="text/csv",
            Metadata={"run-id": served.pointer.run_id, "model-version": str(served.pointer.version)},
        )  # fmt: skip
    s3.delete_object(Bucket=bucket, Key=stale_key)
