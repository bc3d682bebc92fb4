"""The HTTP API: an API Gateway REST API over the contract's routes (`trainer.contract.api`).

* **IAM authorization** on every method: callers sign requests with SigV4 (the AWS CLI's
  credentials; `curl --aws-sigv4`), and an IAM policy allowing `execute-api:Invoke` on the
  routes decides who may start runs or predict. docs/serving.md argues API Gateway over a
  Lambda Function URL.
* **Request validation**: a POST body must be a JSON object (the route's model) before any
  function runs; the functions then name every bad field themselves.
* **Throttling**: per stage, and tighter for `POST /runs` (each run starts a Training
  execution and its Lambdas).
* **Access logs** to a log group (JSON, one line per request), execution logs for errors,
  X-Ray traces.
* Each route is a **Lambda proxy integration** of its contract function.
"""

from collections.abc import Mapping
from typing import Final

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge
from trainer.contract.api import JSON_OBJECT, ROUTES, STAGE, resource_paths

# Requests per second (steady) and burst, for the whole stage and for starting runs.
STAGE_RATE_LIMIT: Final = 50
STAGE_BURST_LIMIT: Final = 100
START_RUN_RATE_LIMIT: Final = 1
START_RUN_BURST_LIMIT: Final = 5
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH
# The 400 API Gateway answers when a body fails its route's model (the functions' own 400s are
# {"error": …} too).
BAD_BODY_TEMPLATE: Final = (
    '{"error": "the request body must be a JSON object: $context.error.validationErrorString"}'
)


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{prefix}-api",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,  # fixed name: a retained group blocks redeploys
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{prefix}-api",
            description="stepnet: start and follow runs, predict with a pipeline's production model",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # The account's API Gateway role for CloudWatch Logs (one per region): access and
            # execution logs cannot be written without it.
            cloud_watch_role=True,
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM
            ),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                throttling_rate_limit=STAGE_RATE_LIMIT,
                throttling_burst_limit=STAGE_BURST_LIMIT,
                method_options={
                    "/runs/POST": apigw.MethodDeploymentOptions(
                        throttling_rate_limit=START_RUN_RATE_LIMIT,
                        throttling_burst_limit=START_RUN_BURST_LIMIT,
                    )
                },
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                tracing_enabled=True,
                metrics_enabled=True,
            ),
        )
        # The stack's output is ApiUrl (infra/outputs.py), not CDK's generated Endpoint output.
        self.rest_api.node.try_remove_child("Endpoint")
        self.validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        self.rest_api.add_gateway_response(
            "BadRequestBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            templates={"application/json": BAD_BODY_TEMPLATE},
        )
        # The routes' body model: a JSON object (trainer.contract.api.JSON_OBJECT).
        json_object = self.rest_api.add_model(
            "JsonObject",
            content_type="application/json",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4, type=apigw.JsonSchemaType.OBJECT
            ),
            description="a JSON object",
        )
        resources: dict[str, apigw.IResource] = {"/": self.rest_api.root}
        for path in resource_paths()[1:]:  # parents first
            parent, _, part = path.rpartition("/")
            resources[path] = resources[parent or "/"].add_resource(part)
        for route in ROUTES:
            integration = apigw.LambdaIntegration(
                functions[route.function], proxy=True, allow_test_invoke=False
            )
            models = None
            if route.body_model is not None:
                assert route.body_model == JSON_OBJECT, route  # the one model built above
                models = {"application/json": json_object}
            resources[route.path].add_method(
                route.method,
                integration,
                request_validator=self.validator,
                request_models=models,
                request_parameters={
                    f"method.request.path.{name}": True for name in route.parameters
                },
            )
        acknowledge(
            self.rest_api,
            "AwsSolutions-APIG3",
            reason="No WAF web ACL: every method requires SigV4-signed requests of IAM principals "
            "of the account (IAM authorization), and the stage is throttled; a web ACL would "
            "add a fixed monthly cost for traffic that cannot reach the functions unsigned.",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-COG4",
            reason="IAM authorization, not a Cognito user pool: the callers are AWS principals "
            "(people with the AWS CLI or stepnet, and services), authorized by IAM policies on "
            "execute-api:Invoke.",
        )
        acknowledge(
            self.rest_api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            reason="API Gateway's account-wide CloudWatch Logs role (cloud_watch_role) is the "
            "AWS managed policy made for it; access and execution logs need it.",
        )

    @property
    def url(self) -> str:
        """``https://<id>.execute-api.<region>.amazonaws.com/<stage>/``"""
        return self.rest_api.url
