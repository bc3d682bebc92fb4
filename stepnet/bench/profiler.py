"""Where the local engine's CPU time goes, across all its threads.

The local engine runs the ASL interpreter, the Map iterations and the handlers in many threads
of one process, so ``cProfile`` (one thread) cannot say where the time goes. This sampler wakes
every few milliseconds, reads each thread's CPU time from Linux's ``/proc/self/task/<tid>/
schedstat`` (nanoseconds on the CPU) and charges the CPU a thread used since the last sample to
what its Python stack is doing now: threads waiting for the GIL, a lock or a sleep use no CPU
and are charged nothing. Categories are decided from the stack (see :func:`classify`).

On systems without ``/proc`` (macOS) the profile is empty and says so.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

HANDLER_MARK = os.path.join("stepnet", "engine", "runtime.py")

# (category, path fragments) in the order they are tried, innermost frame first.
_HANDLER_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("handler: store emulation (moto DynamoDB/S3)", ("/moto/",)),
    ("handler: boto3/botocore client", ("/botocore/", "/boto3/", "/urllib3/")),
    (
        "handler: tensor encode/decode + sha256",
        ("trainer/store/codec.py", "/zipfile", "/hashlib"),
    ),
    ("handler: numpy math (trainer.nn)", ("trainer/nn/", "trainer/training.py")),
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
    ("bench (profiler, metering)", ("stepnet/bench/", "stepnet/metering.py")),
)
HANDLER_OTHER = "handler: other"
UNSAMPLED = "unattributed (threads that ended between samples)"
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
    """A background thread charging each thread's CPU time to what its stack is doing."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.available = _cpu_ns(threading.get_native_id()) is not None
        self.categories: Counter[str] = Counter()  # CPU seconds
        self.hot: Counter[str] = Counter()  # CPU seconds by innermost frame
        self.samples = 0
        self.wall = 0.0
        self.own_cpu = 0.0
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._process_started = 0.0
        self.process_cpu = 0.0

    def start(self) -> CpuSampler:
        self._started = time.perf_counter()
        self._process_started = time.process_time()
        if self.available:
            for thread in threading.enumerate():  # charge only CPU used from now on
                if thread.native_id is not None:
                    self._last[thread.native_id] = _cpu_ns(thread.native_id) or 0
            self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
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
            now = _cpu_ns(native)
            if now is None:
                continue
            before = self._last.get(native, 0)  # a new thread: all its CPU so far
            self._last[native] = now
            if now <= before:
                continue
            seconds = (now - before) / 1e9
            frame = frames.get(ident)
            self.categories[classify(frame)] += seconds
            self.hot[_where(frame)] += seconds

    def summary(self, top: int = 12) -> dict[str, Any]:
        """CPU seconds and shares by category, the hottest innermost frames, the utilisation."""
        if not self.available:
            return {"available": False, "reason": "no /proc/self/task/*/schedstat on this system"}
        # CPU of threads that ended between two samples (their last slice) is not attributed
        categories = Counter(self.categories)
        unsampled = self.process_cpu - self.own_cpu - sum(categories.values())
        if unsampled > 0:
            categories[UNSAMPLED] += unsampled
        total = sum(categories.values()) or 1.0
        return {
            "available": True,
            "interval_seconds": self.interval,
            "samples": self.samples,
            "wall_seconds": self.wall,
            "cpu_seconds": sum(categories.values()),
            "process_cpu_seconds": self.process_cpu,
            "cpu_per_wall": sum(categories.values()) / self.wall if self.wall else 0.0,
            "sampler_cpu_seconds": self.own_cpu,
            "categories": [
                {"category": name, "cpu_seconds": seconds, "share": seconds / total}
                for name, seconds in categories.most_common()
            ],
            "hot_frames": [
                {"frame": name, "cpu_seconds": seconds, "share": seconds / total}
                for name, seconds in self.hot.most_common(top)
            ],
        }
