"""What infra/workflow.py derives from an ASL file, on small files of this test's own."""

import json
from pathlib import Path
from typing import Any

import pytest

from infra.workflow import References, creation_order, read_references

pytestmark = pytest.mark.infra

LAMBDA_TASK = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}


def _asl(tmp_path: Path, states: dict[str, Any]) -> Path:
    path = tmp_path / "machine.asl.json"
    path.write_text(json.dumps({"StartAt": next(iter(states)), "States": states}))
    return path


def _start(arn_parameter: dict[str, str], resource_suffix: str = ".sync:2") -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": f"arn:aws:states:::states:startExecution{resource_suffix}",
        "Parameters": {**arn_parameter, "Input": {}},
        "End": True,
    }


def test_functions_and_a_waited_for_child_are_read_from_placeholders(tmp_path: Path) -> None:
    # Given a file that invokes Initialize and waits for an Epoch execution
    path = _asl(
        tmp_path,
        {
            "Init": {**LAMBDA_TASK, "Parameters": {"FunctionName": "${InitializeFunctionArn}"}},
            "Epoch": _start({"StateMachineArn": "${EpochStateMachineArn}"}),
        },
    )

    # When
    references = read_references("Training", path)

    # Then
    assert references == References(
        functions=frozenset({"Initialize"}),
        machines=frozenset({"Epoch"}),
        started=frozenset({"Epoch"}),
        awaited=frozenset({"Epoch"}),
    )


def test_a_machine_starting_itself_inside_a_map_is_found(tmp_path: Path) -> None:
    # Given a machine that starts itself, without waiting, from an inline Map
    path = _asl(
        tmp_path,
        {
            "Each": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Again",
                    "States": {"Again": _start({"StateMachineArn.$": "$$.StateMachine.Id"}, "")},
                },
                "End": True,
            }
        },
    )

    # When
    references = read_references("Epoch", path)

    # Then
    assert (references.started, references.awaited) == (frozenset({"Epoch"}), frozenset())


@pytest.mark.parametrize(
    ("states", "message"),
    [
        (
            {"T": {**LAMBDA_TASK, "Comment": "${BucketName}"}},
            r"unknown placeholder \$\{BucketName\}",
        ),
        ({"T": {**LAMBDA_TASK, "Comment": "${Epoch}"}}, r"unknown placeholder \$\{Epoch\}"),
        ({"T": _start({"StateMachineArn": "${EpochStateMachineArn}"})}, "own ARN"),
        ({"T": _start({"StateMachineArn.$": "$.arn"})}, "cannot tell which state machine"),
        (
            {
                "M": {
                    "Type": "Map",
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                        "StartAt": "T",
                        "States": {"T": LAMBDA_TASK},
                    },
                    "End": True,
                }
            },
            "Distributed Map",
        ),
    ],
)
def test_what_cannot_be_granted_is_an_error(
    tmp_path: Path, states: dict[str, Any], message: str
) -> None:
    # Given a file whose needs the stack cannot derive
    path = _asl(tmp_path, states)

    # When / Then
    with pytest.raises(ValueError, match=message):
        read_references("Epoch", path)


def test_children_are_created_before_parents_and_cycles_are_refused() -> None:
    # Given Training naming Epoch
    def refs(*machines: str) -> References:
        none: frozenset[str] = frozenset()
        return References(functions=none, machines=frozenset(machines), started=none, awaited=none)

    # When / Then
    assert creation_order({"Training": refs("Epoch"), "Epoch": refs()}) == ["Epoch", "Training"]
    with pytest.raises(ValueError, match="cycle"):
        creation_order({"Training": refs("Epoch"), "Epoch": refs("Training")})
