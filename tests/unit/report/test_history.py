"""Execution histories read for the report: visits paired along their own iteration's chain,
Lambda tasks with their function and duration, the failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stepnet.report.history import (
    billed_ms,
    failure,
    lambda_tasks,
    logical_function,
    seconds,
    state_stats,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(id_: int, prev: int, type_: str, ms: int, **details: Any) -> dict[str, Any]:
    key = {
        "Entered": "stateEnteredEventDetails",
        "Exited": "stateExitedEventDetails",
    }.get(type_[-7:].replace("State", ""), f"{type_[0].lower()}{type_[1:]}EventDetails")
    return {"id": id_, "previousEventId": prev, "type": type_,
            "timestamp": T0 + timedelta(milliseconds=ms), key: details}  # fmt: skip


def _scheduled(id_: int, prev: int, ms: int, function: str) -> dict[str, Any]:
    parameters = json.dumps({"FunctionName": function, "Payload": {}})
    return _event(id_, prev, "TaskScheduled", ms, resourceType="lambda", parameters=parameters)


def test_interleaved_iterations_are_paired_along_their_chains() -> None:
    # Given two Map iterations of one Task state, interleaved: A runs 0→30 ms, B 10→15 ms
    events = [
        _event(1, 0, "MapIterationStarted", 0, name="Map"),
        _event(2, 0, "MapIterationStarted", 0, name="Map"),
        _event(3, 1, "TaskStateEntered", 0, name="Work"),
        _event(4, 2, "TaskStateEntered", 10, name="Work"),
        _scheduled(5, 3, 1, "arn:aws:lambda:us-east-1:1:function:stack-Forward"),
        _scheduled(6, 4, 11, "stack-Backward"),
        _event(7, 5, "TaskStarted", 2, resourceType="lambda"),
        _event(8, 6, "TaskStarted", 11, resourceType="lambda"),
        _event(9, 8, "TaskSucceeded", 14, resourceType="lambda"),
        _event(10, 9, "TaskStateExited", 15, name="Work"),
        _event(11, 7, "TaskFailed", 29, resourceType="lambda"),
        _event(12, 11, "TaskStateExited", 30, name="Work"),
    ]

    # When
    stats = state_stats(events)
    tasks = lambda_tasks(events)

    # Then the state's two visits add up: 30 ms + 5 ms
    assert stats["Work"].entered == 2
    assert stats["Work"].seconds == pytest.approx(0.035, abs=1e-6)
    # and each task is its own function's, timed from its start to its end
    assert [(t.function.split(":")[-1], t.status, round(t.seconds, 3)) for t in tasks] == [
        ("stack-Backward", "TaskSucceeded", 0.003),
        ("stack-Forward", "TaskFailed", 0.027),
    ]


def test_a_visit_without_an_exit_counts_but_adds_no_time() -> None:
    # Given a state entered and still running
    events = [_event(1, 0, "TaskStateEntered", 0, name="Slow")]

    # When / Then
    assert state_stats(events)["Slow"].entered == 1
    assert state_stats(events)["Slow"].seconds == 0


def test_logical_names_billed_ms_timestamps_and_failures() -> None:
    # Given / When / Then: the longest <prefix>-<logical> a name or an ARN ends with
    known = ["Evaluate", "EvaluateShards", "Plan"]
    assert logical_function("arn:aws:lambda:r:1:function:my-stack-EvaluateShards", known) == (
        "EvaluateShards"
    )
    assert logical_function("my-stack-Plan:live", known) == "Plan"
    assert logical_function("other", known) == "other"
    # Lambda bills each invocation rounded up to 1 ms, at least 1
    assert [billed_ms(s) for s in (0.0, 0.0004, 0.034, 0.0341)] == [1, 1, 34, 35]
    # a saved timestamp (ISO text) reads as boto3's datetime does
    assert seconds("2026-01-01T00:00:00.250Z") == seconds(T0 + timedelta(milliseconds=250))
    # the failure is the history's ending event's
    ended = [{"id": 1, "type": "ExecutionFailed", "previousEventId": 0, "timestamp": T0,
              "executionFailedEventDetails": {"error": "E", "cause": "why"}}]  # fmt: skip
    assert failure(ended) == ("E", "why")
    assert failure([]) is None
