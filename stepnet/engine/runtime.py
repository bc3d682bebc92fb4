"""The local engine's Lambda: runs the project's handlers where moto would start Docker.

Two isolations (``LambdaRuntime(isolation=...)``):

* ``"processes"`` (the default, what ``stepnet local`` uses): each function runs in warm worker
  processes of its own (:mod:`stepnet.engine.workers`), reused while warm, one per concurrent
  invocation, each with the function's environment — held to the function's memory and timeout
  and measured like Lambda's REPORT line (*Max Memory Used*, *Duration*). Exceeding either fails
  the invocation as Lambda reports it. The handlers reach the account through its endpoint.
* ``"threads"``: the handlers run in this process, in the interpreter's threads, sharing its
  memory and one store: nothing is enforced or measured but the duration. For instruments that
  observe the handlers from inside this process (``stepnet.billing.meter``, the bench's
  profiler).

Either way errors come back the way Lambda reports them (``FunctionError`` and a payload with
``errorType`` and ``errorMessage``), so the ASL's Retry and Catch see what they would see on AWS.
Thread-safe: Map iterations invoke concurrently.
"""

from __future__ import annotations

import importlib
import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, TypedDict, get_args

from stepnet.engine.sandbox import UNHANDLED, LambdaContext, error_payload
from stepnet.engine.workers import (
    EXITED,
    Host,
    Outcome,
    SandboxPool,
    SandboxSpec,
    SandboxStartError,
    Templates,
    Transport,
)

__all__ = [
    "FunctionConfig",
    "FunctionUsage",
    "Invocation",
    "InvocationHook",
    "Isolation",
    "LambdaContext",
    "LambdaRuntime",
    "UsageRecorder",
    "UsageReport",
]

Isolation = Literal["processes", "threads"]
ISOLATIONS: Final[tuple[Isolation, ...]] = get_args(Isolation)
DEFAULT_MEMORY_MB: Final = 128  # Lambda's defaults for a function created without sizes
DEFAULT_TIMEOUT_S: Final = 3

Handler = Callable[[dict[str, Any], LambdaContext], Any]
"""A Lambda handler: the JSON event and the context in, a JSON-serializable payload out."""

InvocationHook = Callable[[str], AbstractContextManager[Any]]
"""Entered around every invocation, in the invoking thread, given the function's name (a meter's
or a profiler's way in: ``runtime.hooks.append(hook)``, then ``remove`` it)."""


@dataclass(frozen=True)
class FunctionConfig:
    """What the runtime runs a function with: its handler (``module.function``), its sizes and
    its configuration's environment variables."""

    handler: str
    memory_mb: int = DEFAULT_MEMORY_MB
    timeout_s: int = DEFAULT_TIMEOUT_S
    environment: Mapping[str, str] = field(default_factory=dict)
    label: str = ""  # the name people know it by (the contract's logical name), for messages


@dataclass(frozen=True)
class Invocation:
    """One invocation as Lambda's REPORT line has it."""

    function: str
    duration_s: float
    max_memory_used_mb: int | None  # None where it is not measured (threads, injected faults)
    error_type: str | None = None  # the payload's errorType when the function failed
    exceeded: Literal["memory", "timeout"] | None = None


class UsageReport(TypedDict):
    """A function's sizes and the most one of its invocations used, as Lambda's REPORT lines
    have them (*Memory Size*, *Max Memory Used*, *Duration*): ``usage.json``'s rows. The maxima
    are None for a function not invoked, and Max Memory Used where it is not measured
    (``isolation="threads"``)."""

    invocations: int
    memory_mb: int
    max_memory_used_mb: int | None
    timeout_s: int
    max_duration_s: float | None


@dataclass
class FunctionUsage:
    """A function's sizes and the most any of its invocations used."""

    memory_mb: int
    timeout_s: int
    invocations: int = 0
    max_memory_used_mb: int | None = None
    max_duration_s: float | None = None

    def add(self, invocation: Invocation) -> None:
        self.invocations += 1
        if invocation.max_memory_used_mb is not None:
            self.max_memory_used_mb = max(
                self.max_memory_used_mb or 0, invocation.max_memory_used_mb
            )
        self.max_duration_s = max(self.max_duration_s or 0.0, invocation.duration_s)

    def as_dict(self) -> UsageReport:
        return UsageReport(
            invocations=self.invocations,
            memory_mb=self.memory_mb,
            max_memory_used_mb=self.max_memory_used_mb,
            timeout_s=self.timeout_s,
            max_duration_s=None if self.max_duration_s is None else round(self.max_duration_s, 3),
        )


