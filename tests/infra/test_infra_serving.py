"""What the stack serves: the API (IAM authorization, validation, throttling, access logs,
tracing), its routes' integrations, the prediction functions and their trigger, the registry's
states in the Training machine, and the ApiUrl output."""

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra import api as infra_api
from infra import outputs
from trainer.contract import names
from trainer.contract.api import ROUTES, STAGE
from trainer.contract.functions import FUNCTIONS, functions_of
from trainer.contract.storage import DATA_BUCKET

pytestmark = pytest.mark.infra


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == kind}


def _resource_paths(resources: dict[str, Any]) -> dict[str, str]:
    """Logical id of each API resource (and the root) -> its path."""
    (api_id,) = _of_type(resources, "AWS::ApiGateway::RestApi")
    parts = _of_type(resources, "AWS::ApiGateway::Resource")

    def path(lid: str) -> str:
        parent = parts[lid]["ParentId"]
        above = "" if "Fn::GetAtt" in parent else path(parent["Ref"])
        return f"{above}/{parts[lid]['PathPart']}"

    return {lid: path(lid) for lid in parts} | {api_id: "/"}


def _function_of(integration_uri: Any, resources: dict[str, Any]) -> str:
    """The function name a Lambda proxy integration URI invokes."""
    text = json.dumps(integration_uri)
    functions = _of_type(resources, "AWS::Lambda::Function")
    (lid,) = [lid for lid in functions if f'"{lid}"' in text]
    return str(functions[lid]["FunctionName"])


def test_every_route_is_an_iam_authorized_validated_lambda_proxy_of_its_function(
    resources: dict[str, Any], stack: Any
) -> None:
    # Given the API's methods
    paths = _resource_paths(resources)
    methods = _of_type(resources, "AWS::ApiGateway::Method")
    (validator,) = _of_type(resources, "AWS::ApiGateway::RequestValidator").values()

    # When each is read as (method, path) -> properties
    found = {}
    for properties in methods.values():
        resource = properties["ResourceId"]
        lid = resource["Ref"] if "Ref" in resource else resource["Fn::GetAtt"][0]
        found[(properties["HttpMethod"], paths[lid])] = properties

    # Then exactly the contract's routes, each signed with SigV4, validated, proxied
    assert set(found) == {(route.method, route.path) for route in ROUTES}
    assert validator["ValidateRequestBody"] is True
    assert validator["ValidateRequestParameters"] is True
    for route in ROUTES:
        method = found[(route.method, route.path)]
        assert method["AuthorizationType"] == "AWS_IAM"
        assert "RequestValidatorId" in method
        assert method["Integration"]["Type"] == "AWS_PROXY"
        assert method["Integration"]["IntegrationHttpMethod"] == "POST"
        function = _function_of(method["Integration"]["Uri"], resources)
        assert function == names.function_name(stack.stack_name, route.function)
        assert ("RequestModels" in method) == (route.body_model is not None)
        for name in route.parameters:
            assert method["RequestParameters"][f"method.request.path.{name}"] is True


def test_a_post_body_must_be_a_json_object_and_a_bad_one_gets_a_json_error(
    resources: dict[str, Any],
) -> None:
    # Given the API's model and its 400 for a body that fails it
    (model,) = _of_type(resources, "AWS::ApiGateway::Model").values()
    (response,) = _of_type(resources, "AWS::ApiGateway::GatewayResponse").values()

    # Then
    assert model["ContentType"] == "application/json"
    assert model["Schema"]["type"] == "object"
    assert response["ResponseType"] == "BAD_REQUEST_BODY"
    assert "validationErrorString" in response["ResponseTemplates"]["application/json"]


def test_the_stage_is_throttled_logged_and_traced(resources: dict[str, Any]) -> None:
    # Given the API's stage
    (stage,) = _of_type(resources, "AWS::ApiGateway::Stage").values()
    settings = {(m["HttpMethod"], m["ResourcePath"]): m for m in stage["MethodSettings"]}

    # Then
    assert stage["StageName"] == STAGE
    assert stage["TracingEnabled"] is True
    everything = settings[("*", "/*")]
    assert everything["ThrottlingRateLimit"] == infra_api.STAGE_RATE_LIMIT
    assert everything["ThrottlingBurstLimit"] == infra_api.STAGE_BURST_LIMIT
    assert everything["LoggingLevel"] == "ERROR"
    starting = settings[("POST", "/~1runs")]
    assert starting["ThrottlingRateLimit"] == infra_api.START_RUN_RATE_LIMIT
    assert starting["ThrottlingBurstLimit"] == infra_api.START_RUN_BURST_LIMIT
    # and access logs go to their own log group, JSON per request
    arn = json.dumps(stage["AccessLogSetting"]["DestinationArn"])
    (destination,) = [lid for lid in _of_type(resources, "AWS::Logs::LogGroup") if lid in arn]
    assert resources[destination]["Properties"]["RetentionInDays"] == 30
    assert json.loads(stage["AccessLogSetting"]["Format"])["status"] == "$context.status"
    # and API Gateway has its account role to write them
    assert _of_type(resources, "AWS::ApiGateway::Account")


