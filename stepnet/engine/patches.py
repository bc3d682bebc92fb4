"""Small, tested compatibility patches to moto's Step Functions interpreter.

Pinned to the moto versions they were written against (``SUPPORTED_MOTO``); ``apply()`` fails
loudly on any other version, and ``tests/engine/test_patches.py`` checks each patch's effect.

1. Lambda code runs in the engine's runtime (moto would start a Docker container): both the
   interpreter's ``lambda:invoke`` integration and moto's Lambda ``Invoke`` API call
   ``LambdaRuntime`` (worker processes, or this process's threads).
2. ``states:startExecution.sync:2`` works: moto 5.2.5 passes the ASL's PascalCase parameters
   (``StateMachineArn``, ``Input``, ``Name``) to botocore unchanged and reads the camelCase response
   as PascalCase. The patch maps parameter names to botocore's and the response back.
3. Speed: JSONPath expressions parsed once (moto builds a new jsonpath-ng parser, lexer and
   LR tables for every path it evaluates: most of its time per state), one cached boto3 client
   per (service, region) instead of a new client per Task, and a short poll interval while a
   parent waits for a child execution — a poll that reads the child's status from the emulator
   and calls ``DescribeExecution`` only once the child has ended (moto calls it through boto3
   every time: a tenth of the engine's CPU while epochs run in worker processes).
4. S3 ranged GETs read only their bytes: moto 5.2.5 reads (and copies) the whole object for a
   ``Range: bytes=a-b`` GET and slices it afterwards; the training reads its rows as byte
   ranges of shards of tens of MB, so each such GET would cost the whole shard in time and
   memory. The patch serves a single closed range from the object's buffer.
5. S3 event notifications invoke their function asynchronously, as S3 does (an ``Event``
   invocation): moto calls the function inside the PUT request, so an upload would wait for
   the batch prediction it triggers (and a client time out and upload again). The patch runs
   each invocation in its own thread and, like Lambda for an asynchronous invocation, retries
   a failed one twice (after ``ASYNC_RETRY_SECONDS``, shortened from AWS's minutes).
   :func:`wait_for_notifications` waits for the ones in flight.
6. Speed of moto's server (``stepnet serve``): the backend a request's host maps to is looked up
   once per host (moto lists its own package directory for every request, under a lock all
   requests share).
7. S3 object bodies larger than 256 kB live in files, as S3 keeps them on disk: moto keeps every
   body under 5 MB in memory, and a run keeps every weights version, optimizer state and
   gradient it writes (about 10 GB for one fused epoch over a million rows). The bodies go
   through :class:`stepnet.engine.bodies.SpilledBody` instead of moto's spooled temporary file.
9. Each request moto answers in process is freed when answered: moto wraps it in a werkzeug
   ``Request`` whose WSGI environ refers back to it (``environ["werkzeug.request"]``), a cycle
   only Python's cyclic collector frees — rarely, since it counts objects, not bytes — so each
   body stayed in memory well after its answer (128 MB per 64 MB upload, measured: 6 uploads
   held 800 MB). The patch drops that one reference once the request is answered.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import jsonpath_ng
import jsonpath_ng.ext
import moto
from moto.awslambda import models as lambda_models
from moto.core import botocore_stubber
from moto.s3 import models as s3_models
from moto.s3 import notifications as s3_notifications
from moto.s3 import responses as s3_responses
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import (
    StateCredentials,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback,
    state_task_service_sfn,
)
from moto.stepfunctions.parser.asl.utils import boto_client, json_path

from stepnet.engine.bodies import SpilledBody
from stepnet.engine.runtime import LambdaRuntime, payload_json

SUPPORTED_MOTO = ((5, 2, 5), (5, 3, 0))  # [lowest, highest) the patches were verified against
SYNC_POLL_SECONDS = 0.05
ASYNC_RETRY_SECONDS = (0.5, 1.0)  # Lambda retries an asynchronous invocation twice


class EngineCompatibilityError(RuntimeError):
    """The installed moto is not one these patches were written for."""


@dataclass
class _Installed:
    runtime: LambdaRuntime | None = None  # the account's handlers, while one is entered
    applied: bool = False


_state = _Installed()
_lock = threading.Lock()


def moto_version() -> tuple[int, int, int]:
    major, minor, patch = (int(part) for part in moto.__version__.split(".")[:3])
    return major, minor, patch


def check_version() -> None:
    low, high = SUPPORTED_MOTO
    if not low <= moto_version() < high:
        raise EngineCompatibilityError(
            f"moto {moto.__version__} is installed, but the local engine's patches were written "
            f"for moto >= {'.'.join(map(str, low))}, < {'.'.join(map(str, high))}; "
            "pin moto to that range (pyproject.toml) or re-verify stepnet/engine/patches.py"
        )


def set_runtime(runtime: LambdaRuntime | None) -> None:
    _state.runtime = runtime


def apply() -> None:
    """Install every patch once (idempotent)."""
    with _lock:
        if _state.applied:
            return
        check_version()
        _patch_lambda_invocation()
        _patch_sfn_sync2()
        _patch_sync2_wait()
        _patch_boto_clients()
        _patch_json_path_parsing()
        _patch_s3_ranged_get()
        _patch_s3_notifications()
        _patch_server_dispatch()
        _patch_s3_bodies()
        _patch_request_cycles()
        # moto declares the poll interval Final; the patch is exactly to change it
        state_task_service_callback._DELAY_SECONDS_SYNC_CONDITION_CHECK = SYNC_POLL_SECONDS  # type: ignore[misc]
        _state.applied = True


# --- 1. Lambda in the engine's runtime -----------------------------------------------------------


def _runtime_for(function_name: str) -> LambdaRuntime | None:
    runtime = _state.runtime
    if runtime is not None and runtime.knows(function_name):
        return runtime
    return None


def _patch_lambda_invocation() -> None:
    original_integration = lambda_eval_utils._invoke_lambda_function
    original_backend = lambda_models.LambdaFunction._invoke_lambda

    def invoke_integration(
        parameters: dict[str, Any], region: str, state_credentials: StateCredentials
    ) -> Any:  # moto's own function is unannotated: a boto3 Invoke response
        runtime = _runtime_for(parameters["FunctionName"])
        if runtime is None:
            return original_integration(parameters, region, state_credentials)
        payload, error = runtime.invoke(
            parameters["FunctionName"], _event(parameters.get("Payload"))
        )
        response: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": payload,
            "ExecutedVersion": "$LATEST",
        }
        if error:
            response["FunctionError"] = error
        return response

    def invoke_backend(
        self: lambda_models.LambdaFunction, event: str | None = None
    ) -> tuple[str, bool, str]:
        runtime = _runtime_for(self.function_name)
        if runtime is None:
            return original_backend(self, event)
        payload, error = runtime.invoke(self.function_name, _event(event))
        return payload_json(payload), error is not None, ""

    lambda_eval_utils._invoke_lambda_function = invoke_integration
    # mypy forbids assigning to a method; replacing it is the patch
    lambda_models.LambdaFunction._invoke_lambda = invoke_backend  # type: ignore[method-assign]


def _event(payload: Any) -> Any:
    if payload is None:
        return {}
    if isinstance(payload, bytes | bytearray):
        payload = payload.decode()
    if isinstance(payload, str):
        return json.loads(payload) if payload else {}
    return payload


# --- 2. startExecution.sync:2 --------------------------------------------------------------------


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _upper_first(name: str) -> str:
    return name[:1].upper() + name[1:]


def _patch_sfn_sync2() -> None:
    cls = state_task_service_sfn.StateTaskServiceSfn
    original_parameters = cls._normalise_parameters

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_parameters(self, parameters, boto_service_name, service_action_name)
        for key in list(parameters):
            parameters[_lower_first(key)] = parameters.pop(key)

    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        if isinstance(response, dict):
            for key in list(response):
                value = response.pop(key)
                if hasattr(value, "isoformat"):  # dates, as the service's JSON has them
                    value = value.isoformat()
                response[_upper_first(key)] = value

    # mypy forbids assigning to methods; replacing them is the patch
    cls._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    cls._normalise_response = normalise_response  # type: ignore[method-assign]


def _patch_sync2_wait() -> None:
    from moto.stepfunctions.parser.api import ExecutionStatus

    cls = state_task_service_sfn.StateTaskServiceSfn
    original = cls._build_sync2_resolver

    def build_sync2_resolver(
        self: Any,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: StateCredentials,
    ) -> Any:
        arn = env.stack[-1]["ExecutionArn"]  # the StartExecution output the original pops
        resolve = original(
            self, env, resource_runtime_part, normalised_parameters, state_credentials
        )
        if resolve is None:
            return None
        found: list[Any] = []

        def resolve_once_ended() -> Any:
            if not found:
                found.extend(_execution(arn))
            if found and found[0].exec_status in (None, ExecutionStatus.RUNNING):
                return None
            return resolve()  # ended (or not found): DescribeExecution, as moto does

        return resolve_once_ended

    # mypy forbids assigning to a method; replacing it is the patch
    cls._build_sync2_resolver = build_sync2_resolver  # type: ignore[method-assign]


def _execution(arn: str) -> list[Any]:
    """The emulator's execution of ``arn`` (``arn:aws:states:REGION:ACCOUNT:execution:…``), if
    it has it."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    region, account = arn.split(":")[3:5]
    backend = stepfunctions_parser_backends[account][region]
    return [e for e in backend._get_executions() if e.exec_arn == arn][:1]


