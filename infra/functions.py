"""The Lambda functions, all made from the contract's one spec table
(`trainer.contract.functions.FUNCTIONS`): handler, size, runtime, architecture, IAM grants and
the package each is bundled from (`infra.bundling`: one asset per package). Their environment
is the contract's (`trainer.contract.wiring`).

The functions that start runs (the API's: grants on a state machine) need the Training machine's
ARN, and the machine needs the workflow's functions: they are made once the machines exist
(`Functions.add_run_starters`).

Sizing can be changed per deployment through CDK context, without editing code:
`npx cdk deploy -c 'memory={"Forward": 2048}' -c 'timeout={"Forward": 300}'` or the same keys in
cdk.json. Memory is in MB (128-10240; 1769 MB is one full vCPU), timeout in seconds (1-900).
"""

import json
from collections.abc import Mapping
from typing import Any, Final

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.bundling import inference_code, lambda_code
from infra.nag import acknowledge, wildcard_resource_finding
from infra.storage import Storage
from trainer.contract import names, wiring
from trainer.contract.environment import FunctionEnvironment, LogLevel
from trainer.contract.functions import (
    DESCRIBE_EXECUTION,
    LAMBDA_ARCHITECTURE,
    LAMBDA_PYTHON_VERSION,
    LAMBDA_RUNTIME,
    FunctionSpec,
    Grants,
    Package,
    Size,
    size_overrides,
    sized_functions,
)
from trainer.contract.monitoring import metrics_namespace

LIST_BUCKET: Final = "s3:ListBucket"
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH


def lambda_runtime(name: str) -> lambda_.Runtime:
    """CDK's constant for a Python runtime name such as "python3.14"."""
    runtime: lambda_.Runtime | None = getattr(
        lambda_.Runtime, name.upper().replace("PYTHON", "PYTHON_").replace(".", "_"), None
    )
    if runtime is None or runtime.name != name:
        raise ValueError(f"aws-cdk-lib has no Lambda runtime {name!r}")
    return runtime


def lambda_architecture(name: str) -> lambda_.Architecture:
    """CDK's constant for an architecture name, "arm64" or "x86_64"."""
    known = {a.name: a for a in (lambda_.Architecture.ARM_64, lambda_.Architecture.X86_64)}
    return known[name]


RUNTIME: Final = lambda_runtime(LAMBDA_RUNTIME)
ARCHITECTURE: Final = lambda_architecture(LAMBDA_ARCHITECTURE)
PYTHON_VERSION: Final = LAMBDA_PYTHON_VERSION  # what pip targets when it bundles


def sized_specs(
    *, memory: Mapping[str, int] | str | None = None, timeout: Mapping[str, int] | str | None = None
) -> dict[str, FunctionSpec]:
    """FUNCTIONS with the context overrides applied (`-c` passes them as JSON strings), checked
    by the contract's one rule (`trainer.contract.functions.size_overrides`), which
    `stepnet local --function-memory/--function-timeout` follows too."""
    return sized_functions(
        memory_mb=_overrides("memory", memory), timeout_s=_overrides("timeout", timeout)
    )


