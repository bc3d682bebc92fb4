"""The stack's outputs: the keys the CLI and docs rely on, pointing at the right resources."""

import re
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra import outputs
from trainer.contract import names

pytestmark = pytest.mark.infra


def test_outputs_include_every_key_the_client_reads(template: Template) -> None:
    # Given the keys stepnet's client looks up
    expected = set(names.STACK_OUTPUTS.values()) | {
        outputs.TRAINING_CONSOLE_URL,
        outputs.ACCESS_LOGS_BUCKET_NAME,
    }

    # When
    keys = set(template.to_json()["Outputs"])

    # Then
    assert expected <= keys


def test_outputs_name_the_training_machine_bucket_and_tables(
    template: Template, stack: Any, logical_id_named: Any
) -> None:
    # Given the synthesized outputs
    values = {key: output["Value"] for key, output in template.to_json()["Outputs"].items()}
    training = logical_id_named(
        "AWS::StepFunctions::StateMachine",
        "StateMachineName",
        names.state_machine_name(stack.stack_name, "Training"),
    )

    # When / Then
    assert values[outputs.TRAINING_STATE_MACHINE_ARN] == {"Ref": training}
    for key, resource_type in [
        (outputs.BUCKET_NAME, "AWS::S3::Bucket"),
        (outputs.RUNS_TABLE_NAME, "AWS::DynamoDB::Table"),
        (outputs.TENSORS_TABLE_NAME, "AWS::DynamoDB::Table"),
        (outputs.ACCESS_LOGS_BUCKET_NAME, "AWS::S3::Bucket"),
    ]:
        referenced = values[key]["Ref"]
        assert template.to_json()["Resources"][referenced]["Type"] == resource_type
    assert values[outputs.RUNS_TABLE_NAME] != values[outputs.TENSORS_TABLE_NAME]
    assert values[outputs.BUCKET_NAME] != values[outputs.ACCESS_LOGS_BUCKET_NAME]


def test_console_url_opens_the_training_machine(template: Template, logical_id_named: Any) -> None:
    # Given the console URL output, a Fn::Join of literals, the region and the machine's ARN
    join = template.to_json()["Outputs"][outputs.TRAINING_CONSOLE_URL]["Value"]["Fn::Join"]
    training_ref = template.to_json()["Outputs"][outputs.TRAINING_STATE_MACHINE_ARN]["Value"]

    # When the pseudo parameters are rendered with sample values
    sample = {"AWS::Region": "eu-west-1", training_ref["Ref"]: "arn:aws:states:x:1:stateMachine:s"}
    url = join[0].join(part if isinstance(part, str) else sample[part["Ref"]] for part in join[1])

    # Then
    assert url == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1"
        "#/statemachines/view/arn:aws:states:x:1:stateMachine:s"
    )
    assert re.fullmatch(r"https://[\w-]+\.console\.aws\.amazon\.com/states/home\?\S+", url)
