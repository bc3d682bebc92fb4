"""The Lambda functions: one per handler, arm64, sized by the spec table or by context, each
role allowed exactly its function's grants."""

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from inference.settings import DEFAULT_POINTER_TTL_SECONDS
from inference.settings import VARIABLES as INFERENCE_VARIABLES
from infra.functions import ARCHITECTURE, RUNTIME, sized_specs
from trainer.contract import names
from trainer.contract.environment import VARIABLES
from trainer.contract.functions import (
    FUNCTIONS,
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    functions_of,
)
from trainer.contract.monitoring import metrics_namespace

pytestmark = pytest.mark.infra


def _functions_by_name(template: Template) -> dict[str, dict[str, Any]]:
    """The stack's own functions by name (CDK's bucket-notifications handler has no name)."""
    functions = template.find_resources("AWS::Lambda::Function")
    return {
        f["Properties"]["FunctionName"]: f["Properties"]
        for f in functions.values()
        if "FunctionName" in f["Properties"]
    }


def test_without_overrides_the_specs_are_the_contracts() -> None:
    # Given / When
    specs = sized_specs()

    # Then
    assert specs == dict(FUNCTIONS)


def test_one_function_per_handler_named_from_the_stack(template: Template, stack: Any) -> None:
    # Given the synthesized stack
    # When
    functions = _functions_by_name(template)

    # Then (and CDK's custom resource that puts the bucket's notifications)
    template.resource_count_is("AWS::Lambda::Function", len(FUNCTIONS) + 1)
    assert {name: f["Handler"] for name, f in functions.items()} == {
        names.function_name(stack.stack_name, logical): spec.handler
        for logical, spec in FUNCTIONS.items()
    }


def test_functions_run_python_on_arm64_with_active_tracing(template: Template) -> None:
    # Given the synthesized stack
    # When
    functions = _functions_by_name(template)

    # Then
    assert (RUNTIME.name, ARCHITECTURE.name) == (LAMBDA_RUNTIME, LAMBDA_ARCHITECTURE)
    for function in functions.values():
        assert function["Architectures"] == ["arm64"]
        assert function["Runtime"] == "python3.14"
        assert function["TracingConfig"] == {"Mode": "Active"}


def test_functions_are_sized_by_the_spec_table(template: Template, stack: Any) -> None:
    # Given the synthesized stack
    # When
    functions = _functions_by_name(template)

    # Then
    for logical, spec in FUNCTIONS.items():
        function = functions[names.function_name(stack.stack_name, logical)]
        assert (function["MemorySize"], function["Timeout"]) == (spec.memory_mb, spec.timeout_s)


def test_environment_names_the_tables_bucket_and_service(
    template: Template, resources: dict[str, Any]
) -> None:
    # Given the synthesized stack
    tables = {
        next(
            k["AttributeName"] for k in r["Properties"]["KeySchema"] if k["KeyType"] == "HASH"
        ): lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::DynamoDB::Table"
    }
    data_bucket = next(
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::S3::Bucket" and "LoggingConfiguration" in r["Properties"]
    )

    common = {
        VARIABLES["runs_table"]: {"Ref": tables[names.RUNS_PK]},
        VARIABLES["tensors_table"]: {"Ref": tables[names.TENSORS_PK]},
        VARIABLES["bucket"]: {"Ref": data_bucket},
        VARIABLES["scratch_ttl_hours"]: str(names.SCRATCH_TTL_HOURS),
        VARIABLES["inline_limit_bytes"]: str(names.INLINE_LIMIT_BYTES),
        VARIABLES["history_event_budget"]: str(names.HISTORY_EVENT_BUDGET),
        VARIABLES["service_name"]: names.SERVICE_NAME,
        VARIABLES["metrics_namespace"]: metrics_namespace("stepnet"),
        VARIABLES["log_level"]: "INFO",
    }
    training = next(
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
        and r["Properties"]["StateMachineName"] == "stepnet-Training"
    )

    # When
    functions = _functions_by_name(template)

    # Then every trainer function names the tables, the bucket and the service; the API also
    # the Training machine; the prediction functions the bucket and the pointer's TTL
    for logical, spec in FUNCTIONS.items():
        variables = functions[names.function_name("stepnet", logical)]["Environment"]["Variables"]
        if spec.package == "inference":
            assert variables == {
                INFERENCE_VARIABLES["bucket"]: {"Ref": data_bucket},
                INFERENCE_VARIABLES["pointer_ttl_seconds"]: repr(DEFAULT_POINTER_TTL_SECONDS),
                INFERENCE_VARIABLES["metrics_namespace"]: metrics_namespace("stepnet"),
                INFERENCE_VARIABLES["service_name"]: names.SERVICE_NAME,
            }, logical
        elif spec.grants.machines:
            arn = VARIABLES["training_state_machine_arn"]
            assert variables == common | {arn: {"Ref": training}}, logical
        else:
            assert variables == common, logical