# --- 3. speed: cached clients --------------------------------------------------------------------

_clients: dict[tuple[str, str, bool, str], Any] = {}  # a boto3 client (untyped) per key


def _patch_boto_clients() -> None:
    original = boto_client.boto_client_for

    def cached_client_for(
        region: str, service: str, state_credentials: StateCredentials | None = None
    ) -> Any:
        from moto.core.models import botocore_stubber
        from moto.settings import moto_server_port

        key = (region, service, botocore_stubber.enabled, moto_server_port())
        client = _clients.get(key)
        if client is None:
            with _lock_clients:
                client = _clients.get(key)
                if client is None:
                    client = _clients[key] = original(region, service, state_credentials)
        return client

    boto_client.boto_client_for = cached_client_for
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if (
            name.startswith("moto.stepfunctions.parser")
            and getattr(module, "boto_client_for", None) is original
        ):
            # the modules that imported the function by name keep their own reference to it
            module.boto_client_for = cached_client_for  # type: ignore[attr-defined]


_lock_clients = threading.Lock()


# --- 3. speed: JSONPath parsed once --------------------------------------------------------------

JSON_PATH_CACHE_SIZE = 4096


def _patch_json_path_parsing() -> None:
    # Parsed paths are immutable trees: evaluating one (find, update) never changes it, so one
    # parse can serve every state and thread. Both modules import ``parse`` by name without
    # re-exporting it, hence attr-defined.
    json_path.parse = functools.lru_cache(maxsize=JSON_PATH_CACHE_SIZE)(jsonpath_ng.ext.parse)  # type: ignore[attr-defined]
    result_path.parse = functools.lru_cache(maxsize=JSON_PATH_CACHE_SIZE)(jsonpath_ng.parse)  # type: ignore[attr-defined]


