"""Warm worker processes per function, held to the function's memory and timeout like Lambda.

A :class:`Sandbox` is one execution environment: a fresh Python process (spawned, never forked
from the engine, whose memory — moto, the interpreter, every other function's data — is not the
function's) running :mod:`stepnet.engine.sandbox` with the function's environment. A
:class:`SandboxPool` holds one function's sandboxes the way Lambda holds containers: an
invocation takes a warm idle one, or starts a cold one if every one is busy (so a Map's
concurrent iterations get one each, and the pool grows to the concurrency the workflow really
reaches); a sandbox that ran out of memory, timed out or crashed is discarded, and the next
invocation starts a cold one.

Limits, as Lambda applies them:

* **Memory** — the sandbox's resident set, the whole process: interpreter, imports and data. While
  an invocation runs, a watchdog thread reads ``/proc/PID/statm`` every :data:`POLL_SECONDS`
  and kills the process with SIGKILL as soon as it is over the function's memory; after the
  invocation the sandbox reports its peak (``VmHWM``, reset before each invocation), which
  catches a peak between two polls: above the memory it fails the invocation too (Lambda would
  have killed it) and the sandbox is discarded.
* **Timeout** — measured from the request to the response; at the function's timeout the
  process is killed.

The machine the sandboxes run on is not Lambda's fleet: a :class:`Host` shared by every pool of
a runtime lets at most :data:`RUNNING_LIMIT` invocations run at once (the others wait their turn
before they start, a wait that is no part of their duration) and keeps at most
:data:`IDLE_LIMIT` idle sandboxes warm across functions, stopping the least recently used first
(Lambda reclaims idle environments too). A Map of 40 shard checks then needs a few sandboxes'
memory, not 40; what each invocation computes is unchanged.

Either way the invocation fails as Lambda reports it (the Invoke API's ``FunctionError`` with
an ``errorType`` and ``errorMessage`` in the payload; ``docs/engine.md`` gives the sources) and
the message adds one stepnet sentence naming the function, its limit and what it used.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from stepnet.engine.sandbox import UNHANDLED, receive_message, send_message

POLL_SECONDS: Final = 0.005  # the memory watchdog's period while an invocation runs
INIT_LIMIT_S: Final = 120.0  # a sandbox that has not imported its handler by then is broken
PAGE_KB: Final = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4
# The CPUs a Lambda sandbox sees (what os.cpu_count() and OpenBLAS's default thread count read),
# by memory: at least 2, up to 6 at 10,240 MB. Its CPU *time* is a share — one vCPU-second per
# second at 1,769 MB — that the engine does not throttle. (AWS documents the 1,769 MB and 6 vCPU
# points; these steps are measured by github.com/rwnx/lambda-cpuinfo.)
VISIBLE_CPUS: Final = ((3008, 2), (5307, 3), (7076, 4), (8845, 5), (10240, 6))

# The host's capacity (:class:`Host`): invocations running at once, idle sandboxes kept warm
RUNNING_LIMIT: Final = max(4, 2 * (os.cpu_count() or 1))
IDLE_LIMIT: Final = 8

OUT_OF_MEMORY: Final = "Runtime.OutOfMemory"
TIMED_OUT: Final = "Sandbox.Timedout"
EXITED: Final = "Runtime.ExitError"

# The parent's variables a sandbox keeps: where programs are, the locale, and whatever steers
# numpy and its BLAS (a pinned OpenBLAS core type, NPY_DISABLE_CPU_FEATURES): the sandboxes must
# compute bit for bit what the reference trainer computes in this process. Nothing else of the
# caller's environment (AWS profiles, test settings) gets in; the thread counts are set below.
PASSED_THROUGH: Final = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
PASSED_THROUGH_PREFIXES: Final = ("OPENBLAS_", "GOTO_", "MKL_", "OMP_", "NPY_")

# A sandbox's variables that are its function's own; the rest its template has (sandboxes of
# functions configured alike share a template).
FUNCTION_VARIABLES: Final = (
    "_HANDLER",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
)

Limit = Literal["memory", "timeout"]
Headers = list[tuple[str, str]]
Transport = Callable[[str, str, Headers, bytes], tuple[int, Mapping[str, str], bytes]]
"""The account's side of the sandboxes' AWS API calls: (method, URL, headers, body) in, (status,
headers, body) out, as the service would answer over HTTP."""


@dataclass(frozen=True)
class SandboxSpec:
    """What a function's sandboxes are started with."""

    function_name: str
    handler: str
    memory_mb: int
    timeout_s: int
    environment: Mapping[str, str] = field(default_factory=dict)  # its configuration's variables
    label: str = ""  # the function's name for people (its logical name), in messages