def test_only_the_api_may_invoke_the_routes_functions(resources: dict[str, Any]) -> None:
    # Given the Lambda permissions of the stack
    permissions = _of_type(resources, "AWS::Lambda::Permission").values()

    # When grouped by principal and function
    by_principal: dict[str, set[str]] = {}
    for permission in permissions:
        function = permission["FunctionName"]["Fn::GetAtt"][0]
        name = resources[function]["Properties"]["FunctionName"]
        by_principal.setdefault(permission["Principal"], set()).add(name)
        if permission["Principal"] == "apigateway.amazonaws.com":
            # scoped to this API's stage, method and path
            assert "execute-api" in json.dumps(permission["SourceArn"])

    # Then API Gateway invokes the API's functions, S3 the batch function, nothing else
    assert by_principal == {
        "apigateway.amazonaws.com": {"stepnet-Api", "stepnet-Predict"},
        "s3.amazonaws.com": {"stepnet-PredictBatch"},
    }


def test_uploads_under_inference_trigger_batch_predictions(resources: dict[str, Any]) -> None:
    # Given the bucket's notification configuration (CDK's custom resource)
    (notifications,) = _of_type(resources, "Custom::S3BucketNotifications").values()
    configurations = notifications["NotificationConfiguration"]["LambdaFunctionConfigurations"]

    # When
    found = {
        (
            resources[c["LambdaFunctionArn"]["Fn::GetAtt"][0]]["Properties"]["FunctionName"],
            tuple(c["Events"]),
            tuple(sorted((r["Name"], r["Value"]) for r in c["Filter"]["Key"]["FilterRules"])),
        )
        for c in configurations
    }

    # Then the contract's triggers, on the data bucket
    assert found == {
        (
            names.function_name("stepnet", t.function),
            t.events,
            (("prefix", t.prefix), ("suffix", t.suffix)),
        )
        for t in DATA_BUCKET.triggers
    }
    bucket = notifications["BucketName"]["Ref"]
    assert "LoggingConfiguration" in resources[bucket]["Properties"]  # the data bucket


def test_the_prediction_functions_ship_the_inference_asset_and_the_rest_the_trainer_s(
    resources: dict[str, Any],
) -> None:
    # Given each function's code asset
    functions = {
        p["FunctionName"]: json.dumps(p["Code"], sort_keys=True)
        for p in _of_type(resources, "AWS::Lambda::Function").values()
        if "FunctionName" in p
    }

    # When
    inference = {functions[names.function_name("stepnet", f)] for f in functions_of("inference")}
    trainer = {functions[names.function_name("stepnet", f)] for f in functions_of("trainer")}

    # Then two assets, one per package
    assert len(inference) == len(trainer) == 1
    assert inference != trainer
    assert FUNCTIONS["PredictBatch"].timeout_s == 900


def test_the_training_machine_ends_with_the_registry_states(resources: dict[str, Any]) -> None:
    # Given the Training machine's definition
    (training,) = [
        p
        for p in _of_type(resources, "AWS::StepFunctions::StateMachine").values()
        if p["StateMachineName"] == "stepnet-Training"
    ]
    definition = training["DefinitionString"]
    text = definition if isinstance(definition, str) else "".join(definition["Fn::Join"][1])
    states = json.loads(text)["States"]

    # Then Export leads to Register, Promote, and the outcome Choice, visible in the graph
    assert states["Export model"]["Next"] == "Register model"
    assert states["Register model"]["Next"] == "Promote if better"
    assert states["Promote if better"]["Next"] == "Promoted?"
    assert {c["Next"] for c in states["Promoted?"]["Choices"]} == {"Promoted"}
    assert states["Promoted?"]["Default"] == "Not promoted"
    substitutions = training["DefinitionSubstitutions"]
    for logical in ("Register", "Promote"):
        function = substitutions[f"{logical}FunctionArn"]["Fn::GetAtt"][0]
        assert resources[function]["Properties"]["FunctionName"] == f"stepnet-{logical}"


def test_the_api_url_is_an_output(template: Template, resources: dict[str, Any]) -> None:
    # Given the outputs
    found = template.to_json()["Outputs"]

    # Then ApiUrl is the stage's URL, and CDK's generated duplicate is gone
    text = json.dumps(found[outputs.API_URL]["Value"])
    (stage,) = _of_type(resources, "AWS::ApiGateway::Stage")
    assert "execute-api" in text and f'{{"Ref": "{stage}"}}, "/"' in text
    assert resources[stage]["Properties"]["StageName"] == STAGE
    assert not [key for key in found if key.startswith("ApiRestApiEndpoint")]