# --- 4. S3 ranged GETs read their range only -----------------------------------------------------

_RANGE: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "stepnet_s3_range", default=None
)
_SINGLE_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


def single_range(header: str | None) -> tuple[int, int] | None:
    """``(first, last)`` of a ``Range: bytes=first-last`` header (both given, one range)."""
    match = _SINGLE_RANGE.match((header or "").strip())
    if match is None or int(match[1]) > int(match[2]):
        return None
    return int(match[1]), int(match[2])


def _patch_s3_ranged_get() -> None:
    # FakeKey.value is a property (moto types it as its getter): read from the class dict
    value: property = vars(s3_models.FakeKey)["value"]
    whole = value.fget
    assert whole is not None

    def ranged_value(self: Any) -> bytes:
        span = _RANGE.get()
        if span is None:
            return bytes(whole(self))
        first, last = span
        with self.lock:
            self._value_buffer.seek(first)
            return bytes(self._value_buffer.read(last - first + 1))

    s3_models.FakeKey.value = property(ranged_value, value.fset)  # type: ignore[assignment]
    original = s3_responses.S3Response.get_object

    @functools.wraps(original)
    def get_object(self: Any) -> Any:
        span = single_range(self.headers.get("range"))
        if span is None or self._get_int_param("partNumber"):
            return original(self)
        key, _ = self._get_key()
        if key.multipart or span[0] >= key.size:
            return original(self)  # moto's own handling (and its errors)
        span = (span[0], min(span[1], key.size - 1))
        token = _RANGE.set(span)
        try:
            status, headers, body = original(self)
        finally:
            _RANGE.reset(token)
        if status != 200:
            return status, headers, body
        for name in [h for h in headers if h.startswith("x-amz-checksum-")]:
            del headers[name]  # a range has no checksum (as moto drops it)
        headers["content-range"] = f"bytes {span[0]}-{span[1]}/{key.size}"
        headers["content-length"] = str(len(body))
        return 206, headers, body  # not 200: moto slices only 200 responses

    s3_responses.S3Response.get_object = get_object  # type: ignore[method-assign]


