"""The tables and the bucket: keys from trainer.contract.names, on-demand, recoverable, private."""

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from trainer.contract import names

pytestmark = pytest.mark.infra


def _tables_by_partition_key(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    tables = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table"]
    return {
        next(k["AttributeName"] for k in table["KeySchema"] if k["KeyType"] == "HASH"): table
        for table in tables
    }


def test_two_on_demand_tables_with_point_in_time_recovery(template: Template) -> None:
    # Given the synthesized stack
    # When / Then
    template.resource_count_is("AWS::DynamoDB::Table", 2)
    template.all_resources_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )


def test_runs_table_has_string_partition_and_sort_keys(resources: dict[str, Any]) -> None:
    # Given the tables, by partition key
    tables = _tables_by_partition_key(resources)

    # When
    runs = tables[names.RUNS_PK]

    # Then
    assert runs["KeySchema"] == [
        {"AttributeName": names.RUNS_PK, "KeyType": "HASH"},
        {"AttributeName": names.RUNS_SK, "KeyType": "RANGE"},
    ]
    assert sorted(runs["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        [
            {"AttributeName": names.RUNS_PK, "AttributeType": "S"},
            {"AttributeName": names.RUNS_SK, "AttributeType": "S"},
        ],
        key=lambda a: a["AttributeName"],
    )
    assert "TimeToLiveSpecification" not in runs


def test_tensors_table_has_a_string_partition_key_and_ttl(resources: dict[str, Any]) -> None:
    # Given the tables, by partition key
    tables = _tables_by_partition_key(resources)

    # When
    tensors = tables[names.TENSORS_PK]

    # Then
    assert tensors["KeySchema"] == [{"AttributeName": names.TENSORS_PK, "KeyType": "HASH"}]
    assert tensors["AttributeDefinitions"] == [
        {"AttributeName": names.TENSORS_PK, "AttributeType": "S"}
    ]
    assert tensors["TimeToLiveSpecification"] == {
        "AttributeName": names.TENSORS_TTL_ATTRIBUTE,
        "Enabled": True,
    }


def test_tables_are_deleted_with_the_stack(template: Template) -> None:
    # Given the synthesized stack
    # When
    tables = template.find_resources("AWS::DynamoDB::Table")

    # Then the scratch of a trainer goes with it (see infra/storage.py)
    assert {table["DeletionPolicy"] for table in tables.values()} == {"Delete"}


def test_every_bucket_is_encrypted_private_and_tls_only(template: Template) -> None:
    # Given the synthesized stack
    buckets = template.find_resources("AWS::S3::Bucket")

    # When / Then
    assert len(buckets) >= 1
    template.all_resources_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    for logical_id in buckets:
        template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": logical_id},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Action": "s3:*",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                    "Principal": {"AWS": "*"},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_data_bucket_expires_scratch_and_logs_its_access(template: Template) -> None:
    # Given the synthesized stack
    # When / Then
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Prefix": names.S3_SCRATCH_PREFIX,
                                "ExpirationInDays": names.SCRATCH_EXPIRY_DAYS,
                                "Status": "Enabled",
                            }
                        )
                    ]
                )
            },
            "LoggingConfiguration": {"DestinationBucketName": {"Ref": Match.any_value()}},
        },
    )


def test_data_bucket_goes_with_the_stack_and_its_access_logs_stay(template: Template) -> None:
    # Given the buckets
    buckets = template.find_resources("AWS::S3::Bucket")

    # When
    policies = {
        "data" if "LoggingConfiguration" in b["Properties"] else "access logs": b["DeletionPolicy"]
        for b in buckets.values()
    }

    # Then (docs/deploy.md: empty the data bucket before `cdk destroy`)
    assert policies == {"data": "Delete", "access logs": "Retain"}
