"""An in-process Lambda runtime: runs the project's handlers where moto would start Docker.

Thread-safe: Map iterations invoke handlers concurrently. Errors come back the way Lambda reports
an unhandled exception (``FunctionError`` and a payload with ``errorType`` and ``errorMessage``),
so the ASL's Retry and Catch see what they would see on AWS.
"""

from __future__ import annotations

import importlib
import itertools
import json
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import Any

_request_ids = itertools.count(1)


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: f"local-{next(_request_ids):012d}")
    invoked_function_arn: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


Handler = Callable[[dict[str, Any], LambdaContext], Any]
"""A Lambda handler: the JSON event and the context in, a JSON-serializable payload out."""


@dataclass
class _Fault:
    error_type: str
    message: str
    remaining: int


InvocationHook = Callable[[str], AbstractContextManager[Any]]
"""Entered around every invocation, in the invoking thread, given the function's name (a meter's
or a profiler's way in: ``runtime.hooks.append(hook)``, then ``remove`` it)."""


class LambdaRuntime:
    """Maps function names to handler paths (``module.function``) and invokes them in-process."""

    def __init__(self) -> None:
        self._handlers: dict[str, str] = {}
        self._loaded: dict[str, Handler] = {}
        self._faults: dict[str, _Fault] = {}
        self._lock = threading.Lock()
        self.hooks: list[InvocationHook] = []
        self.invocations: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)  # handler time per function

    def register(self, function_name: str, handler_path: str) -> None:
        self._handlers[function_name] = handler_path

    def knows(self, function_name: str) -> bool:
        return _name_of(function_name) in self._handlers

    def inject_fault(
        self, function_name: str, error_type: str, message: str = "injected", times: int = 1
    ) -> None:
        """Make the next ``times`` invocations of a function fail with ``error_type``.

        ``Lambda.ServiceException`` and the other transient types are retried by the ASL;
        anything else fails the run through its Catch.
        """
        with self._lock:
            self._faults[_name_of(function_name)] = _Fault(error_type, message, times)

    def invoke(self, function_name: str, event: Any) -> tuple[Any, str | None]:
        """Run the function on ``event``; returns (payload, function_error or None)."""
        name = _name_of(function_name)
        with ExitStack() as stack:
            for hook in list(self.hooks):
                stack.enter_context(hook(name))
            return self._invoke(name, event)

    def _invoke(self, name: str, event: Any) -> tuple[Any, str | None]:
        handler = self._handler(name)
        fault = self._take_fault(name)
        started = time.perf_counter()
        try:
            if fault is not None:
                raise _InjectedError(fault.error_type, fault.message)
            payload = handler(event, LambdaContext(function_name=name))
            error = None
        except Exception as exc:  # Lambda reports any unhandled exception this way
            payload = _error_payload(exc)
            error = "Unhandled"
        finally:
            with self._lock:
                self.invocations[name] += 1
                self.seconds[name] += time.perf_counter() - started
        return payload, error

    def _handler(self, name: str) -> Handler:
        handler = self._loaded.get(name)
        if handler is None:
            if name not in self._handlers:
                raise KeyError(f"no function named {name!r} in the local account")
            module_name, function = self._handlers[name].rsplit(".", 1)
            handler = getattr(importlib.import_module(module_name), function)
            self._loaded[name] = handler
        return handler

    def _take_fault(self, name: str) -> _Fault | None:
        with self._lock:
            fault = self._faults.get(name)
            if fault is None or fault.remaining <= 0:
                return None
            fault.remaining -= 1
            return fault


class _InjectedError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _name_of(function: str) -> str:
    """A function name from a name or ARN (``arn:aws:lambda:…:function:NAME[:qualifier]``)."""
    if function.startswith("arn:"):
        return function.split(":")[6]
    return function


def _error_payload(exc: Exception) -> dict[str, Any]:
    error_type = exc.error_type if isinstance(exc, _InjectedError) else type(exc).__name__
    return {
        "errorMessage": str(exc),
        "errorType": error_type,
        "requestId": str(uuid.uuid4()),
        "stackTrace": traceback.format_exception(exc)[-6:],
    }


def payload_json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))
