"""Every Task in the shipped ASL files retries transient errors the same way and is caught into a
Fail state with a readable cause (its own Catch, or the Catch of the Map it runs in: a Catch
inside a Map iteration could only end that iteration, not the run). In the Training machine the
way to the Fail goes through "Mark run failed" (the run's record says FAILED), whose own failure
cannot replace the original cause."""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from trainer.contract.statemachines import STATE_MACHINES, definition_text
from trainer.training.divergence import DIVERGED, DIVERGENCE_ERROR, DivergenceError

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
START_EXECUTION = "arn:aws:states:::states:startExecution"
# AWS's recommended retry for Lambda tasks (the transient errors of the Lambda service).
TRANSIENT_LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
}
# Starting a child execution: throttled, or the SDK call failed on the way.
TRANSIENT_START_ERRORS = {
    "StepFunctions.ExecutionLimitExceededException",
    "StepFunctions.SdkClientException",
}
BACKOFF = {"IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2, "JitterStrategy": "FULL"}


Catcher = tuple[list[dict[str, Any]], dict[str, Any]]  # a Catch list, and the states it is in


def _tasks(
    states: dict[str, Any], enclosing: Catcher | None = None
) -> Iterator[tuple[str, dict[str, Any], Catcher | None, dict[str, Any]]]:
    """(name, task, the Catch of the nearest enclosing Map or None, the states it is among)."""
    for name, state in states.items():
        if state["Type"] == "Task":
            yield name, state, enclosing, states
        if state["Type"] == "Map":
            inner = state.get("ItemProcessor") or state["Iterator"]
            yield from _tasks(inner["States"], (state.get("Catch", []), states))


TASKS = [
    (logical, name, task, enclosing, states)
    for logical in STATE_MACHINES
    for name, task, enclosing, states in _tasks(json.loads(definition_text(logical))["States"])
]
IDS = [f"{logical}:{name}" for logical, name, *_ in TASKS]


def test_the_files_hold_lambda_and_child_execution_tasks() -> None:
    # Given / When
    resources = {task["Resource"].split(".sync")[0] for _, _, task, _, _ in TASKS}

    # Then (a new kind of Task needs its own retry rule here)
    assert resources == {LAMBDA_INVOKE, START_EXECUTION}


@pytest.mark.parametrize(("logical", "name", "task", "enclosing", "states"), TASKS, ids=IDS)
def test_every_task_retries_its_transient_errors_with_the_shared_backoff(
    logical: str, name: str, task: dict[str, Any], enclosing: Any, states: dict[str, Any]
) -> None:
    # Given the errors that are worth retrying for this kind of task
    transient = (
        TRANSIENT_LAMBDA_ERRORS if task["Resource"] == LAMBDA_INVOKE else TRANSIENT_START_ERRORS
    )

    # When
    (retry,) = task["Retry"]

    # Then
    assert set(retry["ErrorEquals"]) == transient
    assert {key: retry[key] for key in BACKOFF} == BACKOFF


# Tasks whose failure is not the machine's: Retrain's Training execution, however it ends, is
# followed by the pipeline's release (its failure is the Training execution's own, alarmed).
RELEASED_AFTER_ANY_END = {("Retrain", "Train")}


@pytest.mark.parametrize(("logical", "name", "task", "enclosing", "states"), TASKS, ids=IDS)
def test_every_task_is_caught_into_a_fail_state_with_the_error_as_its_cause(
    logical: str, name: str, task: dict[str, Any], enclosing: Any, states: dict[str, Any]
) -> None:
    # Given the task's own Catch, else that of the Map it runs in
    catch, scope = (task["Catch"], states) if "Catch" in task else (enclosing or ([], states))

    # When
    everything = [c for c in catch if c["ErrorEquals"] == ["States.ALL"]]

    # Then
    assert everything, f"{logical}: {name!r} is not caught"
    (caught,) = everything
    if (logical, name) in RELEASED_AFTER_ANY_END:
        assert scope[caught["Next"]]["Type"] == "Task"
        assert caught["Next"] == task["Next"]  # the same step as after success
        return
    failure_path = _failure_path(scope, caught["Next"])
    fails = [scope[n] for n in failure_path if scope[n]["Type"] == "Fail"]
    assert fails, f"{logical}: {name!r} is caught into no Fail state"
    # a task of the failure path itself fails the run with the error that led there
    on_failure_path = logical == "Training" and name in _failure_path(scope, MARK_RUN_FAILED)
    original = "$.error" if on_failure_path else caught["ResultPath"]
    for fail in fails:
        assert fail["Error"].startswith("stepnet.")
        assert fail["CausePath"] == f"{original}.Cause"
    # the failure path's own Catches keep the original error where the Fail states read it
    for state in failure_path:
        for catch_of_path in scope[state].get("Catch", []):
            assert catch_of_path["ResultPath"] != caught["ResultPath"], (state, catch_of_path)
    if logical == "Training" and not on_failure_path and name not in LEAVES_THE_RECORD:
        assert caught["Next"] == MARK_RUN_FAILED


MARK_RUN_FAILED = "Mark run failed"
# A refused resume (of a finished run, say) leaves the run's record as it was: SUCCEEDED stays.
LEAVES_THE_RECORD = {"Resume run"}


def _failure_path(states: dict[str, Any], start: str) -> list[str]:
    """Every state reachable from ``start`` (its Next, Choices, Default and Catch targets)."""
    seen: list[str] = []
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        state = states[name]
        todo += [state[k] for k in ("Next", "Default") if k in state]
        todo += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
    return seen


def test_the_training_machine_marks_every_failure_and_exports_a_diverged_runs_last_good_model() -> (
    None
):
    # Given the Training machine
    states = json.loads(definition_text("Training"))["States"]

    # When a run fails
    path = _failure_path(states, MARK_RUN_FAILED)

    # Then it is marked, and a diverged run exports the version the failure names, then fails
    # with the divergence's cause
    assert sorted(path) == sorted(
        [MARK_RUN_FAILED, "Diverged?", "Export last good model", "Run diverged", "Run failed"]
    )
    export = states["Export last good model"]["Parameters"]["Payload"]
    assert export["version.$"] == "$.failure.diverged.last_good_version"
    assert export["diverged.$"] == "$.failure.diverged"
    assert states["Run diverged"]["Error"] == DIVERGED


def test_the_steps_machine_tells_a_divergence_from_other_failures() -> None:
    # Given the Steps machine's Update, where the micro-batches' losses and gradients meet
    states = json.loads(definition_text("Steps"))["States"]

    # When
    first = states["Update weights"]["Catch"][0]

    # Then the divergence guard's error (its class name, Lambda's errorType) is caught by name
    # first, into its own Fail
    assert first["ErrorEquals"] == [DivergenceError.__name__] == [DIVERGENCE_ERROR]
    assert states[first["Next"]]["Error"] == DIVERGED