# --- 5. S3 notifications: asynchronous invocations -----------------------------------------------

_in_flight: set[threading.Thread] = set()
_in_flight_lock = threading.Lock()
logger = logging.getLogger("stepnet.engine")


def _patch_s3_notifications() -> None:
    original = s3_notifications._invoke_awslambda

    def invoke_async(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        runtime = _runtime_for(fn_arn)
        if runtime is None:
            return original(account_id, event_body, fn_arn, region_name)
        thread = threading.Thread(
            target=_invoke_with_retries,
            args=(runtime, fn_arn, event_body),
            name=f"s3-notification-{fn_arn.rsplit(':', 1)[-1]}",
            daemon=True,
        )
        with _in_flight_lock:
            _in_flight.add(thread)
        thread.start()
        return None

    # moto's send_event calls it by its module-level name
    s3_notifications._invoke_awslambda = invoke_async


def _invoke_with_retries(runtime: LambdaRuntime, function: str, event: Any) -> None:
    try:
        for delay in (*ASYNC_RETRY_SECONDS, None):
            _, error = runtime.invoke(function, event)
            if error is None:
                return
            if delay is None:
                logger.warning("asynchronous invocation of %s failed 3 times; dropped", function)
                return
            time.sleep(delay)
    finally:
        with _in_flight_lock:
            _in_flight.discard(threading.current_thread())


def wait_for_notifications(timeout: float = 60.0) -> bool:
    """Wait until every asynchronous invocation started by an S3 notification has ended (those
    it starts in turn too); False if some still run after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with _in_flight_lock:
            running = list(_in_flight)
        if not running:
            return True
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            with _in_flight_lock:
                return not _in_flight


# --- 6. moto's server: one backend lookup per host -----------------------------------------------


def _patch_server_dispatch() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        # a pure function of the host and moto's fixed URL patterns; callers hold self.lock
        if host not in found:
            found[host] = original(self, host)
        return found[host]

    # mypy forbids assigning to a method; replacing it is the patch
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


# --- 7. S3 object bodies in files ----------------------------------------------------------------


class _Tempfile:
    """moto's S3 models' ``tempfile``: the real module, but bodies in :class:`SpilledBody`."""

    SpooledTemporaryFile = SpilledBody

    def __getattr__(self, name: str) -> Any:
        return getattr(tempfile, name)


def _patch_s3_bodies() -> None:
    # FakeKey builds its body buffer as ``tempfile.SpooledTemporaryFile(max_size)``, in
    # __init__ and __setstate__; the module's other names are the real tempfile's
    s3_models.tempfile = _Tempfile()  # type: ignore[assignment,attr-defined]


# --- 9. requests freed when answered --------------------------------------------------------------

_requests = threading.local()  # the Requests moto made for the call this thread is answering


def _patch_request_cycles() -> None:
    normalize = botocore_stubber.normalize_request  # type: ignore[attr-defined]
    process = botocore_stubber.BotocoreStubber.process_request

    @functools.wraps(normalize)
    def normalize_request(request: Any) -> Any:
        normalized = normalize(request)
        _requests.__dict__.setdefault("made", []).append(normalized)
        return normalized

    @functools.wraps(process)
    def process_request(self: Any, request: Any) -> Any:
        try:
            return process(self, request)
        finally:
            for made in _requests.__dict__.pop("made", []):
                environ = getattr(made, "environ", None)
                if isinstance(environ, dict) and environ.get("werkzeug.request") is made:
                    del environ["werkzeug.request"]  # the cycle: refcounting frees it now

    botocore_stubber.normalize_request = normalize_request  # type: ignore[attr-defined]
    # mypy forbids assigning to a method; replacing it is the patch
    botocore_stubber.BotocoreStubber.process_request = process_request  # type: ignore[method-assign]