class UsageRecorder:
    """Per function: invocations, sizes, the largest Max Memory Used and Duration seen while
    recording (:meth:`LambdaRuntime.recording`)."""

    def __init__(self, runtime: LambdaRuntime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._functions: dict[str, FunctionUsage] = {}

    def add(self, invocation: Invocation) -> None:
        with self._lock:
            self._usage(invocation.function).add(invocation)

    def _usage(self, name: str) -> FunctionUsage:
        usage = self._functions.get(name)
        if usage is None:
            config = self._runtime.configuration(name)
            usage = self._functions[name] = FunctionUsage(config.memory_mb, config.timeout_s)
        return usage

    def functions(self, names: list[str] | None = None) -> dict[str, FunctionUsage]:
        """A snapshot per function name; ``names`` lists every function wanted, invoked or not."""
        with self._lock:
            for name in names or []:
                self._usage(name)
            return {name: replace(usage) for name, usage in self._functions.items()}


# Random faults (``inject_faults``): the failures the ASL's Retry on every Lambda Task absorbs.
# Lambda's service errors come back before the function runs; a lost response comes after it
# ran, its result gone (the SDK call failed on the way back), so the retry runs it again.
SERVICE_ERRORS: Final = (
    "Lambda.ServiceException",
    "Lambda.TooManyRequestsException",
    "Lambda.AWSLambdaException",
)
LOST_RESPONSE: Final = "Lambda.SdkClientException"
MAX_FAULT_RATE: Final = 0.5  # beyond it a Task would exhaust its retries (6) too often


@dataclass
class _Fault:
    error_type: str | None
    message: str
    remaining: int
    delay_s: float = 0.0


class LambdaRuntime:
    """Function names -> their configuration; invokes them (module docstring: isolations)."""

    def __init__(
        self,
        isolation: Isolation = "processes",
        *,
        transport: Transport | None = None,
        engine_environment: Mapping[str, str] | None = None,
    ) -> None:
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
        self.isolation: Isolation = isolation
        # how the sandboxes' AWS API calls reach the account, and what else they are given
        # (region, credentials): the account sets both when it is entered
        self.transport = transport
        self.engine_environment = dict(engine_environment or {})
        self.services: tuple[str, ...] = ()  # the AWS services the handlers call
        self.preload: tuple[str, ...] = ()  # modules the sandboxes need besides the handlers'
        self._configs: dict[str, FunctionConfig] = {}
        self._loaded: dict[str, Handler] = {}
        self._pools: dict[str, SandboxPool] = {}
        self.host = Host()  # what every pool's sandboxes share (processes)
        self._templates: Templates | None = None
        self._faults: dict[str, _Fault] = {}
        self.fault_rate = 0.0  # inject_faults
        self._fault_random = random.Random(0)
        self.injected: Counter[str] = Counter()  # random faults injected, by error type
        self._lock = threading.Lock()
        self._recorders: list[UsageRecorder] = []
        self.hooks: list[InvocationHook] = []
        self.invocations: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)  # handler time per function
        self.usage = UsageRecorder(self)  # since the runtime started

    # --- configuration ------------------------------------------------------------------------

    def register(
        self,
        function_name: str,
        handler_path: str,
        *,
        memory_mb: int | None = None,
        timeout_s: int | None = None,
        environment: Mapping[str, str] | None = None,
        label: str | None = None,
    ) -> None:
        """Configure a function (again: what is not given stays as it was). A changed
        configuration gets new sandboxes, as on Lambda."""
        with self._lock:
            previous = self._configs.get(function_name)
            config = FunctionConfig(handler_path) if previous is None else previous
            config = replace(
                config,
                handler=handler_path,
                memory_mb=config.memory_mb if memory_mb is None else memory_mb,
                timeout_s=config.timeout_s if timeout_s is None else timeout_s,
                environment=config.environment if environment is None else dict(environment),
                label=config.label if label is None else label,
            )
            self._configs[function_name] = config
            self._loaded.pop(function_name, None)
            stale = self._pools.pop(function_name, None) if config != previous else None
        if stale is not None:
            stale.close()

    def configuration(self, function_name: str) -> FunctionConfig:
        name = _name_of(function_name)
        config = self._configs.get(name)
        if config is None:
            raise KeyError(f"no function named {name!r} in the local account")
        return config

    def knows(self, function_name: str) -> bool:
        return _name_of(function_name) in self._configs

    def prewarm(self, function_name: str) -> None:
        """Start a sandbox of the function now, in the background (processes only)."""
        if self.isolation == "processes":
            pool = self._pool(_name_of(function_name))
            threading.Thread(target=_quietly, args=(pool.prewarm,), daemon=True).start()

    def close(self) -> None:
        """Stop every sandbox (and the templates they are forked from)."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            templates, self._templates = self._templates, None
        for pool in pools:
            pool.close()
        if templates is not None:
            templates.close()

    # --- fault injection ----------------------------------------------------------------------

    def inject_fault(
        self, function_name: str, error_type: str, message: str = "injected", times: int = 1
    ) -> None:
        """Make the next ``times`` invocations of a function fail with ``error_type``.

        ``Lambda.ServiceException`` and the other transient types are retried by the ASL;
        anything else fails the run through its Catch.
        """
        with self._lock:
            self._faults[_name_of(function_name)] = _Fault(error_type, message, times)

    def inject_delay(self, function_name: str, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` invocations of a function spend ``seconds`` in its sandbox
        before the handler runs (a slow dependency): the way to reach a timeout on purpose."""
        with self._lock:
            self._faults[_name_of(function_name)] = _Fault(None, "", times, delay_s=seconds)

    def inject_faults(self, rate: float, seed: int | None = None) -> None:
        """From now on, fail a share ``rate`` of all invocations at random, with a Lambda service
        error (the function does not run) or a lost response (it runs; its result is lost), in
        equal parts (:data:`SERVICE_ERRORS`, :data:`LOST_RESPONSE`): transient failures the
        workflow must absorb by retrying, leaving the run's results unchanged."""
        if not 0.0 <= rate <= MAX_FAULT_RATE:
            raise ValueError(
                f"the fault rate is a share of invocations from 0 to {MAX_FAULT_RATE}, got {rate}"
            )
        with self._lock:
            self.fault_rate = rate
            self._fault_random = random.Random(seed)

    def _random_fault(self) -> str | None:
        with self._lock:
            if self.fault_rate <= 0.0 or self._fault_random.random() >= self.fault_rate:
                return None
            error = self._fault_random.choice((*SERVICE_ERRORS, LOST_RESPONSE))
            self.injected[error] += 1
            return error

    def _take_fault(self, name: str) -> _Fault | None:
        with self._lock:
            fault = self._faults.get(name)
            if fault is None or fault.remaining <= 0:
                return None
            fault.remaining -= 1
            return fault

    # --- invoking -----------------------------------------------------------------------------

    @contextmanager
    def recording(self) -> Iterator[UsageRecorder]:
        """Record the usage of every invocation made while the block runs."""
        recorder = UsageRecorder(self)
        with self._lock:
            self._recorders.append(recorder)
        try:
            yield recorder
        finally:
            with self._lock:
                self._recorders.remove(recorder)

    def invoke(self, function_name: str, event: Any) -> tuple[Any, str | None]:
        """Run the function on ``event``; returns (payload, function_error or None)."""
        name = _name_of(function_name)
        config = self.configuration(name)
        with ExitStack() as stack:
            for hook in list(self.hooks):
                stack.enter_context(hook(name))
            request_id = str(uuid.uuid4())
            fault = self._take_fault(name)
            if fault is None and (error := self._random_fault()) is not None:
                fault = _Fault(error, _RANDOM_FAULT_MESSAGES[error == LOST_RESPONSE], 1)
            if fault is not None and fault.error_type not in (None, LOST_RESPONSE):
                outcome = Outcome(
                    _injected_payload(fault, request_id), UNHANDLED, 0.0, None
                )  # Lambda's service failed before a sandbox was involved
            elif self.isolation == "processes":
                outcome = self._in_sandbox(name, request_id, event, fault)
            else:
                outcome = self._in_thread(name, config, request_id, event, fault)
            if fault is not None and fault.error_type == LOST_RESPONSE and outcome.error is None:
                # it ran, with every effect it has; its caller never hears back
                outcome = replace(outcome, payload=_injected_payload(fault, request_id),
                                  error=UNHANDLED)  # fmt: skip
            self._record(name, outcome)
            return outcome.payload, outcome.error

    def _in_sandbox(self, name: str, request_id: str, event: Any, fault: _Fault | None) -> Outcome:
        started = time.monotonic()
        try:
            return self._pool(name).invoke(request_id, event, fault.delay_s if fault else 0.0)
        except SandboxStartError as exc:
            payload = {
                "errorType": EXITED,
                "errorMessage": f"RequestId: {request_id} Error: {exc}",
            }
            return Outcome(payload, UNHANDLED, time.monotonic() - started, None)

    def _in_thread(
        self,
        name: str,
        config: FunctionConfig,
        request_id: str,
        event: Any,
        fault: _Fault | None,
    ) -> Outcome:
        started = time.monotonic()
        context = LambdaContext(
            function_name=name,
            memory_limit_in_mb=config.memory_mb,
            aws_request_id=request_id,
            deadline=started + config.timeout_s,
        )
        try:
            handler = self._handler(name, config)
            if fault is not None and fault.delay_s > 0:
                time.sleep(fault.delay_s)
            payload: Any = handler(event, context)
            error = None
        except Exception as exc:  # Lambda reports any unhandled exception this way
            payload, error = error_payload(exc, request_id), UNHANDLED
        return Outcome(payload, error, time.monotonic() - started, None)

    def _record(self, name: str, outcome: Outcome) -> None:
        error_type = None
        if outcome.error and isinstance(outcome.payload, dict):
            error_type = outcome.payload.get("errorType")
        invocation = Invocation(
            name, outcome.duration_s, outcome.max_memory_used_mb, error_type, outcome.exceeded
        )
        with self._lock:
            self.invocations[name] += 1
            self.seconds[name] += outcome.duration_s
            recorders = [self.usage, *self._recorders]
        for recorder in recorders:
            recorder.add(invocation)

    def _pool(self, name: str) -> SandboxPool:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                config = self._configs[name]
                spec = SandboxSpec(
                    function_name=name,
                    handler=config.handler,
                    memory_mb=config.memory_mb,
                    timeout_s=config.timeout_s,
                    environment=config.environment,
                    label=config.label,
                )
                if self.transport is None:
                    raise RuntimeError("the runtime has no account to send AWS API calls to")
                if self._templates is None:  # preloading every function's handler module
                    modules = {c.handler.rpartition(".")[0] for c in self._configs.values()}
                    services = [f"aws:{service}" for service in self.services]
                    self._templates = Templates([*sorted(modules), *self.preload, *services])
                pool = self._pools[name] = SandboxPool(
                    spec, self.engine_environment, self.transport, self._templates, self.host
                )
            return pool

    def _handler(self, name: str, config: FunctionConfig) -> Handler:
        handler = self._loaded.get(name)
        if handler is None:
            module_name, function = config.handler.rsplit(".", 1)
            handler = getattr(importlib.import_module(module_name), function)
            self._loaded[name] = handler
        return handler


_RANDOM_FAULT_MESSAGES: Final = (
    "Lambda's service failed the request (injected by --inject-faults)",
    "the function ran but its response was lost on the way back (injected by --inject-faults)",
)


def _injected_payload(fault: _Fault, request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": fault.message,
        "errorType": fault.error_type,
        "requestId": request_id,
        "stackTrace": [],
    }


def _quietly(action: Callable[[], None]) -> None:
    with suppress(Exception):  # a failed prewarm is the next invocation's cold start to report
        action()


def _name_of(function: str) -> str:
    """A function name from a name or ARN (``arn:aws:lambda:…:function:NAME[:qualifier]``)."""
    if function.startswith("arn:"):
        return function.split(":")[6]
    return function


def payload_json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))
