"""The state machines: the ASL files verbatim, every placeholder substituted, logged and traced,
and each role allowed what its file does (placeholders found here by a regex of this test's own,
independently of infra/workflow.py)."""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from trainer.contract import names
from trainer.contract.statemachines import STATE_MACHINES, definition_text

pytestmark = pytest.mark.infra

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
START_EXECUTION = "arn:aws:states:::states:startExecution"
LOGICALS = sorted(STATE_MACHINES)


def _asl(logical: str) -> str:
    return definition_text(logical)


def _placeholders(logical: str) -> set[str]:
    return set(PLACEHOLDER.findall(_asl(logical)))


def _dicts(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dicts(value)


def _started_machines(logical: str) -> list[tuple[str, bool]]:
    """(machine started, waited for?) for each startExecution task in the file."""
    started = []
    for task in _dicts(json.loads(_asl(logical))):
        resource = str(task.get("Resource", ""))
        if resource.startswith(START_EXECUTION):
            parameters = task["Parameters"]
            if parameters.get("StateMachineArn.$") == "$$.StateMachine.Id":
                target = logical
            else:
                target = PLACEHOLDER.fullmatch(parameters["StateMachineArn"])[1]
                target = target.removesuffix("StateMachineArn")
            started.append((target, ".sync" in resource))
    return started


def _text(arn: Any) -> str:
    """An ARN as text: Fn::Join flattened, references as <Name>."""
    if isinstance(arn, str):
        return arn
    if "Ref" in arn:
        return f"<{arn['Ref']}>"
    delimiter, parts = arn["Fn::Join"]
    return str(delimiter).join(_text(part) for part in parts)


def _marker(value: Any) -> str:
    """A JSON-safe stand-in for a Ref / Fn::GetAtt value."""
    if set(value) == {"Ref"}:
        return f"@Ref:{value['Ref']}"
    if set(value) == {"Fn::GetAtt"}:
        return "@GetAtt:{}.{}".format(*value["Fn::GetAtt"])
    raise AssertionError(f"unexpected substitution value {value}")


def _render(definition: str, substitutions: dict[str, Any]) -> Any:
    return json.loads(
        PLACEHOLDER.sub(lambda m: _marker(substitutions[m[1]]), definition),
    )


def _literal(value: Any) -> str:
    """A DefinitionString: a plain string, or a Fn::Join of plain strings."""
    if isinstance(value, str):
        return value
    delimiter, parts = value["Fn::Join"]
    assert all(isinstance(part, str) for part in parts), parts
    return str(delimiter).join(parts)


@pytest.fixture(scope="session")
def machines(resources: dict[str, Any], stack: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """logical name -> (logical id, properties) of each state machine."""
    by_name = {
        r["Properties"]["StateMachineName"]: (lid, r["Properties"])
        for lid, r in resources.items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    }
    return {
        logical: by_name[names.state_machine_name(stack.stack_name, logical)]
        for logical in STATE_MACHINES
    }


@pytest.fixture(scope="session")
def expected_value(stack: Any, logical_id_named: Any) -> Any:
    """What a placeholder must be substituted with, from its name alone."""

    def value(placeholder: str) -> dict[str, Any]:
        if placeholder.endswith("FunctionArn"):
            name = names.function_name(stack.stack_name, placeholder.removesuffix("FunctionArn"))
            return {
                "Fn::GetAtt": [
                    logical_id_named("AWS::Lambda::Function", "FunctionName", name),
                    "Arn",
                ]
            }
        name = names.state_machine_name(
            stack.stack_name, placeholder.removesuffix("StateMachineArn")
        )
        return {
            "Ref": logical_id_named("AWS::StepFunctions::StateMachine", "StateMachineName", name)
        }

    return value


def _role_statements(resources: dict[str, Any], role_arn: dict[str, Any]) -> list[dict[str, Any]]:
    role = role_arn["Fn::GetAtt"][0]
    return [
        statement
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
    ]


def _allowed(statements: list[dict[str, Any]], action: str) -> list[Any]:
    """Every resource the statements allow `action` on."""
    found: list[Any] = []
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if statement["Effect"] == "Allow" and action in actions:
            resource = statement["Resource"]
            found.extend(resource if isinstance(resource, list) else [resource])
    return found


def test_one_machine_per_asl_file_of_the_contracts_type(
    template: Template, machines: dict[str, Any]
) -> None:
    # Given the synthesized stack
    # When / Then: Training and Epoch Standard, the Steps chunks Express
    template.resource_count_is("AWS::StepFunctions::StateMachine", len(STATE_MACHINES))
    types = {
        logical: properties["StateMachineType"] for logical, (_, properties) in machines.items()
    }
    assert types == {logical: spec.type for logical, spec in STATE_MACHINES.items()}
    assert types == {
        "Training": "STANDARD",
        "Epoch": "STANDARD",
        "Steps": "EXPRESS",
        "Retrain": "STANDARD",
    }


def test_the_express_machine_logs_everything_the_standard_ones_their_failures(
    machines: dict[str, Any],
) -> None:
    # Given the synthesized machines, When their logging is read
    levels = {
        logical: (
            properties["LoggingConfiguration"]["Level"],
            properties["LoggingConfiguration"]["IncludeExecutionData"],
        )
        for logical, (_, properties) in machines.items()
    }

    # Then the Express Steps machine logs every event with its data (the console shows an
    # Express execution from its log alone); the Standard machines, whose history Step Functions
    # keeps, log their failures; all as the contract says (the cost model prices that)
    assert levels == {
        logical: (spec.log_level, spec.log_execution_data)
        for logical, spec in STATE_MACHINES.items()
    }
    assert levels["Steps"] == ("ALL", True)
    assert all(
        levels[logical] == ("ERROR", True)
        for logical, spec in STATE_MACHINES.items()
        if spec.type == "STANDARD"
    )


def test_machines_log_and_trace(template: Template) -> None:
    # Given the synthesized stack
    # When / Then
    template.all_resources_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": {
                "Level": Match.any_value(),
                "IncludeExecutionData": True,
                "Destinations": [
                    {
                        "CloudWatchLogsLogGroup": {
                            "LogGroupArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]}
                        }
                    }
                ],
            },
            "TracingConfiguration": {"Enabled": True},
        },
    )


