"""The state machines, loaded from the ASL files in statemachine/.

The files are the source of truth: every `${Name}` placeholder is filled through
`definition_substitutions`, and the permissions follow from the placeholders, since a role cannot
be inferred from a file. `${<Logical>FunctionArn}` names a function of constants.HANDLERS (the
machine may invoke it); `${<Logical>StateMachineArn}` names a child machine, started with
`states:startExecution.sync:2` (the machine may start, poll and stop its executions).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Final

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.nag import acknowledge, wildcard_resource_finding
from trainer import constants

PLACEHOLDER: Final = re.compile(r"\$\{(\w+)\}")
FUNCTION_ARN: Final = "FunctionArn"
STATE_MACHINE_ARN: Final = "StateMachineArn"
# The managed rule through which Step Functions learns that a .sync child execution ended.
SYNC_EVENTS_RULE: Final = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH


@dataclass(frozen=True)
class References:
    """What one ASL file's placeholders name."""

    functions: frozenset[str]
    children: frozenset[str]


def read_references(path: Path) -> References:
    functions: set[str] = set()
    children: set[str] = set()
    for name in set(PLACEHOLDER.findall(path.read_text())):
        logical = name.removesuffix(FUNCTION_ARN)
        if name.endswith(FUNCTION_ARN) and logical in constants.HANDLERS:
            functions.add(logical)
            continue
        logical = name.removesuffix(STATE_MACHINE_ARN)
        if name.endswith(STATE_MACHINE_ARN) and logical in constants.STATE_MACHINES:
            children.add(logical)
            continue
        raise ValueError(
            f"{path}: unknown placeholder ${{{name}}}; expected ${{<Logical>{FUNCTION_ARN}}} for "
            f"{sorted(constants.HANDLERS)} or ${{<Logical>{STATE_MACHINE_ARN}}} for "
            f"{sorted(constants.STATE_MACHINES)}"
        )
    return References(functions=frozenset(functions), children=frozenset(children))


def creation_order(references: Mapping[str, References]) -> list[str]:
    """Children before parents, so that a parent can be given its children's ARNs."""
    graph = {logical: refs.children for logical, refs in references.items()}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise ValueError(f"state machines start each other in a cycle: {error.args[1]}") from None


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
        paths = {
            logical: definitions_dir / file for logical, file in constants.STATE_MACHINES.items()
        }
        references = {logical: read_references(path) for logical, path in paths.items()}
        self.state_machines: dict[str, sfn.StateMachine] = {}
        for logical in creation_order(references):
            self.state_machines[logical] = self._state_machine(
                logical, paths[logical], references[logical], functions
            )

    def _state_machine(
        self,
        logical: str,
        path: Path,
        references: References,
        functions: Mapping[str, lambda_.IFunction],
    ) -> sfn.StateMachine:
        name = constants.state_machine_name(self._prefix, logical)
        children = {child: self.state_machines[child] for child in sorted(references.children)}
        invoked = [functions[function] for function in sorted(references.functions)]
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
                    f"{child}{STATE_MACHINE_ARN}": child_machine.state_machine_arn
                    for child, child_machine in children.items()
                },
            },
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        if invoked:
            # The unqualified ARNs the file names, without CDK's `<arn>:*` for versions/aliases.
            machine.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[function.function_arn for function in invoked],
                )
            )
        for child in children:
            self._grant_start_sync(machine, child)
        acknowledge(
            machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            reason="CloudWatch Logs vended log delivery (logs:*LogDelivery, DescribeLogGroups, "
            "resource policies) and X-Ray trace writes support no resource-level permissions.",
        )
        return machine

    def _grant_start_sync(self, parent: sfn.StateMachine, child: str) -> None:
        """What `states:startExecution.sync:2` needs: start the child, poll it, stop it."""
        stack = Stack.of(self)
        parent.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"],
                resources=[self.state_machines[child].state_machine_arn],
            )
        )
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{constants.state_machine_name(self._prefix, child)}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        parent.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[executions],
            )
        )
        acknowledge(
            parent.role,
            wildcard_resource_finding(parent, executions),
            reason=f"Executions of the {child} machine are named at run time (one per epoch or "
            "chunk of steps); the ARN pins the machine and leaves only the execution name open.",
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
