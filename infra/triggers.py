"""The data bucket's event notifications (the contract's `DATA_BUCKET.triggers`), and the
EventBridge rules that start retraining (`trainer.contract.retrain`).

A file created under `inference/` with a `.csv` or `.npz` suffix invokes the batch prediction
function with S3's own event (the handler reads `Records[].s3`). A notification filter is one
prefix and one suffix, so it cannot say "`in/` under any pipeline": the function also receives
its own outputs (`out/<name>.csv`) and skips them (one short invocation each, no loop).
docs/serving.md weighs this against an EventBridge rule.

CDK writes a bucket's notifications with its own custom resource (a Lambda function that calls
`PutBucketNotificationConfiguration`, because the bucket, the function's permission and the
notification reference each other); its findings are acknowledged here with the reason.

Retraining: the bucket sends its events to EventBridge (`DATA_BUCKET.event_bridge`); the rule
`RetrainOnUpload` matches objects created under `datasets/` and starts the Retrain state machine
with the event; a pipeline's schedule (context `retrain_schedules`) starts it with the
pipeline's name. EventBridge assumes one role, allowed `states:StartExecution` on that machine
only.
"""

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from infra.nag import acknowledge
from infra.storage import Storage
from trainer.contract.retrain import (
    TARGET_MACHINE,
    UPLOAD_RULE,
    retrain_schedules,
    schedule_input,
    upload_pattern,
)
from trainer.contract.storage import DATA_BUCKET

# S3 event names as the contract spells them -> CDK's.
EVENT_TYPES = {"s3:ObjectCreated:*": s3.EventType.OBJECT_CREATED}


def add_triggers(storage: Storage, functions: Mapping[str, lambda_.IFunction]) -> None:
    for trigger in DATA_BUCKET.triggers:
        for event in trigger.events:
            storage.bucket.add_event_notification(
                EVENT_TYPES[event],
                s3n.LambdaDestination(functions[trigger.function]),
                s3.NotificationKeyFilter(prefix=trigger.prefix, suffix=trigger.suffix),
            )
    stack = Stack.of(storage)
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            _acknowledge_notifications_handler(child)


def _acknowledge_notifications_handler(handler: IConstruct) -> None:
    acknowledge(
        handler,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        reason="CDK's bucket-notifications custom resource (it only runs at deploy time, to "
        "put the bucket's notification configuration) logs with the basic execution role.",
    )
    acknowledge(
        handler,
        "AwsSolutions-IAM5[Resource::*]",
        reason="CDK's bucket-notifications custom resource is granted "
        "s3:PutBucketNotification on '*' by CDK itself; it runs only at deploy time, on the "
        "stack's own bucket.",
    )


def add_retrain_rules(
    scope: Construct,
    storage: Storage,
    machines: Mapping[str, sfn.IStateMachine],
    schedules: Mapping[str, str] | None = None,
) -> list[events.Rule]:
    """The upload rule, and a rule per scheduled pipeline (``schedules``: pipeline -> schedule
    expression, checked by ``trainer.contract.retrain.retrain_schedules``), each starting the
    Retrain machine through one role."""
    checked = retrain_schedules(schedules)
    machine = machines[TARGET_MACHINE]
    role = iam.Role(
        scope, "RetrainRulesRole", assumed_by=iam.ServicePrincipal("events.amazonaws.com")
    )
    pattern = upload_pattern(storage.bucket.bucket_name)
    upload = events.Rule(
        scope,
        UPLOAD_RULE,
        description="A dataset uploaded under datasets/<pipeline>/ retrains the pipeline",
        event_pattern=events.EventPattern(
            source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern["detail"]
        ),
        targets=[targets.SfnStateMachine(machine, role=role)],
    )
    rules = [upload]
    for pipeline, expression in sorted(checked.items()):
        rules.append(
            events.Rule(
                scope,
                f"RetrainSchedule-{pipeline}",
                description=f"Retrain pipeline {pipeline} on its registered config: {expression}",
                schedule=events.Schedule.expression(expression),
                targets=[
                    targets.SfnStateMachine(
                        machine,
                        role=role,
                        input=events.RuleTargetInput.from_object(schedule_input(pipeline)),
                    )
                ],
            )
        )
    return rules