def _overrides(size: Size, value: Any) -> dict[str, int]:
    if isinstance(value, str):
        value = json.loads(value)
    return size_overrides(size, value, source=f'context "{size}"')


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        specs: Mapping[str, FunctionSpec],
        storage: Storage,
        scratch_ttl_hours: int | None = None,
        log_level: LogLevel | None = None,
    ) -> None:
        """`scratch_ttl_hours` and `log_level` override the contract's defaults when given."""
        super().__init__(scope, construct_id)
        self._prefix = prefix
        self._specs = dict(specs)
        self._storage = storage
        self._code: dict[Package, lambda_.Code] = {}
        options: dict[str, Any] = {"scratch_ttl_hours": scratch_ttl_hours, "log_level": log_level}
        self._common = FunctionEnvironment(
            metrics_namespace=metrics_namespace(prefix),
            runs_table=storage.runs_table.table_name,
            tensors_table=storage.tensors_table.table_name,
            bucket=storage.bucket.bucket_name,
            **{field: value for field, value in options.items() if value is not None},
        )
        self.by_logical: dict[str, lambda_.Function] = {
            logical: self._function(
                logical, spec, wiring.function_environment(logical, self._common)
            )
            for logical, spec in specs.items()
            if not spec.grants.machines
        }

    def add_run_starters(self, machines: Mapping[str, sfn.StateMachine]) -> None:
        """The functions granted actions on the state machines (the API), now that they exist."""
        for logical, spec in self._specs.items():
            if not spec.grants.machines:
                continue
            environment = wiring.function_environment(
                logical,
                self._common,
                training_state_machine_arn=machines["Training"].state_machine_arn,
            )
            function = self._function(logical, spec, environment)
            grant_machines(function.role, logical, spec.grants, machines, prefix=self._prefix)
            self.by_logical[logical] = function

    def code(self, package: Package) -> lambda_.Code:
        """The asset of ``package`` (one per package, shared by its functions)."""
        if package not in self._code:
            self._code[package] = (
                lambda_code(RUNTIME) if package == "trainer" else inference_code(RUNTIME)
            )
        return self._code[package]

    def _function(
        self, logical: str, spec: FunctionSpec, environment: dict[str, str]
    ) -> lambda_.Function:
        prefix, code, storage = self._prefix, self.code(spec.package), self._storage
        name = names.function_name(prefix, logical)
        # Own role, no AWS managed policy: each grant below is the whole of what it may do.
        role = iam.Role(
            self, f"{logical}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
        )
        log_group = logs.LogGroup(
            self,
            f"{logical}Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=LOG_RETENTION,
            # The name is fixed, so a retained group would block the next deploy of the stack.
            removal_policy=RemovalPolicy.DESTROY,
        )
        function = lambda_.Function(
            self,
            logical,
            function_name=name,
            handler=spec.handler,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=code,
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            environment=environment,
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=log_group,
        )
        log_group.grant_write(role)
        grant_storage(role, logical, spec.grants, storage)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            reason="X-Ray PutTraceSegments and PutTelemetryRecords (active tracing) support no "
            "resource-level permissions.",
        )
        return function


def grant_storage(role: iam.Role, logical: str, grants: Grants, storage: Storage) -> None:
    """Exactly the table and bucket actions of the function's contract grants."""
    for table, actions in grants.table_actions().items():
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(actions), resources=[storage.tables[table].table_arn])
        )
    for prefix, object_actions in grants.object_actions().items():
        objects = storage.bucket.arn_for_objects(f"{prefix}*")
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(object_actions), resources=[objects])
        )
        acknowledge(
            role,
            wildcard_resource_finding(role, objects),
            reason=f"{logical} may {' and '.join(object_actions)} objects whose keys are chosen at run "
            f"time (run ids, versions, datasets, pipelines, uploaded files) under "
            f"{prefix or 'any key'!r} of the stack's own bucket, and nothing else there.",
        )
    if grants.lists_bucket:
        # Not to list anything: without s3:ListBucket S3 answers 403, not 404, for a missing
        # key, and the store reads a 404 as "not there" (an expired scratch bundle, a dataset
        # URI that names nothing); see trainer.contract.functions.Grants.lists_bucket.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=[LIST_BUCKET], resources=[storage.bucket.bucket_arn])
        )


def grant_machines(
    role: iam.IRole | None,
    logical: str,
    grants: Grants,
    machines: Mapping[str, sfn.StateMachine],
    *,
    prefix: str,
) -> None:
    """Exactly the Step Functions actions of the function's contract grants: on the machine, or
    (DescribeExecution) on its executions, whose names are the run ids."""
    assert role is not None
    stack = Stack.of(role)
    for machine, actions in grants.machine_actions().items():
        on_machine = [a for a in actions if a != DESCRIBE_EXECUTION]
        if on_machine:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=on_machine, resources=[machines[machine].state_machine_arn]
                )
            )
        if DESCRIBE_EXECUTION in actions:
            executions = stack.format_arn(
                service="states",
                resource="execution",
                resource_name=f"{names.state_machine_name(prefix, machine)}:*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=[DESCRIBE_EXECUTION], resources=[executions])
            )
            acknowledge(
                role,
                wildcard_resource_finding(role, executions),
                reason=f"{logical} describes the runs' executions of {machine}, named by run id "
                "at run time; the ARN pins the state machine and leaves only the name open.",
            )
