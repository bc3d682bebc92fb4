"""Provisioning: the tables and bucket the stack declares, created idempotently."""

from __future__ import annotations

from typing import Any

import pytest

from stepnet.engine.provision import create_tables_and_bucket
from trainer.contract.names import (
    RUNS_PK,
    RUNS_SK,
    S3_SCRATCH_PREFIX,
    SCRATCH_EXPIRY_DAYS,
    TENSORS_PK,
    TENSORS_TTL_ATTRIBUTE,
)
from trainer.store import ObjectStore, Store


def test_tables_are_on_demand_with_the_documented_keys(aws: Any) -> None:
    # Given the account the fixture provisioned

    # When
    runs = aws.dynamodb.describe_table(TableName=aws.runs_table)["Table"]
    tensors = aws.dynamodb.describe_table(TableName=aws.tensors_table)["Table"]

    # Then
    assert runs["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert tensors["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert runs["KeySchema"] == [
        {"AttributeName": RUNS_PK, "KeyType": "HASH"},
        {"AttributeName": RUNS_SK, "KeyType": "RANGE"},
    ]
    assert tensors["KeySchema"] == [{"AttributeName": TENSORS_PK, "KeyType": "HASH"}]


def test_ttl_is_on_for_tensors_only(aws: Any) -> None:
    # Given the account the fixture provisioned

    # When
    tensors = aws.dynamodb.describe_time_to_live(TableName=aws.tensors_table)
    runs = aws.dynamodb.describe_time_to_live(TableName=aws.runs_table)

    # Then
    assert tensors["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": TENSORS_TTL_ATTRIBUTE,
    }
    assert runs["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"


def test_bucket_expires_scratch_objects(aws: Any) -> None:
    # Given the account the fixture provisioned

    # When
    rules = aws.s3.get_bucket_lifecycle_configuration(Bucket=aws.bucket)["Rules"]

    # Then
    by_id = {rule["ID"]: rule for rule in rules}
    assert set(by_id) == {"expire-scratch-tensors", "abort-incomplete-multipart-uploads"}
    scratch = by_id["expire-scratch-tensors"]
    assert scratch["Filter"] == {"Prefix": S3_SCRATCH_PREFIX}
    assert scratch["Expiration"] == {"Days": SCRATCH_EXPIRY_DAYS}
    assert scratch["Status"] == "Enabled"
    multipart = by_id["abort-incomplete-multipart-uploads"]
    assert multipart["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_provisioning_twice_is_harmless(aws: Any, store: Store) -> None:
    # Given data already stored
    store.runs.set_status("r", "RUNNING")

    # When
    create_tables_and_bucket(aws.dynamodb, aws.s3, aws.runs_table, aws.tensors_table, aws.bucket)

    # Then
    assert store.runs.get_status("r")["status"] == "RUNNING"


def test_store_from_clients_wires_every_part(aws: Any) -> None:
    # Given
    store = Store.from_clients(
        aws.dynamodb,
        aws.s3,
        runs_table=aws.runs_table,
        tensors_table=aws.tensors_table,
        bucket=aws.bucket,
        scratch_ttl_seconds=7200,
    )

    # When / Then
    assert store.tensors.table == aws.tensors_table
    assert store.tensors.scratch_ttl_seconds == 7200
    assert store.runs.table == aws.runs_table
    assert isinstance(store.objects, ObjectStore)
    with pytest.raises(AttributeError):
        store.tensors = None  # type: ignore[misc]