@dataclass(frozen=True)
class Outcome:
    """One invocation, as the Invoke API returns it and as Lambda's REPORT line measures it."""

    payload: Any
    error: str | None  # FunctionError
    duration_s: float
    max_memory_used_mb: int | None
    exceeded: Limit | None = None  # the limit the invocation went over, if any
    cold: bool = False  # it started a sandbox


def visible_cpus(memory_mb: int) -> int:
    """The CPUs a Lambda sandbox of ``memory_mb`` sees (:data:`VISIBLE_CPUS`)."""
    return next((cpus for limit, cpus in VISIBLE_CPUS if memory_mb <= limit), VISIBLE_CPUS[-1][1])


def blas_threads(memory_mb: int) -> int:
    """numpy's BLAS threads in a sandbox: the CPUs a Lambda of ``memory_mb`` sees, at most this
    machine's, and at most what this process is told (``OPENBLAS_NUM_THREADS``): a sandbox must
    use the thread count the reference trainer uses here, or OpenBLAS's threaded products (a large
    batch, Evaluate's whole data set) round differently."""
    threads = min(visible_cpus(memory_mb), os.cpu_count() or 1)
    told = os.environ.get("OPENBLAS_NUM_THREADS", "")
    return min(threads, int(told)) if told.isdigit() and int(told) > 0 else threads


