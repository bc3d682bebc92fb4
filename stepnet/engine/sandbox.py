"""One Lambda execution environment of the local engine: a worker process that runs one function.

``python -m stepnet.engine.sandbox FD`` is started by :mod:`stepnet.engine.workers` with the
function's environment (its configuration's variables, the emulated account's endpoint and
Lambda's reserved variables such as ``_HANDLER``). Like Lambda's Python runtime it imports the
handler once (the *init* phase), then serves invocations one at a time, for as long as it is
kept warm, over the socket ``FD``:

* the engine sends ``{"invoke": {"request_id", "event", "timeout_s", "delay_s"}}``;
* while the handler runs, the sandbox sends each AWS API call its boto3 clients make,
  ``{"aws": {"method", "url", "headers"}}`` with the body beside it, and the engine answers with
  the account's response, ``{"status", "headers"}`` and the body (:class:`AccountChannel`);
* the sandbox answers ``{"result": {"payload", "error", "duration_s", "max_rss_kb"}}`` —
  ``error`` is the Invoke API's ``FunctionError`` (``"Unhandled"``) or ``null``; ``max_rss_kb``
  is the process's peak resident set during this invocation (Linux ``VmHWM``, reset before it
  starts by writing ``5`` to ``/proc/self/clear_refs``): Lambda's *Max Memory Used*, runtime
  and imports included.

A frame is a JSON message and optional bytes, preceded by their two lengths (4 bytes each,
big-endian). The handler's result goes through ``json.dumps`` as on Lambda, so a result Lambda
could not return fails here too (``Runtime.MarshalError``).

With the home store (``stepnet local``'s default) the engine passes the home's folder in
:data:`HOME_VARIABLE`: at its init the sandbox opens the home (:mod:`stepnet.home`: SQLite and
files, no moto) and installs it as the handlers' store (``trainer.settings.install``), so the
handlers' storage calls never cross the channel; only their other AWS calls do.

This module imports only the standard library and the handler (and, with a home, the home's
store): what it loads is the sandbox's memory, and nothing of the engine (moto, the interpreter)
belongs there.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

_HEADER: Final = struct.Struct("!II")  # the JSON part's length, the binary part's length
ERROR_TYPE_IMPORT: Final = "Runtime.ImportModuleError"
ERROR_TYPE_MARSHAL: Final = "Runtime.MarshalError"
UNHANDLED: Final = "Unhandled"  # the Invoke API's FunctionError for any error of the function
HOME_VARIABLE: Final = "STEPNET_ENGINE_HOME"  # the home the engine's store is in (stepnet.home)


# --- framing, shared with the engine side -------------------------------------------------------


def send_message(channel: socket.socket, message: dict[str, Any], blob: bytes = b"") -> None:
    """One frame: a JSON message and, optionally, bytes beside it (a request's body)."""
    data = json.dumps(message, separators=(",", ":")).encode()
    channel.sendall(_HEADER.pack(len(data), len(blob)) + data + blob)


def receive_message(channel: socket.socket) -> tuple[dict[str, Any], bytes] | None:
    """The next frame's message and bytes, or None if the other side closed the channel."""
    header = _receive_exactly(channel, _HEADER.size)
    if header is None:
        return None
    size, blob_size = _HEADER.unpack(header)
    data = _receive_exactly(channel, size + blob_size)
    if data is None:
        return None
    message: dict[str, Any] = json.loads(data[:size])
    return message, data[size:]


def _receive_exactly(channel: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view, received = memoryview(buffer), 0
    while received < size:
        count = channel.recv_into(view[received:])
        if not count:
            return None
        received += count
    return bytes(buffer)


# --- the account, over the channel --------------------------------------------------------------


class _Body(io.BytesIO):
    """A response body as botocore reads it (``read`` for streams, ``stream`` for the rest)."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        data = self.read()
        if data:
            yield data


class AccountChannel:
    """The sandbox's way to the emulated account: every AWS API call of the handler's boto3
    clients is sent over the channel and answered by the account (``before-send``, the hook
    moto's own mock uses), instead of going out over HTTP. The request is the one botocore
    signed for AWS and the response is parsed by botocore as AWS's would be; only the transport
    is the engine's. One call at a time (a handler's threads take turns)."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._lock = threading.Lock()

    def install(self) -> None:
        """Route every botocore session created from now on, and boto3's default session if
        the template made it already."""
        from botocore.handlers import BUILTIN_HANDLERS

        BUILTIN_HANDLERS.append(("before-send", self))
        boto3 = sys.modules.get("boto3")
        session = getattr(boto3, "DEFAULT_SESSION", None)
        if session is not None:
            session.events.register("before-send", self)

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        body = request.body
        if body is None:
            data = b""
        elif isinstance(body, bytes | bytearray):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode()
        else:  # a file-like body (botocore rewinds it itself for a retry)
            data = body.read()
            if isinstance(data, str):
                data = data.encode()
        headers = [
            (str(k), v.decode() if isinstance(v, bytes) else str(v))
            for k, v in request.headers.items()
        ]
        call = {"method": request.method, "url": request.url, "headers": headers}
        with self._lock:
            send_message(self._channel, {"aws": call}, data)
            answer = receive_message(self._channel)
        if answer is None:
            raise ConnectionError("the local engine closed the sandbox's channel")
        reply, blob = answer
        return AWSResponse(request.url, reply["status"], reply["headers"], _Body(blob))


# --- the context object -------------------------------------------------------------------------


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = ""
    invoked_function_arn: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    deadline: float | None = None  # time.monotonic() by which the invocation must end

    def get_remaining_time_in_millis(self) -> int:
        if self.deadline is None:
            return 900_000
        return max(0, int(1000 * (self.deadline - time.monotonic())))


# --- what Lambda's runtime reports --------------------------------------------------------------


def error_payload(
    exc: BaseException, request_id: str, error_type: str | None = None
) -> dict[str, Any]:
    """An unhandled exception as Lambda's Python runtime reports it."""
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_exception(exc)[-6:],
    }


def resolve_handler(path: str) -> Callable[[Any, Any], Any]:
    """``module.function`` -> the function (importing the module)."""
    module_name, _, function = path.rpartition(".")
    handler: Callable[[Any, Any], Any] = getattr(importlib.import_module(module_name), function)
    return handler


def install_home_store(environ: Mapping[str, str]) -> None:
    """With :data:`HOME_VARIABLE` set, make the home the handlers' store (``trainer.settings``),
    built from the function's environment (bucket, scratch TTL, cache size). Only a function
    configured with the store's tables (every ``trainer`` function) has a store: the prediction
    functions (``inference``, the bucket only) keep their own S3 reads."""
    home = environ.get(HOME_VARIABLE)
    if not home:
        return
    from trainer.contract.environment import VARIABLES

    if VARIABLES["runs_table"] in environ:
        from pathlib import Path

        from stepnet.home import store_for_function
        from trainer import settings

        settings.install(store_for_function(Path(home)))


# --- peak memory (Linux) ------------------------------------------------------------------------


def reset_peak_memory() -> None:
    """Reset this process's ``VmHWM`` to its current resident set (Linux; elsewhere a no-op and
    the peak is the process's since it started)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_memory_kb() -> int:
    """This process's peak resident set since the last reset, in KiB."""
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes there, KiB on Linux


# --- the runtime loop ---------------------------------------------------------------------------


class _Runtime:
    def __init__(self) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.memory_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
        self.handler_path = os.environ["_HANDLER"]
        self.handler: Callable[[Any, Any], Any] | None = None
        self.init_error: BaseException | None = None

    def init(self) -> None:
        try:
            install_home_store(os.environ)  # before the handler: it never runs on another store
            self.handler = resolve_handler(self.handler_path)
        except Exception as exc:  # Lambda reports it on every invocation of this sandbox
            self.init_error = exc

    def invoke(self, request: dict[str, Any]) -> dict[str, Any]:
        request_id = str(request["request_id"])
        reset_peak_memory()
        started = time.monotonic()
        context = LambdaContext(
            function_name=self.function_name,
            memory_limit_in_mb=self.memory_mb,
            aws_request_id=request_id,
            deadline=started + float(request["timeout_s"]),
        )
        payload, error = self._run(request, context)
        return {
            "payload": payload,
            "error": error,
            "duration_s": time.monotonic() - started,
            "max_rss_kb": peak_memory_kb(),
        }

    def _run(self, request: dict[str, Any], context: LambdaContext) -> tuple[Any, str | None]:
        request_id = context.aws_request_id
        if self.handler is None:
            module = self.handler_path.rpartition(".")[0]
            message = f"Unable to import module '{module}': {self.init_error}"
            return error_payload(ImportError(message), request_id, ERROR_TYPE_IMPORT), UNHANDLED
        try:
            delay = float(request.get("delay_s") or 0)
            if delay > 0:  # fault injection: a slow dependency, inside the invocation
                time.sleep(delay)
            payload = self.handler(request["event"], context)
        except Exception as exc:  # Lambda reports any unhandled exception this way
            return error_payload(exc, request_id), UNHANDLED
        try:
            json.dumps(payload)  # what Lambda's runtime does with the result
        except (TypeError, ValueError) as exc:
            error = ValueError(f"Unable to marshal response: {exc}")
            return error_payload(error, request_id, ERROR_TYPE_MARSHAL), UNHANDLED
        return payload, None


def serve(channel: socket.socket) -> int:
    """Be one function's sandbox on ``channel``: init, then invocations until it closes."""
    started = time.monotonic()
    AccountChannel(channel).install()
    runtime = _Runtime()
    runtime.init()
    send_message(channel, {"ready": True, "init_s": time.monotonic() - started})
    while (received := receive_message(channel)) is not None:
        request, _ = received
        send_message(channel, {"result": runtime.invoke(request["invoke"])})
    return 0


# --- the template process ------------------------------------------------------------------------
# Starting a sandbox means starting Python and importing numpy, boto3, pydantic, Powertools and
# the handlers: about half a second of CPU each, for every cold start. A template process does
# those imports once, single-threaded, then forks each new sandbox from itself; the child gets
# the function's own variables, its channel, and goes on as :func:`serve`. The template is
# spawned (never forked from the engine), and what a child inherits — the interpreter and the
# imports — is what a Lambda sandbox holds after its init too: its resident set counts it.

_CONTROL_SIZE: Final = 1 << 20  # one control message (a fork request: the variables)


def template(control: socket.socket, preload: list[str]) -> int:
    """Serve fork requests on ``control`` (a SOCK_SEQPACKET socket) until it closes.

    ``preload``: modules to import, and ``aws:SERVICE`` entries: a boto3 client of each made
    (and dropped) in boto3's default session, so that its models are loaded once, here, rather
    than by every sandbox's first client (a third of a second of CPU each)."""
    for entry in preload:
        with contextlib.suppress(Exception):  # a sandbox that needs it reports the error
            if entry.startswith("aws:"):
                import boto3

                boto3.client(entry.removeprefix("aws:"))
            else:
                importlib.import_module(entry)
    control.send(json.dumps({"ready": True}).encode())
    statuses: dict[int, int] = {}
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, _CONTROL_SIZE, 1)
        except OSError:
            return 0
        if not data:
            return 0
        _reap(statuses)
        request = json.loads(data)
        if "fork" in request:
            pid = os.fork()
            if pid == 0:  # the new sandbox
                code = 1
                try:
                    control.close()
                    os.environ.update(request["fork"]["environment"])
                    code = serve(socket.socket(fileno=fds[0]))
                finally:
                    os._exit(code)
            for fd in fds:
                os.close(fd)
            control.send(json.dumps({"pid": pid}).encode())
        elif "status" in request:
            pid = int(request["status"])
            if pid not in statuses:
                try:
                    statuses[pid] = os.waitpid(pid, 0)[1]
                except ChildProcessError:
                    statuses[pid] = 0
            control.send(
                json.dumps({"status": os.waitstatus_to_exitcode(statuses.pop(pid))}).encode()
            )


def _reap(statuses: dict[int, int]) -> None:
    """Collect the sandboxes that ended (killed ones included), keeping their statuses."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        statuses[pid] = status


def main(argv: list[str] | None = None) -> int:
    """``FD``: be a sandbox; ``--template FD MODULE...``: be a template that forks them."""
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle
    if args[0] == "--template":
        control = socket.socket(fileno=int(args[1]))
        return template(control, args[2:])
    return serve(socket.socket(fileno=int(args[0])))


if __name__ == "__main__":
    sys.exit(main())