@pytest.mark.parametrize("logical", LOGICALS)
def test_every_placeholder_has_a_substitution_and_vice_versa(
    logical: str, machines: dict[str, Any]
) -> None:
    # Given the placeholders in the ASL file
    placeholders = _placeholders(logical)

    # When
    _, properties = machines[logical]

    # Then
    assert placeholders, f"{logical}: no placeholders found; is the file complete?"
    assert set(properties.get("DefinitionSubstitutions", {})) == placeholders


@pytest.mark.parametrize("logical", LOGICALS)
def test_definition_is_the_file_with_each_placeholder_bound_to_its_resource(
    logical: str, machines: dict[str, Any], expected_value: Any
) -> None:
    # Given the file, with each placeholder bound to the resource its name designates
    expected = _render(_asl(logical), {p: expected_value(p) for p in _placeholders(logical)})

    # When the template's definition is rendered with the template's substitutions
    _, properties = machines[logical]
    actual = _render(
        _literal(properties["DefinitionString"]), properties["DefinitionSubstitutions"]
    )

    # Then
    assert actual == expected


@pytest.mark.parametrize("logical", LOGICALS)
def test_each_machine_may_invoke_exactly_the_functions_its_file_names(
    logical: str, machines: dict[str, Any], resources: dict[str, Any], expected_value: Any
) -> None:
    # Given the functions named in the file
    expected = [
        expected_value(p) for p in sorted(_placeholders(logical)) if p.endswith("FunctionArn")
    ]

    # When
    _, properties = machines[logical]
    invocable = _allowed(
        _role_statements(resources, properties["RoleArn"]), "lambda:InvokeFunction"
    )

    # Then
    assert sorted(map(json.dumps, invocable)) == sorted(map(json.dumps, expected))


def test_training_role_can_start_epoch_executions(
    machines: dict[str, Any], resources: dict[str, Any]
) -> None:
    # Given the Training machine's role and the Epoch machine
    _, training = machines["Training"]
    epoch_id, _ = machines["Epoch"]

    # When
    statements = _role_statements(resources, training["RoleArn"])

    # Then
    assert {"Ref": epoch_id} in _allowed(statements, "states:StartExecution")


@pytest.mark.parametrize("logical", LOGICALS)
def test_each_started_machine_can_be_started_polled_and_stopped(
    logical: str, machines: dict[str, Any], resources: dict[str, Any], stack: Any
) -> None:
    # Given the machines the file's startExecution tasks start: a placeholder's, or itself
    started = _started_machines(logical)

    # When
    statements = _role_statements(resources, machines[logical][1]["RoleArn"])

    # Then
    if not started:
        assert _allowed(statements, "states:StartExecution") == []
    for target, waited_for in started:
        name = names.state_machine_name(stack.stack_name, target)
        startable = [_text(arn) for arn in _allowed(statements, "states:StartExecution")]
        if target == logical:  # its own ARN, from its name: a Ref would be a circular dependency
            assert any(arn.endswith(f":stateMachine:{name}") for arn in startable), startable
        else:
            assert f"<{machines[target][0]}>" in startable
        if waited_for:
            for action in ("states:DescribeExecution", "states:StopExecution"):
                arns = [_text(arn) for arn in _allowed(statements, action)]
                assert any(arn.endswith(f":execution:{name}:*") for arn in arns), (action, arns)
                if STATE_MACHINES[target].type == "EXPRESS":  # arn:…:express:<machine>:<name>:<id>
                    assert any(arn.endswith(f":express:{name}:*") for arn in arns), arns
            for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
                arns = [_text(arn) for arn in _allowed(statements, action)]
                assert any(
                    arn.endswith(":rule/StepFunctionsGetEventsForStepFunctionsExecutionRule")
                    for arn in arns
                ), (action, arns)


def test_no_policy_allows_every_action_of_a_service(template: Template) -> None:
    # Given every IAM policy statement in the stack
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]

    # When
    actions = [
        action
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    ]

    # Then
    assert statements
    assert [a for a in actions if a == "*" or a.endswith(":*")] == []
