"""The data bucket's event notifications: the contract's triggers (`DATA_BUCKET.triggers`).

A file created under `inference/` with a `.csv` or `.npz` suffix invokes the batch prediction
function with S3's own event (the handler reads `Records[].s3`). A notification filter is one
prefix and one suffix, so it cannot say "`in/` under any pipeline": the function also receives
its own outputs (`out/<name>.csv`) and skips them (one short invocation each, no loop).
docs/serving.md weighs this against an EventBridge rule.

CDK writes a bucket's notifications with its own custom resource (a Lambda function that calls
`PutBucketNotificationConfiguration`, because the bucket, the function's permission and the
notification reference each other); its findings are acknowledged here with the reason.
"""

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import IConstruct

from infra.nag import acknowledge
from infra.storage import Storage
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
