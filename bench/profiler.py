"""Where the local engine's CPU time goes, across all its threads.

The local engine runs the ASL interpreter, the Map iterations and the handlers in many threads
of one process (a new thread per Task state), so ``cProfile`` (one thread) cannot say where the
time goes. :class:`CpuSampler` measures the process's CPU and the handlers' CPU exactly and
splits each by stack samples: every few milliseconds it reads each thread's CPU time from
Linux's ``/proc/self/task/<tid>/schedstat`` and charges what the thread used since the last
sample to what its Python stack is doing now. Threads waiting for the GIL, a lock or a sleep use
no CPU and are charged nothing. Categories are decided from the stack (see :func:`classify`).

On systems without ``/proc`` (macOS) only the exact totals are reported.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

HANDLER_MARK = os.path.join("stepnet", "engine", "runtime.py")
_SELF = "bench/profiler.py"

# (category, path fragments) in the order they are tried, innermost frame first.
_HANDLER_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("handler: store emulation (moto DynamoDB/S3)", ("/moto/",)),
    ("handler: boto3/botocore client", ("/botocore/", "/boto3/", "/urllib3/")),
    (
        "handler: tensor encode/decode + sha256",
        ("trainer/store/codec.py", "/zipfile", "/hashlib"),
    ),
    ("handler: numpy math (trainer.nn)", ("trainer/nn/", "trainer/training/")),
    (
        "handler: event validation + logging",
        ("/pydantic", "/aws_lambda_powertools/", "/logging/", "/json/"),
    ),
    ("handler: store, state and schedule code", ("/trainer/",)),
)
# Outside handlers, by the outermost part of the engine the stack belongs to.
_OUTSIDE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("client: polling, history download", ("stepnet/client.py", "stepnet/local.py")),
    (
        "ASL interpreter (moto Step Functions, its API calls)",
        ("/moto/stepfunctions/", "stepnet/engine/patches"),
    ),
    ("AWS API emulation, other", ("/moto/", "/botocore/", "/werkzeug/", "/urllib3/")),
    ("bench (metering)", ("bench/", "stepnet/billing/")),
)
HANDLER_OTHER = "handler: other"
OTHER = "other"


def _frames(frame: FrameType | None) -> list[FrameType]:
    stack = []
    while frame is not None:
        stack.append(frame)
        frame = frame.f_back
    return stack


def classify(frame: FrameType | None) -> str:
    """The category of a thread's current stack: inside a Lambda handler (below
    ``LambdaRuntime.invoke``) the innermost recognised layer; outside, the part of the engine
    that is running (the client, the ASL interpreter, …) whatever it calls."""
    stack = _frames(frame)
    files = [f.f_code.co_filename.replace("\\", "/") for f in stack]
    files = [name for name in files if not name.endswith(_SELF)]  # the thread-exit hook
    in_handler = any(name.endswith(HANDLER_MARK.replace("\\", "/")) for name in files)
    if in_handler:
        for name in files:  # innermost first: the layer doing the work
            for category, fragments in _HANDLER_RULES:
                if any(fragment in name for fragment in fragments):
                    return category
        return HANDLER_OTHER
    for category, fragments in _OUTSIDE_RULES:  # the part of the engine that made the call
        if any(fragment in name for name in files for fragment in fragments):
            return category
    return OTHER


def _where(frame: FrameType | None) -> str:
    """``package/module.py:function`` of the innermost frame, for the hot-spot list."""
    if frame is None:
        return "?"
    parts = Path(frame.f_code.co_filename).parts[-2:]
    return f"{'/'.join(parts)}:{frame.f_code.co_name}"


def _cpu_ns(native_id: int) -> int | None:
    try:
        with open(f"/proc/self/task/{native_id}/schedstat", "rb") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CpuSampler:
    """Where the CPU goes: exact totals, sampled proportions.

    Exact: the process's CPU time (``time.process_time``) and the CPU time spent inside Lambda
    handlers (each invocation's ``time.thread_time`` delta, from a hook of the account's
    ``LambdaRuntime``: :meth:`attach`); the rest is the engine around them. Sampled: every
    ``interval`` seconds each thread's CPU since the last sample (Linux schedstat) is charged to
    what its stack is doing; these samples give the proportions *within* the handlers' and the
    engine's exact totals (the interpreter runs each Task in a short-lived thread, whose last
    slice no sample sees).
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.available = _cpu_ns(threading.get_native_id()) is not None
        self.categories: defaultdict[str, float] = defaultdict(float)  # sampled CPU seconds
        self.hot: defaultdict[str, float] = defaultdict(float)  # … by innermost frame
        self.samples = 0
        self.wall = 0.0
        self.own_cpu = 0.0
        self.process_cpu = 0.0
        self.handler_cpu = 0.0
        self.handler_wall = 0.0
        self.handler_calls = 0
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._process_started = 0.0
        self._lock = threading.Lock()
        self._running = False
        self._category: dict[int, str] = {}  # native thread id -> its last sampled category
        self._original_run: Any = None

    def attach(self, runtime: Any) -> None:
        """Measure the CPU each handler invocation uses (a hook of ``runtime``)."""
        runtime.hooks.append(self._invocation)

    @contextmanager
    def _invocation(self, function_name: str) -> Iterator[None]:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            yield
        finally:
            if self._running:
                with self._lock:
                    self.handler_cpu += time.thread_time() - cpu
                    self.handler_wall += time.perf_counter() - wall
                    self.handler_calls += 1

    @property
    def started(self) -> bool:
        return self._started > 0

    def start(self) -> CpuSampler:
        self._started = time.perf_counter()
        self._process_started = time.process_time()
        self._running = True
        if self.available:
            for thread in threading.enumerate():  # charge only CPU used from now on
                if thread.native_id is not None:
                    self._last[thread.native_id] = _cpu_ns(thread.native_id) or 0
            self._patch_thread_exit()
            self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
            self._thread.start()
        return self

    def _patch_thread_exit(self) -> None:
        """Charge a thread's last slice when it ends (the interpreter runs each Task state in a
        thread of its own, usually shorter than a few samples)."""
        original = self._original_run = threading.Thread.run
        sampler = self

        def run(self: threading.Thread) -> None:
            target = getattr(self, "_target", None)
            try:
                original(self)
            finally:
                if sampler._running:
                    sampler._thread_exit(threading.get_native_id(), target)

        threading.Thread.run = run  # type: ignore[method-assign]

    def _thread_exit(self, native: int, target: Any) -> None:
        now = _cpu_ns(native)
        if now is None:
            return
        with self._lock:
            before = self._last.get(native, 0)
            self._last[native] = now
            if now <= before:
                return
            category = self._category.get(native)
            if category is None:
                module = str(getattr(target, "__module__", ""))
                category = (
                    _OUTSIDE_RULES[1][0] if module.startswith("moto.stepfunctions") else OTHER
                )
            self.categories[category] += (now - before) / 1e9

    def stop(self) -> None:
        """Stop measuring (idempotent)."""
        if self._stop.is_set():
            return
        self._running = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._original_run is not None:
            threading.Thread.run = self._original_run  # type: ignore[method-assign]
        self.wall = time.perf_counter() - self._started
        self.process_cpu = time.process_time() - self._process_started

    def _run(self) -> None:
        me = threading.get_ident()
        own_start = time.thread_time()
        while not self._stop.wait(self.interval):
            self._sample(me)
        self.own_cpu = time.thread_time() - own_start

    def _sample(self, me: int) -> None:
        frames = sys._current_frames()
        self.samples += 1
        for thread in threading.enumerate():
            ident, native = thread.ident, thread.native_id
            if ident is None or native is None or ident == me:
                continue
            frame = frames.get(ident)
            if frame is not None and frame.f_code.co_filename.replace("\\", "/").endswith(_SELF):
                continue  # ending: its exit hook charges the rest
            category = classify(frame)
            with self._lock:
                now = _cpu_ns(native)
                if now is None:
                    continue
                before = self._last.get(native, 0)  # a new thread: all its CPU so far
                self._last[native] = now
                self._category[native] = category
                if now <= before:
                    continue
                seconds = (now - before) / 1e9
                self.categories[category] += seconds
                self.hot[_where(frame)] += seconds

    def summary(self, top: int = 12) -> dict[str, Any]:
        """CPU seconds by category (exact handler / engine totals, split by the samples' shares),
        the hottest innermost frames, and CPU per wall second."""
        total = max(0.0, self.process_cpu - self.own_cpu)
        handler = min(self.handler_cpu, total)
        groups = {
            "handler": (
                handler,
                {c: v for c, v in self.categories.items() if c.startswith("handler")},
            ),
            "engine": (
                total - handler,
                {c: v for c, v in self.categories.items() if not c.startswith("handler")},
            ),
        }
        categories: defaultdict[str, float] = defaultdict(float)
        for group, (exact, sampled) in groups.items():
            weight = sum(sampled.values())
            if weight <= 0:
                categories[f"{group}: not sampled"] += exact
                continue
            for name, value in sampled.items():
                categories[name] += exact * value / weight
        share = total or 1.0
        hot_total = sum(self.hot.values()) or 1.0
        return {
            "available": self.available,
            "interval_seconds": self.interval,
            "samples": self.samples,
            "wall_seconds": self.wall,
            "process_cpu_seconds": total,
            "handler_cpu_seconds": handler,
            "handler_wall_seconds": self.handler_wall,
            "handler_calls": self.handler_calls,
            "cpu_per_wall": total / self.wall if self.wall else 0.0,
            "sampler_cpu_seconds": self.own_cpu,
            "categories": [
                {"category": name, "cpu_seconds": seconds, "share": seconds / share}
                for name, seconds in _largest_first(categories)
            ],
            "hot_frames": [
                {"frame": name, "sampled_share": seconds / hot_total}
                for name, seconds in _largest_first(self.hot)[:top]
            ],
        }


def _largest_first(seconds: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(seconds.items(), key=lambda item: -item[1])
