"""The state machines as the contract reads them: what a definition names (on small definitions
of this test's own), the packaged files, the creation order, the substitutions and the render
that the stack and the local engine share."""

import json
from typing import Any

import pytest

from trainer.contract.functions import FUNCTIONS, in_workflow
from trainer.contract.statemachines import (
    PLACEHOLDER,
    STATE_MACHINES,
    References,
    all_references,
    creation_order,
    definition_text,
    read_references,
    render,
    substitutions,
)

LAMBDA_TASK = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}


def _asl(states: dict[str, Any]) -> str:
    return json.dumps({"StartAt": next(iter(states)), "States": states})


def _start(arn_parameter: dict[str, str], resource_suffix: str = ".sync:2") -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": f"arn:aws:states:::states:startExecution{resource_suffix}",
        "Parameters": {**arn_parameter, "Input": {}},
        "End": True,
    }


def test_functions_and_a_waited_for_child_are_read_from_placeholders() -> None:
    # Given a file that invokes Initialize and waits for an Epoch execution
    text = _asl(
        {
            "Init": {**LAMBDA_TASK, "Parameters": {"FunctionName": "${InitializeFunctionArn}"}},
            "Epoch": _start({"StateMachineArn": "${EpochStateMachineArn}"}),
        },
    )

    # When
    references = read_references("Training", text)

    # Then
    assert references == References(
        functions=frozenset({"Initialize"}),
        machines=frozenset({"Epoch"}),
        started=frozenset({"Epoch"}),
        awaited=frozenset({"Epoch"}),
    )


def test_a_machine_starting_itself_inside_a_map_is_found() -> None:
    # Given a machine that starts itself, without waiting, from an inline Map
    text = _asl(
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
    references = read_references("Epoch", text)

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
def test_what_cannot_be_granted_is_an_error(states: dict[str, Any], message: str) -> None:
    # Given a definition whose needs the stack cannot derive
    text = _asl(states)

    # When / Then
    with pytest.raises(ValueError, match=message):
        read_references("Epoch", text)


def test_children_are_created_before_parents_and_cycles_are_refused() -> None:
    # Given Training naming Epoch
    def refs(*machines: str) -> References:
        none: frozenset[str] = frozenset()
        return References(functions=none, machines=frozenset(machines), started=none, awaited=none)

    # When / Then
    assert creation_order({"Training": refs("Epoch"), "Epoch": refs()}) == ["Epoch", "Training"]
    with pytest.raises(ValueError, match="cycle"):
        creation_order({"Training": refs("Epoch"), "Epoch": refs("Training")})


@pytest.mark.parametrize("logical", list(STATE_MACHINES))
def test_each_machine_is_a_packaged_asl_document_express_only_for_chunks(logical: str) -> None:
    # Given / When
    text = definition_text(logical)

    # Then the runs and epochs are Standard (inspectable, redrivable); only the chunks Express
    assert STATE_MACHINES[logical].file.endswith(".asl.json")
    assert STATE_MACHINES[logical].type == ("EXPRESS" if logical == "Steps" else "STANDARD")
    assert {"StartAt", "States"} <= set(json.loads(text))


def test_the_shipped_machines_name_the_functions_and_the_child_they_need() -> None:
    # Given / When
    references = all_references()

    # Then every workflow function is invoked by exactly one machine, Training waits for Epoch
    # and Epoch for its Steps chunks; Retrain invokes its own function and waits for Training
    invoked = [f for refs in references.values() for f in refs.functions]
    retraining = [f for f in FUNCTIONS if FUNCTIONS[f].scope.loop == "trigger"]
    assert sorted(invoked) == sorted([f for f in FUNCTIONS if in_workflow(f)] + retraining)
    assert references["Retrain"].functions == {"Retrain"}
    assert references["Retrain"].awaited == {"Training"}
    assert references["Training"].machines == {"Epoch"}
    assert references["Training"].awaited == {"Epoch"}
    assert references["Epoch"].started == references["Epoch"].awaited == {"Steps"}
    assert references["Epoch"].machines == {"Steps"}
    assert references["Steps"].started == references["Steps"].machines == frozenset()
    assert creation_order() == ["Steps", "Epoch", "Training", "Retrain"]


def test_substitutions_are_exactly_the_definitions_placeholders() -> None:
    # Given every function's ARN and the child already created
    references = read_references("Training")
    function_arns = {logical: f"arn:function:{logical}" for logical in FUNCTIONS}

    # When
    values = substitutions(references, function_arns, {"Epoch": "arn:machine:Epoch"})

    # Then
    assert set(values) == set(PLACEHOLDER.findall(definition_text("Training")))
    assert set(values) == references.placeholders()
    assert values["EpochStateMachineArn"] == "arn:machine:Epoch"
    assert values["InitializeFunctionArn"] == "arn:function:Initialize"


def test_a_parent_before_its_child_has_no_substitution() -> None:
    # Given a parent whose child was not created yet
    references = read_references("Training")

    # When / Then
    with pytest.raises(ValueError, match=r"no state machine ARN for \['Epoch'\]"):
        substitutions(references, {logical: "arn" for logical in FUNCTIONS}, {})


def test_render_fills_every_placeholder_and_refuses_an_unknown_one() -> None:
    # Given
    text = '{"A": "${XFunctionArn}", "B": "${XFunctionArn}:1", "C": "$.plain"}'

    # When
    rendered = render(text, {"XFunctionArn": "arn:x", "Unused": "ignored"})

    # Then
    assert json.loads(rendered) == {"A": "arn:x", "B": "arn:x:1", "C": "$.plain"}
    with pytest.raises(ValueError, match=r"no substitution for placeholders \['XFunctionArn'\]"):
        render(text, {})
