"""The state machines, loaded from the ASL files in statemachine/.

The files are the source of truth. Every `${Name}` placeholder is filled through
`definition_substitutions`: `${<Logical>FunctionArn}` with a function of FUNCTIONS,
`${<Logical>StateMachineArn}` with another machine of names.STATE_MACHINES. A role cannot be
inferred from a file, so the grants are derived from it here: a machine may invoke exactly the
functions it names, and may start exactly the machines its `states:startExecution` tasks start
(a placeholder, or `$$.StateMachine.Id` for itself); for `.sync` / `.sync:2` it may also describe
and stop those executions and manage the EventBridge rule Step Functions waits with.
"""

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, Final

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.nag import acknowledge, wildcard_resource_finding
from trainer.contract import names
from trainer.contract.functions import FUNCTIONS

PLACEHOLDER: Final = re.compile(r"\$\{(\w+)\}")
FUNCTION_ARN: Final = "FunctionArn"
STATE_MACHINE_ARN: Final = "StateMachineArn"
START_EXECUTION: Final = "arn:aws:states:::states:startExecution"
# How a definition names the machine it runs in: JSONPath, and JSONata.
OWN_ARN: Final = re.compile(
    r"^(\$\$\.StateMachine\.Id|\{%\s*\$states\.context\.StateMachine\.Id\s*%\})$"
)
# The managed rule through which Step Functions learns that a .sync child execution ended.
SYNC_EVENTS_RULE: Final = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH


@dataclass(frozen=True)
class References:
    """What one ASL file needs from the rest of the stack."""

    functions: frozenset[str]  # ${<Logical>FunctionArn}
    machines: frozenset[str]  # ${<Logical>StateMachineArn}
    started: frozenset[str]  # machines its startExecution tasks start, itself included
    awaited: frozenset[str]  # those of them it waits for (.sync, .sync:2)


def _named(placeholder: str, suffix: str, known: Mapping[str, object]) -> str | None:
    """The logical name in `<Logical><suffix>`, if it is one of `known`."""
    logical = placeholder.removesuffix(suffix)
    return logical if placeholder.endswith(suffix) and logical in known else None


def read_references(logical: str, path: Path) -> References:
    text = path.read_text()
    functions: set[str] = set()
    machines: set[str] = set()
    for name in set(PLACEHOLDER.findall(text)):
        function = _named(name, FUNCTION_ARN, FUNCTIONS)
        machine = _named(name, STATE_MACHINE_ARN, names.STATE_MACHINES)
        if function:
            functions.add(function)
        elif machine == logical:
            raise ValueError(
                f"{path}: ${{{name}}} is the machine's own ARN, a circular reference in "
                "CloudFormation; use $$.StateMachine.Id"
            )
        elif machine:
            machines.add(machine)
        else:
            raise ValueError(
                f"{path}: unknown placeholder ${{{name}}}; expected ${{<Logical>{FUNCTION_ARN}}} "
                f"for {sorted(FUNCTIONS)} or ${{<Logical>{STATE_MACHINE_ARN}}} for "
                f"{sorted(names.STATE_MACHINES)}"
            )
    started: set[str] = set()
    awaited: set[str] = set()
    for state_name, task in _tasks(json.loads(text)["States"], path):
        resource = str(task.get("Resource", ""))
        if resource.startswith(START_EXECUTION):
            target = _started_machine(logical, task, f"{path}: state {state_name!r}")
            started.add(target)
            if resource.removeprefix(START_EXECUTION).startswith(".sync"):
                awaited.add(target)
    return References(
        functions=frozenset(functions),
        machines=frozenset(machines),
        started=frozenset(started),
        awaited=frozenset(awaited),
    )


