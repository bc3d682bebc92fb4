"""Create the store's tables and bucket: for tests and the local engine's emulated account.

Built from ``trainer.contract.storage``, the values the CDK stack declares too: each table of
``TABLES`` with its keys, billing mode and TTL, and the data bucket with the lifecycle rules of
``DATA_BUCKET``. (The stack also turns on point-in-time recovery, encryption and access logging;
those do not change what the store sees and are not emulated.)

Every step is idempotent: running it against an account that already has them is fine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from trainer.contract.retrain import TARGET_MACHINE, upload_pattern
from trainer.contract.storage import (
    DATA_BUCKET,
    KEY_ATTRIBUTE_TYPE,
    TABLES,
    LifecycleRule,
    ObjectTrigger,
    TableName,
    TableSpec,
)


def table_definition(spec: TableSpec, name: str) -> dict[str, Any]:
    """``CreateTable`` arguments of a table (its TTL is set separately)."""
    keys = spec.key_schema()
    return {
        "TableName": name,
        "BillingMode": spec.billing_mode,
        "AttributeDefinitions": [
            {"AttributeName": attribute, "AttributeType": KEY_ATTRIBUTE_TYPE}
            for attribute, _ in keys
        ],
        "KeySchema": [{"AttributeName": attribute, "KeyType": kind} for attribute, kind in keys],
    }


def lifecycle_rule(rule: LifecycleRule) -> dict[str, Any]:
    """One rule of ``PutBucketLifecycleConfiguration``."""
    document: dict[str, Any] = {
        "ID": rule.id,
        "Filter": {"Prefix": rule.prefix},
        "Status": "Enabled",
    }
    if rule.expiration_days is not None:
        document["Expiration"] = {"Days": rule.expiration_days}
    if rule.abort_multipart_days is not None:
        document["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": rule.abort_multipart_days
        }
    return document


def lifecycle_configuration(
    rules: Iterable[LifecycleRule] = DATA_BUCKET.lifecycle_rules,
) -> dict[str, Any]:
    """``PutBucketLifecycleConfiguration`` rules of the data bucket."""
    return {"Rules": [lifecycle_rule(rule) for rule in rules]}


def _create_table(dynamodb_client: Any, definition: dict[str, Any]) -> None:
    try:
        dynamodb_client.create_table(**definition)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    dynamodb_client.get_waiter("table_exists").wait(
        TableName=definition["TableName"], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def _enable_ttl(dynamodb_client: Any, table: str, attribute: str) -> None:
    described = dynamodb_client.describe_time_to_live(TableName=table)
    current = described.get("TimeToLiveDescription", {})
    enabled = current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
    if enabled and current.get("AttributeName") == attribute:
        return
    dynamodb_client.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
    )


def _create_bucket(s3_client: Any, bucket: str) -> None:
    region = s3_client.meta.region_name
    request: dict[str, Any] = {"Bucket": bucket}
    if region and region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3_client.create_bucket(**request)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration=lifecycle_configuration()
    )


def create_tables_and_bucket(
    dynamodb_client: Any, s3_client: Any, runs_table: str, tensors_table: str, bucket: str
) -> None:
    """Create (or leave as they are) the runs table, the tensors table and the bucket."""
    table_names: dict[TableName, str] = {"runs": runs_table, "tensors": tensors_table}
    for table, spec in TABLES.items():
        _create_table(dynamodb_client, table_definition(spec, table_names[table]))
        if spec.ttl_attribute is not None:
            _enable_ttl(dynamodb_client, table_names[table], spec.ttl_attribute)
    _create_bucket(s3_client, bucket)


def notification_configuration(
    function_arns: Mapping[str, str],
    triggers: Iterable[ObjectTrigger] = DATA_BUCKET.triggers,
    event_bridge: bool = DATA_BUCKET.event_bridge,
) -> dict[str, Any]:
    """``PutBucketNotificationConfiguration`` of the data bucket: each trigger of the contract
    (``DATA_BUCKET.triggers``) invokes its function, given by ARN in ``function_arns``; the
    bucket's events also go to EventBridge if ``event_bridge`` (``DATA_BUCKET.event_bridge``)."""
    bridge: dict[str, Any] = {"EventBridgeConfiguration": {}} if event_bridge else {}
    return bridge | {
        "LambdaFunctionConfigurations": [
            {
                "Id": f"{trigger.function}-{trigger.suffix.lstrip('.')}",
                "LambdaFunctionArn": function_arns[trigger.function],
                "Events": list(trigger.events),
                "Filter": {
                    "Key": {
                        "FilterRules": [
                            {"Name": "prefix", "Value": trigger.prefix},
                            {"Name": "suffix", "Value": trigger.suffix},
                        ]
                    }
                },
            }
            for trigger in triggers
        ]
    }


def upload_rule(
    events_client: Any, *, name: str, bucket: str, target_arn: str, role_arn: str
) -> None:
    """The EventBridge rule that starts retraining on an upload under ``datasets/`` of
    ``bucket`` (``trainer.contract.retrain.upload_pattern``), targeting ``target_arn``."""
    events_client.put_rule(
        Name=name, EventPattern=json.dumps(upload_pattern(bucket)), State="ENABLED"
    )
    events_client.put_targets(
        Rule=name, Targets=[{"Id": TARGET_MACHINE, "Arn": target_arn, "RoleArn": role_arn}]
    )
