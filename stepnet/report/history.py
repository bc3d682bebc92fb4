"""Execution histories read for a report: which states ran, how often and for how long, and the
Lambda tasks each function ran.

An event is one item of ``get_execution_history`` (``id``, ``previousEventId``, ``type``,
``timestamp``, ``<type>EventDetails``), as boto3 returns it (``timestamp`` a ``datetime``) or as
``stepnet local`` saves it (``executions/*.json``: the same events, the timestamp an ISO string).

Events of parallel Map iterations interleave, but each names the event before it in its own
iteration (``previousEventId``), so a state's exit is paired with its entry, and a task's end
with its start, by walking back along that chain; nothing here knows a state by its name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

HistoryEvent = dict[str, Any]

_TASK_ENDS: Final = {  # the end of a Lambda task -> (its start, its scheduling)
    "TaskSucceeded": ("TaskStarted", "TaskScheduled"),
    "TaskFailed": ("TaskStarted", "TaskScheduled"),
    "TaskTimedOut": ("TaskStarted", "TaskScheduled"),
    "LambdaFunctionSucceeded": ("LambdaFunctionStarted", "LambdaFunctionScheduled"),
    "LambdaFunctionFailed": ("LambdaFunctionStarted", "LambdaFunctionScheduled"),
    "LambdaFunctionTimedOut": ("LambdaFunctionStarted", "LambdaFunctionScheduled"),
}
_MAX_WALK: Final = 100_000  # longer than any history (25,000 events)


def seconds(value: Any) -> float:
    """An event's timestamp in seconds since the epoch (a ``datetime`` or an ISO 8601 string)."""
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event's ``…EventDetails`` (empty if it has none)."""
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            return value
    return {}


def state_name(event: Mapping[str, Any]) -> str | None:
    """The state a ``…StateEntered`` / ``…StateExited`` event is about."""
    if event["type"].endswith(("StateEntered", "StateExited")):
        name = details(event).get("name")
        return None if name is None else str(name)
    return None


@dataclass
class StateStats:
    """How often one state was entered and how long its exited visits took in all, seconds."""

    entered: int = 0
    seconds: float = 0.0

    def __add__(self, other: StateStats) -> StateStats:
        return StateStats(self.entered + other.entered, self.seconds + other.seconds)


def state_stats(events: Sequence[HistoryEvent]) -> dict[str, StateStats]:
    """Per state name: entries, and Σ (exit − entry) over its visits that ended."""
    by_id = {event["id"]: event for event in events}
    stats: dict[str, StateStats] = {}
    for event in events:
        name = state_name(event)
        if name is None:
            continue
        if event["type"].endswith("StateEntered"):
            stats.setdefault(name, StateStats()).entered += 1
            continue
        entered = _walk_back(by_id, event, lambda e, n=name: _is_entry_of(e, n))
        if entered is not None:
            stats.setdefault(name, StateStats()).seconds += seconds(event["timestamp"]) - seconds(
                entered["timestamp"]
            )
    return stats


def _is_entry_of(event: Mapping[str, Any], name: str) -> bool:
    return bool(event["type"].endswith("StateEntered") and state_name(event) == name)


def _walk_back(
    by_id: Mapping[int, HistoryEvent], event: Mapping[str, Any], found: Any
) -> HistoryEvent | None:
    current = by_id.get(event.get("previousEventId", 0))
    for _ in range(_MAX_WALK):
        if current is None:
            return None
        if found(current):
            return current
        current = by_id.get(current.get("previousEventId", 0))
    return None


@dataclass(frozen=True)
class LambdaTask:
    """One Lambda invocation a Task state made: the function's name as invoked (a name or an
    ARN), how it ended, and its duration as Step Functions saw it (started → ended), seconds."""

    function: str
    status: str  # the ending event's type: TaskSucceeded, TaskFailed, …
    seconds: float


def lambda_tasks(events: Sequence[HistoryEvent]) -> list[LambdaTask]:
    """Every Lambda task of the history that ended, in order of ending."""
    by_id = {event["id"]: event for event in events}
    tasks = []
    for event in events:
        kinds = _TASK_ENDS.get(event["type"])
        if kinds is None or not _is_lambda(event):
            continue
        started = by_id.get(event.get("previousEventId", 0))
        if started is None or started["type"] != kinds[0]:
            continue
        scheduled = by_id.get(started.get("previousEventId", 0))
        if scheduled is None or scheduled["type"] != kinds[1]:
            continue
        tasks.append(
            LambdaTask(
                function=_function_of(scheduled),
                status=event["type"],
                seconds=seconds(event["timestamp"]) - seconds(started["timestamp"]),
            )
        )
    return tasks


def _is_lambda(event: Mapping[str, Any]) -> bool:
    return event["type"].startswith("LambdaFunction") or details(event).get("resourceType") == (
        "lambda"
    )


def _function_of(scheduled: Mapping[str, Any]) -> str:
    info = details(scheduled)
    if "resource" in info and scheduled["type"].startswith("LambdaFunction"):
        return str(info["resource"])
    try:
        parameters = json.loads(info.get("parameters") or "{}")
    except json.JSONDecodeError:
        return "?"
    return str(parameters.get("FunctionName", "?"))


def logical_function(invoked: str, logical_names: Iterable[str]) -> str:
    """The logical name (``Forward``) of a function invoked as a name or ARN
    (``arn:aws:lambda:…:function:stepnet-Forward``, ``stepnet-Forward:live``): the longest
    ``<prefix>-<logical>`` it ends with, else the name itself."""
    parts = invoked.split(":")
    name = parts[parts.index("function") + 1] if "function" in parts else parts[0]
    matches = [logical for logical in logical_names if name.endswith(f"-{logical}")]
    return max(matches, key=len) if matches else name


def billed_ms(duration_s: float) -> int:
    """Lambda's billed duration of one invocation: rounded up to the millisecond, at least 1."""
    return max(1, math.ceil(duration_s * 1000 - 1e-6))


def failure(events: Sequence[HistoryEvent]) -> tuple[str, str] | None:
    """``(error, cause)`` of a history that ended Failed, TimedOut or Aborted, else None."""
    for event in reversed(events):
        if event["type"] in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            info = details(event)
            return str(info.get("error", event["type"])), str(info.get("cause", ""))
    return None


def wall_seconds(events: Sequence[HistoryEvent]) -> float:
    """From the history's first event to its last."""
    if not events:
        return 0.0
    return seconds(events[-1]["timestamp"]) - seconds(events[0]["timestamp"])


def execution_input(events: Sequence[HistoryEvent]) -> dict[str, Any]:
    """The input the execution was started with (``ExecutionStarted``), parsed."""
    for event in events:
        if event["type"] == "ExecutionStarted":
            try:
                parsed = json.loads(details(event).get("input") or "{}")
            except json.JSONDecodeError:
                return {}
            return parsed if isinstance(parsed, dict) else {}
    return {}