def _tasks(states: Mapping[str, Any], path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            if processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
                raise ValueError(
                    f"{path}: state {name!r} is a Distributed Map, whose permissions "
                    "infra/workflow.py does not derive yet"
                )
            yield from _tasks(processor["States"], path)
        for branch in state.get("Branches", []):
            yield from _tasks(branch["States"], path)


def _started_machine(logical: str, task: Mapping[str, Any], where: str) -> str:
    parameters = task.get("Parameters") or task.get("Arguments") or {}
    arn = parameters.get("StateMachineArn", parameters.get("StateMachineArn.$", ""))
    if OWN_ARN.match(arn):
        return logical
    placeholder = PLACEHOLDER.fullmatch(arn)
    started = placeholder and _named(placeholder[1], STATE_MACHINE_ARN, names.STATE_MACHINES)
    if started:
        return started
    raise ValueError(
        f"{where}: cannot tell which state machine it starts from {arn!r}; use "
        f"${{<Logical>{STATE_MACHINE_ARN}}} or $$.StateMachine.Id"
    )


def creation_order(references: Mapping[str, References]) -> list[str]:
    """Children before parents, so that a parent can be given its children's ARNs."""
    graph = {logical: refs.machines for logical, refs in references.items()}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise ValueError(f"state machines name each other in a cycle: {error.args[1]}") from None


class Workflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        functions: Mapping[str, lambda_.IFunction],
        definitions_dir: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        self._prefix = prefix
        paths = {logical: definitions_dir / file for logical, file in names.STATE_MACHINES.items()}
        self.references = {
            logical: read_references(logical, path) for logical, path in paths.items()
        }
        self.state_machines: dict[str, sfn.StateMachine] = {}
        for logical in creation_order(self.references):
            self.state_machines[logical] = self._state_machine(
                logical, paths[logical], self.references[logical], functions
            )

    def _state_machine(
        self,
        logical: str,
        path: Path,
        references: References,
        functions: Mapping[str, lambda_.IFunction],
    ) -> sfn.StateMachine:
        name = names.state_machine_name(self._prefix, logical)
        log_group = logs.LogGroup(
            self,
            f"{logical}Logs",
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,  # fixed name: a retained group blocks redeploys
        )
        machine = sfn.StateMachine(
            self,
            logical,
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(path.read_text()),
            definition_substitutions={
                **{
                    f"{function}{FUNCTION_ARN}": functions[function].function_arn
                    for function in references.functions
                },
                **{
                    f"{other}{STATE_MACHINE_ARN}": self.state_machines[other].state_machine_arn
                    for other in references.machines
                },
            },
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        acknowledge(
            machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            reason="CloudWatch Logs vended log delivery (logs:*LogDelivery, DescribeLogGroups, "
            "resource policies) and X-Ray trace writes support no resource-level permissions.",
        )
        if references.functions:
            # The unqualified ARNs the file names, without CDK's `<arn>:*` for versions/aliases.
            machine.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[functions[f].function_arn for f in sorted(references.functions)],
                )
            )
        for started in sorted(references.started):
            self._grant_start(machine, logical, started, awaited=started in references.awaited)
        return machine

    def _grant_start(
        self, parent: sfn.StateMachine, logical: str, started: str, *, awaited: bool
    ) -> None:
        stack = Stack.of(self)
        name = names.state_machine_name(self._prefix, started)
        # Its own ARN from its name: a Ref in its own role's policy would be a circular dependency.
        arn = (
            stack.format_arn(
                service="states",
                resource="stateMachine",
                resource_name=name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            if started == logical
            else self.state_machines[started].state_machine_arn
        )
        parent.add_to_role_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[arn])
        )
        if not awaited:
            return
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        parent.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[executions],
            )
        )
        parent.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(
                        service="events",
                        resource="rule",
                        resource_name=SYNC_EVENTS_RULE,
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    )
                ],
            )
        )
        acknowledge(
            parent.role,
            wildcard_resource_finding(parent, executions),
            reason=f"Executions of {name} are named at run time (one per epoch, or part of an "
            "epoch); the ARN pins the state machine and leaves only the execution name open.",
        )
