"""The contract test: the local engine's account is the synthesized stack, as far as the
functions, the store and the state machines can tell.

The stack is synthesized as `cdk synth` builds it (cdk.json's context, without bundling) and
compared with a running LocalAccount through what each side really holds: the template's
properties on one side, the emulated services' answers on the other. What the stack leaves to
CloudFormation (table and bucket names, ARNs) is compared by what it designates: an environment
variable's `Ref` by the table or bucket it points at, an ARN in a definition by the function or
machine it names.

Last, the functions' own calls: every DynamoDB, S3 and Step Functions call each handler makes on
the engine must be allowed by its role in the template, and every such permission in that role
must be used: the workflow's functions through a whole run per mode, the API's and the
prediction functions' on that run (a prediction for an uploaded file through the bucket's
trigger).
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from support import pipeline_driver

from inference import handlers as inference_handlers
from infra.stack import StepnetStack
from stepnet.datasets import npz_bytes, synthetic_regression
from stepnet.engine import LocalAccount, patches
from stepnet.engine.account import ACCOUNT_ID, LOG_LEVEL, REGION
from stepnet.engine.runtime import LambdaContext
from trainer import settings
from trainer.contract import names
from trainer.contract.environment import VARIABLES
from trainer.contract.functions import FUNCTIONS, MODES, key_matches
from trainer.contract.statemachines import STATE_MACHINES, function_placeholder, machine_placeholder
from trainer.data.shards import encode_shard
from trainer.handlers import api as api_handler
from trainer.handlers import mark_failed as mark_failed_handler
from trainer.handlers import retrain as retrain_handler
from trainer.store import RunStore, Store

pytestmark = [pytest.mark.engine, pytest.mark.infra, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = names.DEFAULT_STACK_NAME  # what `cdk deploy` and `LocalAccount()` both default to
# The environment variables whose values name a resource: a `Ref` in the template.
RESOURCE_VARIABLES = {
    VARIABLES[field]: field for field in ("runs_table", "tensors_table", "bucket")
}
MARKER = re.compile(r"<(function|machine):(\w+)>")


# --- the two sides ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def account() -> Iterator[LocalAccount]:
    """The account, its handlers in this process: the contract test hooks the clients of the
    handlers it calls itself (the API's, the predictions') to see each function's calls."""
    with LocalAccount(isolation="threads") as local:
        yield local


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    app = cdk.App(context={**context, "aws:cdk:bundling-stacks": []})
    return Template.from_stack(StepnetStack(app, STACK_NAME)).to_json()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(template["Resources"])


def _of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == kind}


