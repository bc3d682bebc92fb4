"""The Lambda functions, all made from one spec table.

Sizing can be changed per deployment through CDK context, without editing code:
`npx cdk deploy -c 'memory={"Forward": 2048}' -c 'timeout={"Forward": 300}'` or the same keys in
cdk.json. Memory is in MB (128-10240; 1769 MB is one full vCPU), timeout in seconds (1-900).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import lambda_code
from infra.nag import acknowledge, wildcard_resource_finding
from infra.storage import Storage
from trainer.contract import names
from trainer.contract.environment import FunctionEnvironment

# The newest Python runtime aws-cdk-lib knows (cdk-nag AwsSolutions-L1 wants the newest), for
# which numpy and pydantic-core publish manylinux aarch64 wheels.
RUNTIME: Final = lambda_.Runtime.PYTHON_3_14
PYTHON_VERSION: Final = RUNTIME.name.removeprefix("python")  # "3.14", what pip targets
ARCHITECTURE: Final = lambda_.Architecture.ARM_64
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH
DEFAULT_LOG_LEVEL: Final = "INFO"
MEMORY_LIMITS_MB: Final = (128, 10_240)
TIMEOUT_LIMITS_S: Final = (1, 900)


@dataclass(frozen=True)
class FunctionSpec:
    handler: str
    memory_mb: int
    timeout_s: int


# The handler paths and sizes are shared with the local engine and the cost model.
FUNCTION_SPECS: Final[Mapping[str, FunctionSpec]] = {
    logical: FunctionSpec(handler, *names.FUNCTION_SIZES[logical])
    for logical, handler in names.HANDLERS.items()
}


def sized_specs(
    *, memory: Mapping[str, int] | str | None = None, timeout: Mapping[str, int] | str | None = None
) -> dict[str, FunctionSpec]:
    """FUNCTION_SPECS with the context overrides applied (`-c` passes them as JSON strings)."""
    memory_mb = _overrides("memory", memory, MEMORY_LIMITS_MB)
    timeout_s = _overrides("timeout", timeout, TIMEOUT_LIMITS_S)
    return {
        logical: FunctionSpec(
            handler=spec.handler,
            memory_mb=memory_mb.get(logical, spec.memory_mb),
            timeout_s=timeout_s.get(logical, spec.timeout_s),
        )
        for logical, spec in FUNCTION_SPECS.items()
    }


def _overrides(key: str, value: Any, limits: tuple[int, int]) -> dict[str, int]:
    if value is None:
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(f'context "{key}" must map function names to integers, got {value!r}')
    low, high = limits
    for logical, amount in value.items():
        if logical not in FUNCTION_SPECS:
            raise ValueError(
                f'context "{key}": unknown function {logical!r}; known: {sorted(FUNCTION_SPECS)}'
            )
        if isinstance(amount, bool) or not isinstance(amount, int) or not low <= amount <= high:
            raise ValueError(f'context "{key}": {logical} must be an integer in [{low}, {high}]')
    return dict(value)


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        specs: Mapping[str, FunctionSpec],
        storage: Storage,
        scratch_ttl_hours: int,
        log_level: str = DEFAULT_LOG_LEVEL,
    ) -> None:
        super().__init__(scope, construct_id)
        code = lambda_code(RUNTIME)
        environment = FunctionEnvironment(
            runs_table=storage.runs_table.table_name,
            tensors_table=storage.tensors_table.table_name,
            bucket=storage.bucket.bucket_name,
            scratch_ttl_hours=scratch_ttl_hours,
            log_level=log_level,
        ).to_env()
        self.by_logical: dict[str, lambda_.Function] = {
            logical: self._function(
                logical, spec, prefix=prefix, code=code, environment=environment, storage=storage
            )
            for logical, spec in specs.items()
        }

    def _function(
        self,
        logical: str,
        spec: FunctionSpec,
        *,
        prefix: str,
        code: lambda_.Code,
        environment: dict[str, str],
        storage: Storage,
    ) -> lambda_.Function:
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
        storage.runs_table.grant_read_write_data(role)
        storage.tensors_table.grant_read_write_data(role)
        objects = storage.bucket.arn_for_objects("*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                ],
                resources=[objects],
            )
        )
        role.add_to_principal_policy(
            # Lets a missing key read as 404 rather than 403, and lets handlers list a prefix.
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[storage.bucket.bucket_arn])
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            reason="X-Ray PutTraceSegments and PutTelemetryRecords (active tracing) support no "
            "resource-level permissions.",
        )
        acknowledge(
            role,
            wildcard_resource_finding(role, objects),
            reason="Tensor bundles, datasets and models are objects under keys chosen at run "
            "time; the grant is limited to the stack's own bucket and to object reads/writes.",
        )
        return function
