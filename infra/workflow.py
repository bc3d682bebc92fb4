"""The state machines, built from the ASL files the contract ships
(`trainer.contract.statemachines`).

The files are the source of truth. Every `${Name}` placeholder is filled through
`definition_substitutions`, with the same `substitutions` the local engine renders its copy with.
A role cannot be inferred from a file, so the grants are derived from what the contract reads in
it (`read_references`): a machine may invoke exactly the functions it names, and may start
exactly the machines its `states:startExecution` tasks start (a placeholder, or
`$$.StateMachine.Id` for itself); for `.sync` / `.sync:2` it may also describe and stop those
executions and manage the EventBridge rule Step Functions waits with.
"""

from collections.abc import Mapping
from typing import Final

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.nag import acknowledge, wildcard_resource_finding
from trainer.contract import names
from trainer.contract.statemachines import (
    STATE_MACHINES,
    References,
    all_references,
    creation_order,
    definition_text,
    substitutions,
)

# The managed rule through which Step Functions learns that a .sync child execution ended.
SYNC_EVENTS_RULE: Final = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH


class Workflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self._prefix = prefix
        self.references = all_references()
        self.state_machines: dict[str, sfn.StateMachine] = {}
        for logical in creation_order(self.references):  # children first
            self.state_machines[logical] = self._state_machine(
                logical, self.references[logical], functions
            )

    def _state_machine(
        self,
        logical: str,
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
            state_machine_type=sfn.StateMachineType[STATE_MACHINES[logical].type],
            definition_body=sfn.DefinitionBody.from_string(definition_text(logical)),
            definition_substitutions=substitutions(
                references,
                {function: fn.function_arn for function, fn in functions.items()},
                {other: made.state_machine_arn for other, made in self.state_machines.items()},
            ),
            logs=sfn.LogOptions(
                destination=log_group,
                level=sfn.LogLevel[STATE_MACHINES[logical].log_level],
                include_execution_data=STATE_MACHINES[logical].log_execution_data,
            ),
            tracing_enabled=True,
        )
        if STATE_MACHINES[logical].log_level != "ALL":
            acknowledge(
                machine,
                "AwsSolutions-SF1",
                reason="A Standard machine: Step Functions keeps every execution's whole history "
                "and the console shows it, so it logs its failures only (ERROR, with execution "
                "data); logging every event again would only add billed ingestion. The Express "
                "Steps machine, which keeps no history, logs ALL.",
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
        # An Express machine's executions are named arn:…:express:<machine>:<name>:<id>.
        kinds = ["execution"] + (["express"] if STATE_MACHINES[started].type == "EXPRESS" else [])
        executions = [
            stack.format_arn(
                service="states",
                resource=kind,
                resource_name=f"{name}:*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for kind in kinds
        ]
        parent.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=executions,
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
        for arn in executions:
            acknowledge(
                parent.role,
                wildcard_resource_finding(parent, arn),
                reason=f"Executions of {name} are named at run time (one per epoch, or chunk of "
                "an epoch); the ARN pins the state machine and leaves only the execution name "
                "open.",
            )
