"""The storage contract: the tables' keys and TTL, the bucket's lifecycle rules, the engine's
physical names, all from the names module's one spelling."""

import pytest

from trainer.contract import names
from trainer.contract.storage import (
    DATA_BUCKET,
    RUNS_TABLE,
    TABLES,
    TENSORS_TABLE,
    LifecycleRule,
    data_bucket,
    scratch_expiry_days,
)


def test_runs_table_has_a_partition_and_a_sort_key_and_no_ttl() -> None:
    # Given / When
    schema = RUNS_TABLE.key_schema()

    # Then
    assert schema == ((names.RUNS_PK, "HASH"), (names.RUNS_SK, "RANGE"))
    assert RUNS_TABLE.ttl_attribute is None
    assert RUNS_TABLE.billing_mode == "PAY_PER_REQUEST"


def test_tensors_table_has_a_partition_key_and_expires_scratch_items() -> None:
    # Given / When
    schema = TENSORS_TABLE.key_schema()

    # Then
    assert schema == ((names.TENSORS_PK, "HASH"),)
    assert TENSORS_TABLE.ttl_attribute == names.TENSORS_TTL_ATTRIBUTE
    assert TENSORS_TABLE.billing_mode == "PAY_PER_REQUEST"


def test_physical_names_come_from_the_stack_name() -> None:
    # Given / When
    tables = {table: spec.physical_name("demo") for table, spec in TABLES.items()}

    # Then
    assert tables == {"runs": "demo-runs", "tensors": "demo-tensors"}
    assert DATA_BUCKET.physical_name("demo", "123456789012") == "demo-data-123456789012"


def test_scratch_objects_expire_with_the_scratch_items_and_uploads_are_not_left_behind() -> None:
    # Given / When
    rules = {rule.id: rule for rule in DATA_BUCKET.lifecycle_rules}

    # Then scratch objects live as long as scratch items (the default TTL is one constant)
    scratch = rules["expire-scratch-tensors"]
    assert scratch.prefix == names.S3_SCRATCH_PREFIX
    assert scratch.expiration_days == names.SCRATCH_EXPIRY_DAYS
    assert scratch_expiry_days(names.SCRATCH_TTL_HOURS) == names.SCRATCH_EXPIRY_DAYS
    multipart = rules["abort-incomplete-multipart-uploads"]
    assert (multipart.prefix, multipart.abort_multipart_days) == ("", 1)
    assert len(rules) == len(DATA_BUCKET.lifecycle_rules) == 2


@pytest.mark.parametrize(("hours", "days"), [(1, 1), (24, 1), (25, 2), (48, 2), (72, 3), (170, 8)])
def test_one_scratch_ttl_sets_the_lifecycle_rule_in_whole_days_rounded_up(
    hours: int, days: int
) -> None:
    # Given a deployment's scratch TTL (the DynamoDB TTL of scratch items)
    bucket = data_bucket(hours)

    # When
    (scratch,) = (r for r in bucket.lifecycle_rules if r.prefix == names.S3_SCRATCH_PREFIX)

    # Then S3 keeps scratch objects at least as long as DynamoDB its items
    assert scratch.expiration_days == days == scratch_expiry_days(hours)
    assert days * 24 >= hours
    assert data_bucket() == DATA_BUCKET


def test_a_scratch_ttl_below_an_hour_is_refused() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="at least one hour"):
        data_bucket(0)


def test_a_rule_that_does_nothing_is_refused() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="does nothing"):
        LifecycleRule(id="idle", prefix="x/")