@pytest.fixture(scope="module")
def stack_functions(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """logical function name -> its properties in the template."""
    functions = _of_type(resources, "AWS::Lambda::Function").values()
    # (CDK's bucket-notifications custom resource is a function without a name)
    by_name = {p["FunctionName"]: p for p in functions if "FunctionName" in p}
    return {logical: by_name[names.function_name(STACK_NAME, logical)] for logical in FUNCTIONS}


@pytest.fixture(scope="module")
def engine_functions(account: LocalAccount) -> dict[str, dict[str, Any]]:
    """logical function name -> its configuration in the engine."""
    client = account.client("lambda")
    return {
        logical: client.get_function_configuration(
            FunctionName=names.function_name(account.stack_name, logical)
        )
        for logical in FUNCTIONS
    }


@dataclass(frozen=True)
class Designated:
    """What a resource variable names: the template's logical id, and the engine's name."""

    field: str
    logical_id: str
    engine_name: str


@pytest.fixture(scope="module")
def designated(
    stack_functions: dict[str, dict[str, Any]], engine_functions: dict[str, dict[str, Any]]
) -> dict[str, Designated]:
    """field ("runs_table", "tensors_table", "bucket") -> what it names on either side."""
    stack_env = stack_functions["Initialize"]["Environment"]["Variables"]
    engine_env = engine_functions["Initialize"]["Environment"]["Variables"]
    return {
        field: Designated(field, stack_env[variable]["Ref"], engine_env[variable])
        for variable, field in RESOURCE_VARIABLES.items()
    }


# --- functions -------------------------------------------------------------------------------


def test_the_same_functions_run_the_same_handlers_on_the_same_runtime_and_sizes(
    stack_functions: dict[str, dict[str, Any]], engine_functions: dict[str, dict[str, Any]]
) -> None:
    # Given what each side says about each function
    fields = ("Handler", "Runtime", "Architectures", "MemorySize", "Timeout")

    # When
    stack = {logical: {f: p[f] for f in fields} for logical, p in stack_functions.items()}
    engine = {logical: {f: c[f] for f in fields} for logical, c in engine_functions.items()}

    # Then
    assert engine == stack


def test_every_function_gets_the_same_environment(
    stack_functions: dict[str, dict[str, Any]],
    engine_functions: dict[str, dict[str, Any]],
    account: LocalAccount,
) -> None:
    assert account.resources is not None
    account_training_arn = account.resources.training_arn
    # Given each side's environments
    for logical in FUNCTIONS:
        stack_env = stack_functions[logical]["Environment"]["Variables"]
        engine_env = engine_functions[logical]["Environment"]["Variables"]

        # When the values that are not tokens are set apart
        literal = {name: value for name, value in stack_env.items() if isinstance(value, str)}
        differing = {name for name, value in literal.items() if engine_env.get(name) != value}

        # Then the same variables, the same values but for the engine's one deliberate choice,
        # and tokens exactly where the stack names its own tables, bucket and machine
        assert set(engine_env) == set(stack_env), logical
        assert differing <= {VARIABLES["log_level"]}, (
            logical,
            {name: (literal[name], engine_env.get(name)) for name in differing},
        )
        spec = FUNCTIONS[logical]
        tokens = {VARIABLES["bucket"]} if spec.package == "inference" else set(RESOURCE_VARIABLES)
        if spec.grants.machines:
            tokens.add(VARIABLES["training_state_machine_arn"])
            assert engine_env[VARIABLES["training_state_machine_arn"]] == account_training_arn
        if spec.package == "trainer":
            assert engine_env[VARIABLES["log_level"]] == LOG_LEVEL
        assert set(stack_env) - set(literal) == tokens, logical


# --- the store: tables and bucket ------------------------------------------------------------


def _stack_ttl(properties: dict[str, Any]) -> str | None:
    ttl = properties.get("TimeToLiveSpecification")
    return str(ttl["AttributeName"]) if ttl and ttl.get("Enabled") else None


def _engine_ttl(description: dict[str, Any]) -> str | None:
    enabled = description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
    return str(description["AttributeName"]) if enabled else None


@pytest.mark.parametrize("field", ["runs_table", "tensors_table"])
def test_each_table_has_the_same_keys_billing_and_ttl(
    field: str,
    designated: dict[str, Designated],
    resources: dict[str, dict[str, Any]],
    account: LocalAccount,
) -> None:
    # Given the table the functions' variable names, on either side
    table = designated[field]
    properties = resources[table.logical_id]["Properties"]
    dynamodb = account.client("dynamodb")

    # When
    described = dynamodb.describe_table(TableName=table.engine_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=table.engine_name)["TimeToLiveDescription"]

    # Then
    def attributes(definitions: list[dict[str, str]]) -> list[dict[str, str]]:
        return sorted(definitions, key=lambda a: a["AttributeName"])

    assert described["KeySchema"] == properties["KeySchema"]
    assert attributes(described["AttributeDefinitions"]) == attributes(
        properties["AttributeDefinitions"]
    )
    assert described["BillingModeSummary"]["BillingMode"] == properties["BillingMode"]
    assert _engine_ttl(ttl) == _stack_ttl(properties)


def _stack_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule, as the fields both sides can have."""
    return {
        "id": rule["Id"],
        "prefix": rule.get("Prefix", rule.get("Filter", {}).get("Prefix", "")),
        "status": rule["Status"],
        "expiration_days": rule.get("ExpirationInDays"),
        "abort_multipart_days": rule.get("AbortIncompleteMultipartUpload", {}).get(
            "DaysAfterInitiation"
        ),
    }


def _engine_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """An S3 API lifecycle rule, as the fields both sides can have."""
    return {
        "id": rule["ID"],
        "prefix": rule.get("Filter", {}).get("Prefix", rule.get("Prefix", "")),
        "status": rule["Status"],
        "expiration_days": rule.get("Expiration", {}).get("Days"),
        "abort_multipart_days": rule.get("AbortIncompleteMultipartUpload", {}).get(
            "DaysAfterInitiation"
        ),
    }


def test_the_bucket_has_the_same_lifecycle_rules(
    designated: dict[str, Designated],
    resources: dict[str, dict[str, Any]],
    account: LocalAccount,
) -> None:
    # Given the bucket the functions' variable names, on either side
    bucket = designated["bucket"]
    properties = resources[bucket.logical_id]["Properties"]

    # When
    engine = account.client("s3").get_bucket_lifecycle_configuration(Bucket=bucket.engine_name)

    # Then
    def by_id(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rules, key=lambda rule: str(rule["id"]))

    assert by_id([_engine_rule(rule) for rule in engine["Rules"]]) == by_id(
        [_stack_rule(rule) for rule in properties["LifecycleConfiguration"]["Rules"]]
    )


def test_the_bucket_triggers_the_same_functions_on_the_same_keys(
    designated: dict[str, Designated],
    resources: dict[str, dict[str, Any]],
    account: LocalAccount,
) -> None:
    # Given the data bucket's notifications on either side (the stack's through CDK's custom
    # resource)
    bucket = designated["bucket"]
    (stack_side,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "Custom::S3BucketNotifications"
        and r["Properties"]["BucketName"] == {"Ref": bucket.logical_id}
    ]
    engine_side = account.client("s3").get_bucket_notification_configuration(
        Bucket=bucket.engine_name
    )
    functions = {
        lid: r["Properties"]["FunctionName"]
        for lid, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and "FunctionName" in r["Properties"]
    }

    # When each is read as (function, events, filter rules)
    def read(configurations: list[dict[str, Any]], name_of: Any) -> set[Any]:
        return {
            (
                name_of(c["LambdaFunctionArn"]),
                tuple(sorted(c["Events"])),
                tuple(
                    sorted(
                        (r["Name"].lower(), r["Value"]) for r in c["Filter"]["Key"]["FilterRules"]
                    )
                ),
            )
            for c in configurations
        }

    stack = read(
        stack_side["NotificationConfiguration"]["LambdaFunctionConfigurations"],
        lambda arn: functions[arn["Fn::GetAtt"][0]],
    )
    engine = read(engine_side["LambdaFunctionConfigurations"], lambda arn: arn.rsplit(":", 1)[1])

    # Then
    assert engine == stack
    assert stack  # batch inference is triggered


# --- state machines --------------------------------------------------------------------------


def _literal(value: Any) -> str:
    """A DefinitionString: a plain string, or a Fn::Join of plain strings."""
    if isinstance(value, str):
        return value
    delimiter, parts = value["Fn::Join"]
    assert all(isinstance(part, str) for part in parts), parts
    return str(delimiter).join(parts)


@pytest.fixture(scope="module")
def stack_machines(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """logical machine -> {type, placeholders, definition with ARNs as <function:X>/<machine:Y>}."""
    functions = _of_type(resources, "AWS::Lambda::Function")
    machines = _of_type(resources, "AWS::StepFunctions::StateMachine")
    prefix = f"{STACK_NAME}-"

    def marker(value: dict[str, Any]) -> str:
        if set(value) == {"Fn::GetAtt"} and value["Fn::GetAtt"][0] in functions:
            name = functions[value["Fn::GetAtt"][0]]["FunctionName"]
            return f"<function:{name.removeprefix(prefix)}>"
        if set(value) == {"Ref"} and value["Ref"] in machines:
            return f"<machine:{machines[value['Ref']]['StateMachineName'].removeprefix(prefix)}>"
        raise AssertionError(f"a substitution that names neither a function nor a machine: {value}")

    found = {}
    for properties in machines.values():
        logical = properties["StateMachineName"].removeprefix(prefix)
        substitutions = properties.get("DefinitionSubstitutions", {})
        definition = re.sub(
            r"\$\{(\w+)\}",
            lambda m, values=substitutions: marker(values[m[1]]),
            _literal(properties["DefinitionString"]),
        )
        found[logical] = {
            "type": properties["StateMachineType"],
            "placeholders": set(substitutions),
            "definition": json.loads(definition),
        }
    return found


@pytest.fixture(scope="module")
def engine_machines(account: LocalAccount) -> dict[str, dict[str, Any]]:
    """logical machine -> {type, placeholders, definition with ARNs as <function:X>/<machine:Y>}."""
    lambda_, sfn = account.client("lambda"), account.client("stepfunctions")
    prefix = f"{account.stack_name}-"
    arns = {
        f["FunctionArn"]: f"<function:{f['FunctionName'].removeprefix(prefix)}>"
        for f in lambda_.list_functions()["Functions"]
    }
    listed = sfn.list_state_machines()["stateMachines"]
    arns |= {m["stateMachineArn"]: f"<machine:{m['name'].removeprefix(prefix)}>" for m in listed}
    found = {}
    for machine in listed:
        described = sfn.describe_state_machine(stateMachineArn=machine["stateMachineArn"])
        definition = described["definition"]
        for arn in sorted(arns, key=len, reverse=True):
            definition = definition.replace(arn, arns[arn])
        named = {
            function_placeholder(name) if kind == "function" else machine_placeholder(name)
            for kind, name in MARKER.findall(definition)
        }
        found[machine["name"].removeprefix(prefix)] = {
            "type": described["type"],
            "placeholders": named,
            "definition": json.loads(definition),
        }
    return found


def test_the_bucket_s_events_go_to_the_same_rule_which_starts_the_same_machine(
    designated: dict[str, Designated],
    resources: dict[str, dict[str, Any]],
    stack_machine_arns: dict[str, str],
    account: LocalAccount,
) -> None:
    # Given the rules on either side with an event pattern (the stack's, the engine's)
    bucket = designated["bucket"]
    (notifications,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "Custom::S3BucketNotifications"
        and r["Properties"]["BucketName"] == {"Ref": bucket.logical_id}
    ]
    stack_rules = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]
    ]
    events = account.client("events")
    engine_rules = [r for r in events.list_rules()["Rules"] if "EventPattern" in r]
    # (moto's GetBucketNotificationConfiguration leaves EventBridge out: read its bucket)
    from moto.s3.models import s3_backends

    engine_bucket = s3_backends[ACCOUNT_ID]["aws"].get_bucket(bucket.engine_name)

    # When each side's pattern names its own bucket, read as the bucket's name
    def pattern(document: dict[str, Any], bucket_name: Any) -> dict[str, Any]:
        named = json.loads(json.dumps(document))
        assert named["detail"]["bucket"]["name"] == [bucket_name]
        named["detail"]["bucket"]["name"] = ["<data bucket>"]
        return named

    (stack_rule,) = stack_rules
    (engine_rule,) = engine_rules
    (stack_target,) = stack_rule["Targets"]
    (engine_target,) = events.list_targets_by_rule(Rule=engine_rule["Name"])["Targets"]

    # Then the bucket sends its events to EventBridge on both sides, the same pattern matches
    # them, and its one target is the same machine
    assert "EventBridgeConfiguration" in notifications["NotificationConfiguration"]
    assert engine_bucket.notification_configuration.event_bridge is not None
    assert pattern(stack_rule["EventPattern"], {"Ref": bucket.logical_id}) == pattern(
        json.loads(engine_rule["EventPattern"]), bucket.engine_name
    )
    assert stack_machine_arns[stack_target["Arn"]["Ref"]] == engine_target["Arn"]


def test_the_same_machines_of_the_same_type(
    stack_machines: dict[str, dict[str, Any]], engine_machines: dict[str, dict[str, Any]]
) -> None:
    # Given / When
    stack = {logical: m["type"] for logical, m in stack_machines.items()}
    engine = {logical: m["type"] for logical, m in engine_machines.items()}

    # Then
    assert engine == stack
    assert sorted(stack) == sorted(STATE_MACHINES)


@pytest.mark.parametrize("logical", sorted(STATE_MACHINES))
def test_each_definition_fills_the_same_placeholders_with_the_same_resources(
    logical: str,
    stack_machines: dict[str, dict[str, Any]],
    engine_machines: dict[str, dict[str, Any]],
) -> None:
    # Given each side's definition, every ARN replaced by what it names
    stack, engine = stack_machines[logical], engine_machines[logical]

    # When / Then
    assert engine["placeholders"] == stack["placeholders"]
    assert engine["definition"] == stack["definition"]


def test_clients_find_the_same_outputs(template: dict[str, Any], account: LocalAccount) -> None:
    # Given the outputs a client reads
    expected = set(names.STACK_OUTPUTS.values())

    # When
    (described,) = account.client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"]

    # Then
    assert {output["OutputKey"] for output in described["Outputs"]} == expected
    assert expected <= set(template["Outputs"])


# --- what the functions do with the store, against what their roles allow ---------------------

Call = tuple[str, str, str]  # (IAM action, table or bucket name, object key or "")


@pytest.fixture(scope="module")
def calls(account: LocalAccount) -> Iterator[dict[str, set[Call]]]:
    """Every store call each function's handler makes in a whole run per mode (and one on a
    prefix of shards), each task retried once (what Step Functions does after a lost response), every tensor spilled to S3 (inline
    limit 0) and every invocation in a cold container (no cached tensors or configs)."""
    assert account.resources is not None
    observed: dict[str, set[Call]] = defaultdict(set)
    running = [""]  # the function whose handler is running (the pipeline runs one at a time)

    def record(model: Any, params: dict[str, Any], event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".")[1], model.name
        if service == "sfn":  # the API's: on the machine, or on an execution
            arn = params.get("stateMachineArn") or params["executionArn"]
            observed[running[0]].add((f"states:{operation}", arn, ""))
        elif service == "dynamodb":
            tables = params["RequestItems"] if "RequestItems" in params else [params["TableName"]]
            for table in tables:
                observed[running[0]].add((f"dynamodb:{operation}", table, ""))
        else:  # HeadObject is allowed by s3:GetObject, ListObjectsV2 by s3:ListBucket
            action = {"HeadObject": "s3:GetObject", "ListObjectsV2": "s3:ListBucket"}.get(
                operation, f"s3:{operation}"
            )
            observed[running[0]].add((action, params["Bucket"], params.get("Key", "")))

    dynamodb, s3 = account.client("dynamodb"), account.client("s3")
    # a dataset where `stepnet start` uploads it: one file, and a prefix of two shards (one
    # read in place, one compressed and so converted)
    X, y = synthetic_regression(n=48, d=3, k=2, seed=5)
    key = f"{names.S3_UPLOADS_PREFIX}contract.npz"
    s3.put_object(Bucket=account.resources.bucket, Key=key, Body=npz_bytes(X, y))
    prefix = f"{names.S3_UPLOADS_PREFIX}contract-shards/"
    for name, body in (("a.npz", encode_shard(X[:20], y[:20])), ("b.npz", npz_bytes(X, y))):
        s3.put_object(Bucket=account.resources.bucket, Key=prefix + name, Body=body)
    # (nothing under datasets/<pipeline>/: no Retrain execution starts, none is running)
    assert not _retrains_running(account)
    for client in (dynamodb, s3):
        client.meta.events.register("before-parameter-build", record)
    store = Store.from_clients(
        dynamodb,
        s3,
        runs_table=account.resources.runs_table,
        tensors_table=account.resources.tensors_table,
        bucket=account.resources.bucket,
        inline_limit=0,
    )

    def cold(logical: str, handler: pipeline_driver.Handler) -> pipeline_driver.Handler:
        def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
            running[0] = logical
            store.tensors.clear_cache()
            store.runs.clear_cache()
            return handler(event, context)

        return invoke

    original = dict(pipeline_driver.HANDLERS)
    settings.install(store)
    try:
        pipeline_driver.HANDLERS.update(
            {logical: cold(logical, h) for logical, h in original.items()}
        )
        for mode, source in (*((mode, key) for mode in MODES), ("fused", prefix)):
            config = {
                "run_id": f"contract-{mode.replace('_', '-')}-{len(source)}",
                "dataset": {"source": store.objects.uri(source), "validation_fraction": 0.25},
                "model": {
                    "layers": [
                        {"units": 4, "activation": "tanh"},
                        {"units": 2, "activation": "linear"},
                    ]
                },
                "loss": "mse",
                "optimizer": {"name": "adam", "learning_rate": 0.01},
                "epochs": 1,
                "batch_size": 8,
                "workers": 2,
                "mode": mode,
            }
            pipeline_driver.Pipeline(retry=True).train(config, config["run_id"])
        # `stepnet resume` of the last run, as if it had failed (its status set unrecorded)
        RunStore(account.client("dynamodb"), table=account.resources.runs_table).set_status(
            config["run_id"], "FAILED"
        )
        pipeline_driver.invoke("Resume", {"run_id": config["run_id"], "attempt": 1})
        _outside_the_workflow(account, config, running, record)
        yield observed
    finally:
        pipeline_driver.HANDLERS.update(original)
        settings.install(None)
        inference_handlers.reset()


def _retrains_running(account: LocalAccount) -> bool:
    sfn = account.client("stepfunctions")
    machine = account.machine_arns["Retrain"]
    return bool(sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"])


def _outside_the_workflow(
    account: LocalAccount, config: dict[str, Any], running: list[str], record: Any
) -> None:
    """The API and the prediction functions, each in a cold container, on the run ``config``
    trained (and its pipeline, which it promoted): the API starts it again (its execution fails
    at once, by an injected fault, so nothing runs in the background), lists the runs and
    describes it; then a prediction online, and one for an uploaded file (through the bucket's
    trigger)."""
    assert account.resources is not None
    run_id = config["run_id"]
    running[0] = "Api"
    settings.executions.cache_clear()
    settings.executions().sfn.meta.events.register("before-parameter-build", record)
    account.runtime.inject_fault(
        names.function_name(account.stack_name, "Initialize"), "Contract.NotStarted"
    )
    # (and so does the marking of its failure: the run the API started is the one trained here,
    # which the marking would replace; MarkFailed's calls are recorded last)
    account.runtime.inject_fault(
        names.function_name(account.stack_name, "MarkFailed"), "Contract.NotStarted"
    )
    requests = [
        ("POST", "/runs", None, json.dumps(config)),
        ("GET", "/runs", None, None),
        ("GET", "/runs/{run_id}", {"run_id": run_id}, None),
    ]
    statuses = []
    for method, resource, parameters, body in requests:
        event = {"httpMethod": method, "resource": resource, "pathParameters": parameters}
        statuses.append(api_handler.handler(event | {"body": body}, LambdaContext("stepnet-Api")))
        if method == "POST":  # the started execution fails at once (the injected fault)
            sfn = account.client("stepfunctions")
            arn = json.loads(statuses[-1]["body"])["execution_arn"]
            while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                time.sleep(0.05)
    assert [r["statusCode"] for r in statuses] == [201, 200, 200], statuses

    running[0] = "Predict"
    inference_handlers.reset()
    inference_handlers.s3_client().meta.events.register("before-parameter-build", record)
    event = {"pathParameters": {"pipeline": run_id}, "body": json.dumps({"rows": [[0.0] * 3]})}
    assert inference_handlers.online(event)["statusCode"] == 200

    running[0] = "PredictBatch"
    inference_handlers.reset()
    inference_handlers.s3_client().meta.events.register("before-parameter-build", record)
    uploader = account.client("s3")  # not recorded: the upload is the user's
    bucket, key = account.resources.bucket, f"inference/{run_id}/in/rows.csv"
    uploader.put_object(Bucket=bucket, Key=key, Body=b"a,b,c\n1,2,3\n")
    assert patches.wait_for_notifications()  # S3 invokes the function asynchronously
    uploader.head_object(Bucket=bucket, Key=f"inference/{run_id}/out/rows.csv")

    # Retrain: the claim for a dataset uploaded for the run's pipeline, and its release (the
    # Retrain machine's two steps, called as it calls them; no run is started)
    running[0] = "Retrain"
    upload = {
        "source": "aws.s3", "id": "contract", "detail-type": "Object Created",
        "detail": {"bucket": {"name": bucket}, "object": {"key": f"datasets/{run_id}/new.npz"}},
    }  # fmt: skip
    context = LambdaContext("stepnet-Retrain")
    claim = retrain_handler.handler(
        {"action": "claim", "trigger": upload, "execution_name": "contract"}, context
    )
    assert claim["action"] == "run", claim
    release = {"action": "release", "execution_name": "contract", "pipeline": run_id}
    done = retrain_handler.handler(release | {"run_id": claim["run_id"]}, context)
    assert done["action"] == "done", done

    # MarkFailed, as the Training machine's failure path calls it, on the run trained here
    running[0] = "MarkFailed"
    settings.store().runs.clear_cache()  # a cold container
    caught = {"Error": "States.TaskFailed", "Cause": "RuntimeError: contract"}
    failure = mark_failed_handler.handler(
        {"execution_name": run_id, "execution_input": config, "error": caught},
        LambdaContext("stepnet-MarkFailed"),
    )
    assert failure["run_id"] == run_id, failure


Allowed = tuple[str, str, str]  # (IAM action, table or bucket name, key prefix; "*" for the bucket)


@pytest.fixture(scope="module")
def stack_machine_arns(
    resources: dict[str, dict[str, Any]], account: LocalAccount
) -> dict[str, str]:
    """Logical id of each state machine in the template -> its ARN in the engine."""
    arns = {
        m["name"]: m["stateMachineArn"]
        for m in account.client("stepfunctions").list_state_machines()["stateMachines"]
    }
    return {
        lid: arns[r["Properties"]["StateMachineName"]]
        for lid, r in resources.items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    }


PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID}


def _allowed_storage(
    resources: dict[str, dict[str, Any]], role: str, engine_names: dict[str, str]
) -> set[Allowed]:
    """What the role allows on the tables, the bucket and the state machines, in the engine's
    names (``engine_names``: logical id of a table, the bucket or a machine -> its name, or
    ARN, in the engine)."""

    def target(resource: Any) -> tuple[str, str]:
        if set(resource) == {"Fn::GetAtt"}:
            return engine_names[resource["Fn::GetAtt"][0]], "*"
        if set(resource) == {"Ref"}:  # a state machine
            return engine_names[resource["Ref"]], ""
        delimiter, parts = resource["Fn::Join"]
        if isinstance(parts[0], str) and parts[0] == "arn:":  # executions: an ARN pattern
            return "".join(p if isinstance(p, str) else PSEUDO[p["Ref"]] for p in parts), ""
        (arn, suffix) = parts
        assert delimiter == "" and suffix.startswith("/") and suffix.endswith("*"), resource
        return engine_names[arn["Fn::GetAtt"][0]], suffix[1:-1]

    allowed: set[Allowed] = set()
    for policy in _of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Roles"]:
            continue
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            targets = statement["Resource"]
            for action in actions if isinstance(actions, list) else [actions]:
                if action.startswith(("logs:", "xray:")):
                    continue  # its own log group, and traces: the same for every function
                for resource in targets if isinstance(targets, list) else [targets]:
                    allowed.add((action, *target(resource)))
    return allowed


def _permits(allowed: Allowed, call: Call) -> bool:
    action, name, prefix = allowed
    if action.startswith("states:"):  # an ARN, or an ARN pattern (executions: `…:Training:*`)
        return action == call[0] and fnmatch.fnmatchcase(call[1], name)
    if (action, name) != call[:2]:
        return False
    return prefix == "*" if not call[2] else prefix != "*" and key_matches(prefix, call[2])


@pytest.mark.parametrize("logical", list(FUNCTIONS))
def test_each_function_does_exactly_what_its_role_allows(
    logical: str,
    calls: dict[str, set[Call]],
    resources: dict[str, dict[str, Any]],
    stack_functions: dict[str, dict[str, Any]],
    designated: dict[str, Designated],
    stack_machine_arns: dict[str, str],
) -> None:
    # Given the function's role in the template, in the engine's names
    role = stack_functions[logical]["Role"]["Fn::GetAtt"][0]
    engine_names = {d.logical_id: d.engine_name for d in designated.values()}
    engine_names |= {lid: arn for lid, arn in stack_machine_arns.items()}
    allowed = _allowed_storage(resources, role, engine_names)
    made = calls[logical]

    # When
    denied = sorted(call for call in made if not any(_permits(a, call) for a in allowed))
    listing = {a for a in allowed if a[0] == "s3:ListBucket"}
    unused = sorted(a for a in allowed - listing if not any(_permits(a, c) for c in made))

    # Then every call is allowed, and every permission is needed
    assert made, f"{logical} made no calls"
    assert denied == []
    assert unused == []
    # (ListBucket is not called: it makes a missing key read as 404, for whoever reads objects)
    reads_objects = any(action == "s3:GetObject" for action, _, _ in made)
    assert bool(listing) == reads_objects


def test_calls_are_attributed_to_functions_only(calls: dict[str, set[Call]]) -> None:
    # Given / When / Then (nothing ran outside a handler while recording)
    assert set(calls) == set(FUNCTIONS)