def test_context_overrides_memory_and_timeout_of_one_function(make_stack: Any) -> None:
    # Given memory and timeout overrides, the timeout as `-c timeout=...` passes it (a string)
    overrides = {"memory": {"Forward": 3008}, "timeout": '{"Forward": 600}'}

    # When
    stack = make_stack(overrides)
    functions = _functions_by_name(Template.from_stack(stack))

    # Then
    forward = functions[names.function_name(stack.stack_name, "Forward")]
    cost = functions[names.function_name(stack.stack_name, "Loss")]
    assert (forward["MemorySize"], forward["Timeout"]) == (3008, 600)
    assert (cost["MemorySize"], cost["Timeout"]) == (
        FUNCTIONS["Loss"].memory_mb,
        FUNCTIONS["Loss"].timeout_s,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"memory": {"Forwrd": 2048}}, "unknown function 'Forwrd'"),
        ({"memory": {"Forward": 64}}, r"Forward must be an integer in \[128, 10240\]"),
        ({"timeout": {"Forward": 901}}, r"Forward must be an integer in \[1, 900\]"),
    ],
)
def test_context_overrides_are_validated(
    make_stack: Any, overrides: dict[str, Any], message: str
) -> None:
    # Given a mistyped or out-of-range override
    # When / Then
    with pytest.raises(ValueError, match=message):
        make_stack(overrides)


def test_context_sets_the_scratch_ttl_and_the_log_level(make_stack: Any) -> None:
    # Given deployment options the contract has defaults for
    overrides = {"scratch_ttl_hours": "48", "log_level": "DEBUG"}

    # When
    stack = make_stack(overrides)
    functions = _functions_by_name(Template.from_stack(stack))

    # Then (the trainer's functions: the prediction functions have neither)
    for logical in functions_of("trainer"):
        function = functions[names.function_name(stack.stack_name, logical)]
        variables = function["Environment"]["Variables"]
        assert variables[VARIABLES["scratch_ttl_hours"]] == "48"
        assert variables[VARIABLES["log_level"]] == "DEBUG"
    # and the one scratch TTL also sets the bucket's rule for scratch objects: 48 h, 2 days
    Template.from_stack(stack).has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [Match.object_like({"Prefix": "tensors/scratch/", "ExpirationInDays": 2})]
                )
            }
        },
    )


def _allowed(resources: dict[str, Any], role: str) -> set[tuple[str, str]]:
    """Every (action, resource) the role's policies allow, the resource as JSON."""
    allowed = set()
    for resource in resources.values():
        if (
            resource["Type"] != "AWS::IAM::Policy"
            or {"Ref": role} not in resource["Properties"]["Roles"]
        ):
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            targets = statement["Resource"]
            for action in actions if isinstance(actions, list) else [actions]:
                for target in targets if isinstance(targets, list) else [targets]:
                    allowed.add((action, json.dumps(target, sort_keys=True)))
    return allowed


@pytest.mark.parametrize("logical", list(FUNCTIONS))
def test_each_role_is_allowed_exactly_its_functions_grants(
    logical: str, stack: Any, resources: dict[str, Any], logical_id_named: Any
) -> None:
    # Given the function's role, and the contract's grants spelled as IAM
    function_id = logical_id_named(
        "AWS::Lambda::Function", "FunctionName", names.function_name(stack.stack_name, logical)
    )
    role = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    tables = {
        next(
            k["AttributeName"] for k in r["Properties"]["KeySchema"] if k["KeyType"] == "HASH"
        ): lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::DynamoDB::Table"
    }
    table_ids = {"runs": tables[names.RUNS_PK], "tensors": tables[names.TENSORS_PK]}
    bucket = next(
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::S3::Bucket" and "LoggingConfiguration" in r["Properties"]
    )
    grants = FUNCTIONS[logical].grants
    bucket_arn = {"Fn::GetAtt": [bucket, "Arn"]}
    expected = {
        (action, json.dumps({"Fn::GetAtt": [table_ids[table], "Arn"]}, sort_keys=True))
        for table, actions in grants.tables.items()
        for action in actions
    } | {
        (action, json.dumps({"Fn::Join": ["", [bucket_arn, f"/{prefix}*"]]}, sort_keys=True))
        for prefix, actions in grants.objects.items()
        for action in actions
    }
    if grants.lists_bucket:
        expected.add(("s3:ListBucket", json.dumps(bucket_arn, sort_keys=True)))
    machines = {
        r["Properties"]["StateMachineName"].removeprefix("stepnet-"): lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    }
    for machine, actions in grants.machine_actions().items():
        executions = {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":states:",
                    {"Ref": "AWS::Region"},
                    ":",
                    {"Ref": "AWS::AccountId"},
                    f":execution:stepnet-{machine}:*",
                ],
            ]
        }
        for action in actions:
            on = executions if action == "states:DescribeExecution" else {"Ref": machines[machine]}
            expected.add((action, json.dumps(on, sort_keys=True)))

    # When (its log group and X-Ray are the same for every function)
    storage = {
        (action, target)
        for action, target in _allowed(resources, role)
        if not action.startswith(("logs:", "xray:"))
    }

    # Then
    assert "ManagedPolicyArns" not in resources[role]["Properties"]
    assert storage == expected


def test_no_role_may_delete_or_scan(resources: dict[str, Any]) -> None:
    # Given every function role's allowed actions
    roles = {
        r["Properties"]["Role"]["Fn::GetAtt"][0]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function" and "FunctionName" in r["Properties"]
    }

    # When
    allowed = {(a, target) for role in roles for a, target in _allowed(resources, role)}
    # but batch inference, which replaces an output file by an error file and back (and its
    # policy is checked against its grants above)
    bucket = next(
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::S3::Bucket" and "LoggingConfiguration" in r["Properties"]
    )
    outputs = {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/inference/*/out/*"]]}
    allowed.discard(("s3:DeleteObject", json.dumps(outputs, sort_keys=True)))
    actions = {action for action, _ in allowed}

    # Then (no handler deletes, scans, updates in place or writes in batches)
    assert actions.isdisjoint(
        {
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "dynamodb:DeleteItem",
            "dynamodb:Scan",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
        }
    )
