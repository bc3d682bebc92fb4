"""Handlers for the runtime's own tests (tests/engine/test_limits.py): each does one thing a
Lambda sandbox must survive or be stopped for. They run in the engine's worker processes."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

_held: list[np.ndarray] = []
REPORTED = (
    "_HANDLER",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "OPENBLAS_NUM_THREADS",
    "AWS_PROFILE",
    "STEPNET_TEST_VARIABLE",
)


def hold(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allocate and touch ``mb`` MB (kept until the next call), report who ran it."""
    _held.clear()
    if event.get("mb"):
        _held.append(np.ones(int(event["mb"]) * 2**20, dtype=np.uint8))
    return {
        "pid": os.getpid(),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "environment": {key: os.environ.get(key) for key in REPORTED},
    }


def spike(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Touch ``mb`` MB and free them before returning: only the peak tells."""
    block = np.ones(int(event["mb"]) * 2**20, dtype=np.uint8)
    total = int(block[:: 2**20].sum())
    del block
    return {"touched_mb": total}


def sleep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"]}


def exit_with(event: dict[str, Any], context: Any) -> dict[str, Any]:
    os._exit(int(event["status"]))


def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError(f"bad input: {event.get('x')}")


def unserializable(event: dict[str, Any], context: Any) -> Any:
    return {"array": np.zeros(2)}


def span(event: dict[str, Any], context: Any) -> dict[str, float]:
    """Sleep ``seconds``; report when it started and ended (wall clock, shared by processes)."""
    started = time.time()
    time.sleep(float(event["seconds"]))
    return {"started": started, "ended": time.time()}


CALLS: list[str] = []  # what `count` was called with (threads isolation: this process)


def count(event: dict[str, Any], context: Any) -> dict[str, int]:
    """Record the call (an effect a retry would repeat); report how many there were."""
    CALLS.append(str(event.get("tag")))
    return {"calls": len(CALLS)}


def store_of(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The store the handlers get here, and whether anything of moto was loaded."""
    import sys

    from trainer import settings

    store = settings.store()
    return {
        "store": f"{type(store).__module__}.{type(store).__name__}",
        "moto_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "moto"),
    }
