"""The stack's outputs. The keys are a contract: docs and the CLI (stepnet/client.py, through
trainer.contract.names.STACK_OUTPUTS) look outputs up by them."""

from typing import Final

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_stepfunctions as sfn

from infra.storage import Storage
from trainer.contract import names

TRAINING_STATE_MACHINE_ARN: Final = names.STACK_OUTPUTS["training_arn"]
BUCKET_NAME: Final = names.STACK_OUTPUTS["bucket"]
RUNS_TABLE_NAME: Final = names.STACK_OUTPUTS["runs_table"]
TENSORS_TABLE_NAME: Final = names.STACK_OUTPUTS["tensors_table"]
# For people, not the client:
TRAINING_CONSOLE_URL: Final = "TrainingStateMachineConsoleUrl"
ACCESS_LOGS_BUCKET_NAME: Final = "AccessLogsBucketName"  # retained by `cdk destroy`


def console_url(region: str, state_machine_arn: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/statemachines/view/{state_machine_arn}"
    )


def add_outputs(stack: Stack, *, training: sfn.StateMachine, storage: Storage) -> None:
    values = {
        TRAINING_STATE_MACHINE_ARN: training.state_machine_arn,
        TRAINING_CONSOLE_URL: console_url(stack.region, training.state_machine_arn),
        BUCKET_NAME: storage.bucket.bucket_name,
        RUNS_TABLE_NAME: storage.runs_table.table_name,
        TENSORS_TABLE_NAME: storage.tensors_table.table_name,
        ACCESS_LOGS_BUCKET_NAME: storage.access_logs_bucket.bucket_name,
    }
    for key, value in values.items():
        CfnOutput(stack, key, value=value)  # a direct child of the stack: its id is the key


API_URL: Final = "ApiUrl"  # for people (curl --aws-sigv4, docs/serving.md), not the client


def add_api_outputs(stack: Stack, url: str) -> None:
    """The API's base URL: ``https://<id>.execute-api.<region>.amazonaws.com/<stage>/``."""
    CfnOutput(stack, API_URL, value=url)
