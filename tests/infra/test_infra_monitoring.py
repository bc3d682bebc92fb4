"""Retraining and monitoring in the synthesized stack: the bucket's events go to EventBridge,
whose upload rule (and each scheduled pipeline's rule) starts the Retrain machine through a role
allowed exactly that; the dashboard; the contract's alarms, each notifying the encrypted topic;
the topic's email subscription, a checked deploy-time setting."""

import json
from typing import Any

import pytest
from cdk_nag import AwsSolutionsChecks

from infra.settings import DeploySettingError
from trainer.contract import monitoring, names
from trainer.contract.retrain import upload_pattern
from trainer.contract.statemachines import STATE_MACHINES

pytestmark = pytest.mark.infra


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == kind}


def _machine(resources: dict[str, Any], logical: str) -> str:
    (found,) = [
        lid
        for lid, props in _of_type(resources, "AWS::StepFunctions::StateMachine").items()
        if props["StateMachineName"] == names.state_machine_name("stepnet", logical)
    ]
    return found


def _data_bucket(resources: dict[str, Any]) -> str:
    (found,) = [
        lid
        for lid, props in _of_type(resources, "AWS::S3::Bucket").items()
        if "LifecycleConfiguration" in props and "Storage" in lid and "AccessLogs" not in lid
    ]
    return found


def test_an_upload_under_datasets_starts_the_retrain_machine(resources: dict[str, Any]) -> None:
    # Given
    bucket = _data_bucket(resources)
    retrain = _machine(resources, "Retrain")

    # When
    (notifications,) = _of_type(resources, "Custom::S3BucketNotifications").values()
    rules = _of_type(resources, "AWS::Events::Rule")
    (upload,) = [r for r in rules.values() if "EventPattern" in r]

    # Then the bucket sends its events to EventBridge, and the rule is the contract's pattern
    assert notifications["NotificationConfiguration"]["EventBridgeConfiguration"] == {}
    expected = upload_pattern("BUCKET")
    expected["detail"]["bucket"]["name"] = [{"Ref": bucket}]
    assert upload["EventPattern"] == expected
    assert upload["State"] == "ENABLED"
    (target,) = upload["Targets"]
    assert target["Arn"] == {"Ref": retrain}
    # through a role that may start the Retrain machine and nothing else
    role = target["RoleArn"]["Fn::GetAtt"][0]
    statements = [
        statement
        for policy in _of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Roles"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    assert statements == [
        {"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": retrain}}
    ]


def test_a_scheduled_pipeline_gets_a_rule_with_its_name_as_input(make_stack: Any) -> None:
    # Given
    from aws_cdk.assertions import Template

    stack = make_stack({"retrain_schedules": {"digits": "rate(7 days)"}})

    # When
    resources = Template.from_stack(stack).to_json()["Resources"]
    scheduled = [
        r for r in _of_type(resources, "AWS::Events::Rule").values() if "ScheduleExpression" in r
    ]

    # Then
    (rule,) = scheduled
    assert rule["ScheduleExpression"] == "rate(7 days)"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": _machine(resources, "Retrain")}
    assert json.loads(target["Input"]) == {"source": "stepnet.schedule", "pipeline": "digits"}


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"retrain_schedules": {"digits": "every week"}}, 'context "retrain_schedules": digits'),
        ({"retrain_schedules": {"no pipeline": "rate(1 day)"}}, "not a pipeline name"),
        ({"retrain_schedules": ["digits"]}, "must map pipelines to schedules"),
        ({"alarm_email": "not-an-address"}, 'context "alarm_email" must be one email address'),
    ],
)
def test_a_bad_setting_is_refused_naming_it_and_the_fix(
    make_stack: Any, context: dict[str, Any], named: str
) -> None:
    # When / Then
    with pytest.raises(DeploySettingError, match=named):
        make_stack(context)


def test_every_alarm_of_the_contract_notifies_the_encrypted_topic(
    resources: dict[str, Any],
) -> None:
    # Given
    alarms = {
        props["AlarmName"]: props
        for props in _of_type(resources, "AWS::CloudWatch::Alarm").values()
    }
    ((topic_id, topic),) = _of_type(resources, "AWS::SNS::Topic").items()

    # When
    specs = monitoring.alarms(STATE_MACHINES)

    # Then
    assert sorted(alarms) == sorted(f"stepnet-{spec.id}" for spec in specs)
    assert "KmsMasterKeyId" in topic
    for spec in specs:
        alarm = alarms[f"stepnet-{spec.id}"]
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["MetricName"] == spec.metric
        assert alarm["Threshold"] == spec.threshold
        assert alarm["EvaluationPeriods"] == spec.evaluation_periods
        assert alarm["TreatMissingData"] == "notBreaching"
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        if spec.source == "states":
            assert alarm["Namespace"] == "AWS/States"
            assert dimensions == {
                "StateMachineArn": {"Ref": _machine(resources, str(spec.subject))}
            }
        elif spec.source == "lambda":
            assert alarm["Namespace"] == "AWS/Lambda"
            assert set(dimensions) == {"FunctionName"}
        else:
            assert alarm["Namespace"] == monitoring.metrics_namespace("stepnet")
            assert dimensions == {"service": names.SERVICE_NAME, **(spec.dimensions or {})}
    p99 = alarms["stepnet-InferenceLatencyP99"]
    assert p99["ExtendedStatistic"] == "p99" and p99["Threshold"] == monitoring.INFERENCE_P99_MS


def test_the_topic_mails_the_address_given_at_deploy_time_only(
    resources: dict[str, Any], make_stack: Any
) -> None:
    # Given
    from aws_cdk.assertions import Template

    # When
    with_email = Template.from_stack(make_stack({"alarm_email": "ops@example.com"})).to_json()

    # Then
    assert _of_type(resources, "AWS::SNS::Subscription") == {}
    (subscription,) = _of_type(with_email["Resources"], "AWS::SNS::Subscription").values()
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == "ops@example.com"


def test_the_dashboard_graphs_the_curves_per_pipeline_executions_lambdas_and_inference(
    resources: dict[str, Any],
) -> None:
    # Given
    (dashboard,) = _of_type(resources, "AWS::CloudWatch::Dashboard").values()

    # When
    body = json.dumps(dashboard["DashboardBody"])

    # Then every graph of the contract is there, the curves as SEARCHes per pipeline
    for row in monitoring.DASHBOARD:
        for widget in row:
            assert widget.title in body
    for spec in (monitoring.TRAIN_LOSS, monitoring.VALIDATION_LOSS, monitoring.VALIDATION_ACCURACY):
        assert (
            f"SEARCH('{{stepnet/stepnet,service,pipeline}} MetricName=\\\\\\\"{spec.name}\\\\\\\"'"
            in body
        )
    for metric in (
        "ExecutionsStarted",
        "ExecutionsFailed",
        "Throttles",
        "Duration",
        "InferenceLatency",
    ):
        assert metric in body


def test_the_stack_with_every_setting_is_cdk_nag_clean(make_stack: Any) -> None:
    # Given
    stack = make_stack(
        {"alarm_email": "ops@example.com", "retrain_schedules": {"digits": "cron(0 3 * * ? *)"}}
    )

    # When
    report = AwsSolutionsChecks(verbose=True).validate_scope(stack)

    # Then
    assert [v.rule_name for v in report.violations] == []
