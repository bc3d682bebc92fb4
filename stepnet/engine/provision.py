"""Create the store's tables and bucket: for tests and the local engine's emulated account.

The definitions here are the contract the CDK stack declares too (keep them in step):

* runs table: PAY_PER_REQUEST, partition key RUNS_PK (S), sort key RUNS_SK (S), no TTL;
* tensors table: PAY_PER_REQUEST, partition key TENSORS_PK (S), TTL on TENSORS_TTL_ATTRIBUTE;
* bucket: objects under S3_SCRATCH_PREFIX expire after SCRATCH_EXPIRY_DAYS; incomplete
  multipart uploads are aborted after a day (infra/storage.py declares the same two rules).

(The stack also turns on point-in-time recovery, encryption and access logging; those do not
change what the store sees and are not emulated.)

Every step is idempotent: running it against an account that already has them is fine.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from trainer.contract.names import (
    RUNS_PK,
    RUNS_SK,
    S3_SCRATCH_PREFIX,
    SCRATCH_EXPIRY_DAYS,
    TENSORS_PK,
    TENSORS_TTL_ATTRIBUTE,
)

SCRATCH_LIFECYCLE_RULE_ID = "expire-scratch-tensors"
MULTIPART_LIFECYCLE_RULE_ID = "abort-incomplete-multipart-uploads"


def runs_table_definition(name: str) -> dict[str, Any]:
    """``CreateTable`` arguments of the runs table."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": RUNS_PK, "AttributeType": "S"},
            {"AttributeName": RUNS_SK, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": RUNS_PK, "KeyType": "HASH"},
            {"AttributeName": RUNS_SK, "KeyType": "RANGE"},
        ],
    }


def tensors_table_definition(name: str) -> dict[str, Any]:
    """``CreateTable`` arguments of the tensors table (TTL is set separately)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": TENSORS_PK, "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": TENSORS_PK, "KeyType": "HASH"}],
    }


def scratch_lifecycle_configuration() -> dict[str, Any]:
    """``PutBucketLifecycleConfiguration`` rules of the bucket."""
    return {
        "Rules": [
            {
                "ID": SCRATCH_LIFECYCLE_RULE_ID,
                "Filter": {"Prefix": S3_SCRATCH_PREFIX},
                "Status": "Enabled",
                "Expiration": {"Days": SCRATCH_EXPIRY_DAYS},
            },
            {
                "ID": MULTIPART_LIFECYCLE_RULE_ID,
                "Filter": {"Prefix": ""},
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            },
        ]
    }


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
        Bucket=bucket, LifecycleConfiguration=scratch_lifecycle_configuration()
    )


def create_tables_and_bucket(
    dynamodb_client: Any, s3_client: Any, runs_table: str, tensors_table: str, bucket: str
) -> None:
    """Create (or leave as they are) the runs table, the tensors table and the bucket."""
    _create_table(dynamodb_client, runs_table_definition(runs_table))
    _create_table(dynamodb_client, tensors_table_definition(tensors_table))
    _enable_ttl(dynamodb_client, tensors_table, TENSORS_TTL_ATTRIBUTE)
    _create_bucket(s3_client, bucket)