def sandbox_environment(spec: SandboxSpec, engine: Mapping[str, str]) -> dict[str, str]:
    """A sandbox's variables: the function's configuration, the engine's (region,
    credentials), Lambda's reserved variables, and numpy's BLAS threads
    (:func:`blas_threads`)."""
    threads = str(blas_threads(spec.memory_mb))
    env = {
        key: value
        for key, value in os.environ.items()
        if key in PASSED_THROUGH or key.startswith(PASSED_THROUGH_PREFIXES)
    }
    path = _import_path()
    if path:
        env["PYTHONPATH"] = path
    env |= dict(spec.environment)
    env |= dict(engine)
    env |= {
        "_HANDLER": spec.handler,
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        # hermetic, as a Lambda is: no shared config or credentials files
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "OPENBLAS_NUM_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    return env


def _import_path() -> str:
    """The caller's own import folders (a test run's, a checkout's), so a sandbox imports the
    same code; the interpreter's own folders it finds itself."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    own = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if not any(real == p or real.startswith(p + os.sep) for p in prefixes):
            own.append(real)
    return os.pathsep.join(dict.fromkeys(own))


class SandboxStartError(RuntimeError):
    """A sandbox exited or hung before its handler was imported."""


class _Watchdog:
    """One thread for every busy sandbox of the process: every :data:`POLL_SECONDS` it reads
    each one's resident set and kills any over its function's memory. (One thread, rather than
    each invoking thread polling: the engine's process serves the account and runs the
    interpreter, and every wake-up there costs them the GIL.)"""

    def __init__(self, period: float = POLL_SECONDS) -> None:
        self.period = period
        self._busy: set[Sandbox] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, sandbox: Sandbox) -> None:
        with self._changed:
            self._busy.add(sandbox)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="stepnet-memory-watchdog", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def unwatch(self, sandbox: Sandbox) -> None:
        with self._changed:
            self._busy.discard(sandbox)

    def _run(self) -> None:
        with self._changed:  # checks hold the lock: once unwatch returns, no check kills
            while True:
                while not self._busy:
                    self._changed.wait()
                for sandbox in list(self._busy):
                    sandbox.check_memory()
                self._changed.wait(self.period)  # a new busy sandbox is checked at once


watchdog: Final = _Watchdog()


class _Process:
    """A sandbox's process, started by this process (``subprocess``)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid

    @property
    def alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        if self.alive:
            self._popen.kill()

    def wait(self, timeout: float) -> int | None:
        """The exit code (negative: the signal), or None if still running after ``timeout``."""
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


class _ForkedProcess(_Process):
    """A sandbox's process, forked by a :class:`Template` (its parent): signalled and watched
    through a pidfd, so that a recycled pid is never hit."""

    def __init__(self, pid: int, template: Template) -> None:
        self.pid = pid
        self._template = template
        self._pidfd = os.pidfd_open(pid)
        self._exited = select.poll()
        self._exited.register(self._pidfd, select.POLLIN)
        self._code: int | None = None

    @property
    def alive(self) -> bool:
        return self._code is None and not self._exited.poll(0)

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def wait(self, timeout: float) -> int | None:
        if self._code is None:
            if not self._exited.poll(max(0, int(1000 * timeout))):
                return None
            self._code = self._template.status(self.pid)
            os.close(self._pidfd)
        return self._code


class Template:
    """A spawned process holding a sandbox's imports, from which sandboxes are forked (see
    :mod:`stepnet.engine.sandbox`). One per environment: sandboxes of functions configured
    alike share it."""

    def __init__(self, environment: Mapping[str, str], preload: list[str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = ours
        self._lock = threading.Lock()
        try:
            self._popen = subprocess.Popen(
                [
                    sys.executable, "-P", "-m", "stepnet.engine.sandbox",
                    "--template", str(theirs.fileno()), *preload,
                ],
                env=dict(environment),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            theirs.close()
        ready = select.poll()
        ready.register(ours, select.POLLIN)
        if not ready.poll(1000 * INIT_LIMIT_S) or not self._request(None):
            self.close()
            raise SandboxStartError("the sandbox template did not start")

    def _request(self, message: dict[str, Any] | None, fds: list[int] | None = None) -> Any:
        """Send ``message`` (None: only read) and return the template's answer."""
        if message is not None:
            socket.send_fds(self._control, [json.dumps(message).encode()], fds or [])
        data = self._control.recv(1 << 16)
        return json.loads(data) if data else None

    def fork(self, environment: Mapping[str, str], channel: socket.socket) -> _ForkedProcess:
        with self._lock:
            answer = self._request({"fork": {"environment": dict(environment)}}, [channel.fileno()])
            if not answer:
                raise SandboxStartError("the sandbox template has exited")
            return _ForkedProcess(int(answer["pid"]), self)

    def status(self, pid: int) -> int:
        with self._lock:
            answer = self._request({"status": pid})
        return int(answer["status"]) if answer else 0

    @property
    def alive(self) -> bool:
        return self._popen.poll() is None

    def close(self) -> None:
        self._control.close()
        try:
            self._popen.wait(5)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


class Templates:
    """The templates sandboxes are forked from, one per environment, started when first needed
    (with ``preload``'s modules imported). Where forking is not an option (no pidfd: not Linux)
    sandboxes are spawned instead. (OpenBLAS stops its threads before a fork and starts them
    again after it: a template's BLAS threads do not leak into the forked sandboxes.)"""

    def __init__(self, preload: list[str]) -> None:
        self.preload = list(preload)
        self._templates: dict[frozenset[tuple[str, str]], Template] = {}
        self._lock = threading.Lock()
        self._closed = False

    def for_environment(self, environment: Mapping[str, str]) -> Template | None:
        if not hasattr(os, "pidfd_open"):
            return None
        shared = {k: v for k, v in environment.items() if k not in FUNCTION_VARIABLES}
        key = frozenset(shared.items())
        with self._lock:
            if self._closed:
                raise SandboxStartError("the runtime is closed")
            template = self._templates.get(key)
            if template is None or not template.alive:
                template = self._templates[key] = Template(shared, self.preload)
            return template

    def close(self) -> None:
        with self._lock:
            self._closed = True
            templates, self._templates = list(self._templates.values()), {}
        for template in templates:
            template.close()


class Sandbox:
    """One worker process of one function (start it with :meth:`start`)."""

    def __init__(
        self,
        spec: SandboxSpec,
        engine: Mapping[str, str],
        transport: Transport,
        templates: Templates | None = None,
    ) -> None:
        self.spec = spec
        self.transport = transport
        self.memory_kb = spec.memory_mb * 1024
        environment = sandbox_environment(spec, engine)
        template = None if templates is None else templates.for_environment(environment)
        ours, theirs = socket.socketpair()
        self._channel = ours
        try:
            if template is not None:
                self.process: _Process = template.fork(
                    {key: environment[key] for key in FUNCTION_VARIABLES}, theirs
                )
            else:
                popen = subprocess.Popen(
                    [sys.executable, "-P", "-m", "stepnet.engine.sandbox", str(theirs.fileno())],
                    env=environment,
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                )
                self.process = _Process(popen)
        finally:
            theirs.close()
        self._poll = select.poll()
        self._poll.register(ours, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.init_s = 0.0
        self.peak_kb = 0  # the largest resident set the watchdog saw in this invocation
        self.killed_over_kb: int | None = None  # the resident set it was killed at
        self.stopped = False

    @classmethod
    def start(
        cls,
        spec: SandboxSpec,
        engine: Mapping[str, str],
        transport: Transport,
        templates: Templates | None = None,
    ) -> Sandbox:
        """A sandbox whose init (imports) is done."""
        sandbox = cls(spec, engine, transport, templates)
        ready = sandbox._wait(time.monotonic() + INIT_LIMIT_S)
        if ready is None or not ready.get("ready"):
            sandbox.stop(kill=True)
            raise SandboxStartError(
                f"the sandbox of {spec.function_name} did not start "
                f"(exit status {sandbox.process.wait(5)})"
            )
        sandbox.init_s = float(ready.get("init_s", 0.0))
        return sandbox

    @property
    def alive(self) -> bool:
        """Whether it can take an invocation: not stopped (a killed process may take a moment
        to be gone) and running."""
        return not self.stopped and self.process.alive

    def rss_kb(self) -> int | None:
        """The process's resident set now (Linux), None once it is gone."""
        try:
            with open(f"/proc/{self.process.pid}/statm", "rb") as handle:
                return int(handle.read().split()[1]) * PAGE_KB
        except (OSError, ValueError, IndexError):
            return None

    def check_memory(self) -> None:
        """The watchdog's check: kill the process if it is over the function's memory."""
        rss = self.rss_kb()
        if rss is None:
            return
        self.peak_kb = max(self.peak_kb, rss)
        if rss > self.memory_kb and self.killed_over_kb is None:
            self.killed_over_kb = rss
            self.stopped = True
            self.process.kill()

    def invoke(self, request_id: str, event: Any, delay_s: float = 0.0) -> Outcome:
        """Run one invocation, enforcing the function's memory and timeout."""
        spec = self.spec
        started = time.monotonic()
        self.peak_kb, self.killed_over_kb = 0, None
        watchdog.watch(self)
        try:
            response, timed_out = self._exchange(
                {
                    "request_id": request_id,
                    "event": event,
                    "timeout_s": spec.timeout_s,
                    "delay_s": delay_s,
                },
                started + spec.timeout_s,
            )
        finally:
            watchdog.unwatch(self)
        duration = time.monotonic() - started
        if self.killed_over_kb is not None:
            self.stop(kill=True)
            return self._out_of_memory(request_id, started, self.killed_over_kb)
        if timed_out:
            self.stop(kill=True)
            return Outcome(
                timed_out_payload(request_id, spec, duration),
                UNHANDLED,
                duration,
                _mb(self.peak_kb) if self.peak_kb else None,
                exceeded="timeout",
            )
        if response is None:
            return self._exited(request_id, started)
        peak_kb = max(self.peak_kb, int(response.get("max_rss_kb") or 0))
        if peak_kb > self.memory_kb:  # a peak between two polls: Lambda would have killed it
            self.stop(kill=True)
            return self._out_of_memory(request_id, started, peak_kb)
        return Outcome(
            response["payload"],
            response["error"],
            float(response["duration_s"]),
            _mb(peak_kb),
        )

    def _exchange(
        self, request: dict[str, Any], deadline: float
    ) -> tuple[dict[str, Any] | None, bool]:
        """Send the invocation, serve the AWS API calls it makes, and return its result before
        ``deadline``: (result or None if the process is gone, whether the deadline passed)."""
        try:
            send_message(self._channel, {"invoke": request})
            while (remaining := deadline - time.monotonic()) > 0:
                if not self._poll.poll(max(1, math.ceil(1000 * remaining))):
                    continue
                received = receive_message(self._channel)
                if received is None:
                    return None, False
                message, blob = received
                if "result" in message:
                    result: dict[str, Any] = message["result"]
                    return result, False
                call = message["aws"]
                headers = [(str(k), str(v)) for k, v in call["headers"]]
                status, answer_headers, body = self.transport(
                    call["method"], call["url"], headers, blob
                )
                send_message(
                    self._channel, {"status": status, "headers": dict(answer_headers)}, body
                )
        except OSError:
            return None, False
        return None, True

    def _out_of_memory(self, request_id: str, started: float, used_kb: int) -> Outcome:
        used_mb = _mb(used_kb)
        return Outcome(
            out_of_memory_payload(request_id, self.spec, used_mb),
            UNHANDLED,
            time.monotonic() - started,
            used_mb,
            exceeded="memory",
        )

    def _exited(self, request_id: str, started: float) -> Outcome:
        code = self.process.wait(5)
        self.stop(kill=True)
        return Outcome(
            exited_payload(request_id, code),
            UNHANDLED,
            time.monotonic() - started,
            None,
        )

    def _wait(self, deadline: float) -> dict[str, Any] | None:
        while time.monotonic() < deadline:
            if self._poll.poll(100):
                try:
                    received = receive_message(self._channel)
                except OSError:
                    return None
                return None if received is None else received[0]
            if not self.alive:
                return None
        return None

    def stop(self, *, kill: bool = False) -> None:
        """End the process: closing the channel ends its loop; ``kill`` does not wait for it."""
        self.stopped = True
        if kill:
            self.process.kill()
        self._channel.close()

    def reap(self, timeout: float = 5.0) -> None:
        if self.process.wait(timeout) is None:
            self.process.kill()
            self.process.wait(timeout)


class Host:
    """What the sandboxes of one runtime share (module docstring): at most ``running``
    invocations at once, at most ``idle`` idle sandboxes, the least recently used stopped first.

    Locks: a pool takes its own lock, then the host's (:meth:`taken`); the host never holds its
    lock while it takes a pool's (:meth:`parked` returns what to stop)."""

    def __init__(self, running: int = RUNNING_LIMIT, idle: int = IDLE_LIMIT) -> None:
        if running < 1 or idle < 0:
            raise ValueError(
                f"a host runs at least 1 invocation, got running={running}, idle={idle}"
            )
        self.slots = threading.BoundedSemaphore(running)
        self.idle_limit = idle
        self._idle: OrderedDict[Sandbox, SandboxPool] = OrderedDict()
        self._lock = threading.Lock()

    def parked(self, sandbox: Sandbox, pool: SandboxPool) -> list[tuple[Sandbox, SandboxPool]]:
        """``sandbox`` is idle in ``pool``: returns the idle sandboxes beyond the limit (least
        recently used first), no longer counted, for their pools to stop."""
        with self._lock:
            self._idle[sandbox] = pool
            evicted = []
            while len(self._idle) > self.idle_limit:
                evicted.append(self._idle.popitem(last=False))
            return evicted

    def taken(self, sandbox: Sandbox) -> None:
        """``sandbox`` is no longer idle (invoked, or gone)."""
        with self._lock:
            self._idle.pop(sandbox, None)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


class SandboxPool:
    """One function's sandboxes: warm ones reused, cold ones started on demand."""

    def __init__(
        self,
        spec: SandboxSpec,
        engine: Mapping[str, str],
        transport: Transport,
        templates: Templates | None = None,
        host: Host | None = None,
    ) -> None:
        self.spec = spec
        self.engine = dict(engine)
        self.transport = transport
        self.templates = templates
        self.host = host or Host()
        self._idle: list[Sandbox] = []
        self._all: set[Sandbox] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.cold_starts = 0

    def invoke(self, request_id: str, event: Any, delay_s: float = 0.0) -> Outcome:
        with self.host.slots:  # the host's turn first: waiting is no part of the duration
            sandbox, cold = self._acquire()
            try:
                outcome = sandbox.invoke(request_id, event, delay_s)
            finally:
                self._release(sandbox)
        if cold:
            return Outcome(
                outcome.payload,
                outcome.error,
                outcome.duration_s,
                outcome.max_memory_used_mb,
                outcome.exceeded,
                cold=True,
            )
        return outcome

    def prewarm(self) -> None:
        """Start one sandbox now (for an invocation that will come)."""
        self._release(self._start())

    def _acquire(self) -> tuple[Sandbox, bool]:
        with self._lock:
            while self._idle:
                sandbox = self._idle.pop()  # the most recently used: the warmest
                self.host.taken(sandbox)
                if sandbox.alive:
                    return sandbox, False
                self._all.discard(sandbox)
        return self._start(), True

    def _start(self) -> Sandbox:
        sandbox = Sandbox.start(self.spec, self.engine, self.transport, self.templates)
        with self._lock:
            self.cold_starts += 1
            self._all.add(sandbox)
            if self._closed:
                sandbox.stop(kill=True)
        return sandbox

    def _release(self, sandbox: Sandbox) -> None:
        with self._lock:
            kept = sandbox.alive and not self._closed
            if kept:
                self._idle.append(sandbox)
            else:
                self._all.discard(sandbox)
        if not kept:
            sandbox.stop(kill=True)
            sandbox.reap()  # outside the lock: the pool's other sandboxes need not wait for it
            return
        for evicted, pool in self.host.parked(sandbox, self):
            pool._reclaim(evicted)

    def _reclaim(self, sandbox: Sandbox) -> None:
        """Stop ``sandbox`` if it is still idle here (the host chose it; it may have been
        taken for an invocation meanwhile, and then stays)."""
        with self._lock:
            if sandbox not in self._idle:
                return
            self._idle.remove(sandbox)
            self._all.discard(sandbox)
        sandbox.stop()
        sandbox.reap()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sandboxes, self._all, self._idle = list(self._all), set(), []
            for sandbox in sandboxes:
                self.host.taken(sandbox)
        for sandbox in sandboxes:
            sandbox.stop()
        for sandbox in sandboxes:
            sandbox.reap()


# --- what Lambda reports --------------------------------------------------------------------------


def _mb(kb: int) -> int:
    return math.ceil(kb / 1024)


def _who(spec: SandboxSpec) -> str:
    return f"function {spec.function_name}" + (f" ({spec.label})" if spec.label else "")


def out_of_memory_payload(request_id: str, spec: SandboxSpec, used_mb: int) -> dict[str, Any]:
    """Lambda's payload for a sandbox killed over its memory, and what stepnet saw."""
    return {
        "errorType": OUT_OF_MEMORY,
        "errorMessage": (
            f"RequestId: {request_id} Error: Runtime exited with error: signal: killed. "
            f"stepnet: {_who(spec)} ran out of memory: Max Memory Used {used_mb} MB "
            f"> Memory Size {spec.memory_mb} MB."
        ),
    }


def timed_out_payload(request_id: str, spec: SandboxSpec, duration_s: float) -> dict[str, Any]:
    """Lambda's payload for an invocation stopped at its timeout, and what stepnet saw."""
    return {
        "errorType": TIMED_OUT,
        "errorMessage": (
            f"RequestId: {request_id} Error: Task timed out after {spec.timeout_s:.2f} seconds. "
            f"stepnet: {_who(spec)} was stopped at its timeout: Duration {duration_s:.2f} s "
            f">= Timeout {spec.timeout_s} s."
        ),
    }


def exited_payload(request_id: str, returncode: int | None) -> dict[str, Any]:
    """Lambda's payload for a runtime that exited during an invocation."""
    if returncode is not None and returncode < 0:
        how = f"signal: {_SIGNAL_NAMES.get(-returncode, str(-returncode))}"
    else:
        how = f"exit status {returncode}"
    return {
        "errorType": EXITED,
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {how}",
    }


_SIGNAL_NAMES: Final[dict[int, str]] = {  # as Lambda's runtime (Go) prints them
    int(signal.SIGKILL): "killed",
    int(signal.SIGSEGV): "segmentation fault",
    int(signal.SIGABRT): "aborted",
    int(signal.SIGTERM): "terminated",
    int(signal.SIGBUS): "bus error",
}
