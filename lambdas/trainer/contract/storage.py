"""Where the store keeps things: the runs table, the tensors table and the data bucket.

The stack (``infra/storage.py``) and the local engine (``stepnet/engine/provision.py``) both
build them from these values, so they cannot disagree on a key, a TTL or a lifecycle rule.
What only the deployed stack adds (point-in-time recovery, encryption, access logging) does not
change what the store sees and is not part of the contract.

Physical names: the stack lets CloudFormation name the tables and the bucket (clients find them
through the stack's outputs, ``names.STACK_OUTPUTS``); the local engine, which has no
CloudFormation, names them from the stack name with :meth:`TableSpec.physical_name` and
:meth:`BucketSpec.physical_name`.

Pure (stdlib only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from inference.keys import INFERENCE_PREFIX, SUFFIXES
from trainer.contract import names

TableName = Literal["runs", "tensors"]
BillingMode = Literal["PAY_PER_REQUEST"]
KEY_ATTRIBUTE_TYPE: Final = "S"  # every key attribute is a string


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table: its keys, its TTL attribute (if items expire) and its billing mode."""

    name_suffix: str
    partition_key: str
    sort_key: str | None = None
    ttl_attribute: str | None = None
    billing_mode: BillingMode = "PAY_PER_REQUEST"

    def physical_name(self, stack_name: str) -> str:
        """The table's name in the local engine's account, e.g. ``stepnet-runs``."""
        return f"{stack_name}-{self.name_suffix}"

    def key_schema(self) -> tuple[tuple[str, Literal["HASH", "RANGE"]], ...]:
        """(attribute, key type) of the partition key, then of the sort key if any."""
        if self.sort_key is None:
            return ((self.partition_key, "HASH"),)
        return ((self.partition_key, "HASH"), (self.sort_key, "RANGE"))


# One partition per run; the sort key names the record ("config", "status", "epoch#0003").
RUNS_TABLE: Final = TableSpec(
    name_suffix="runs", partition_key=names.RUNS_PK, sort_key=names.RUNS_SK
)
# One item per tensor bundle, keyed by the bundle's full key; scratch items expire (TTL).
TENSORS_TABLE: Final = TableSpec(
    name_suffix="tensors",
    partition_key=names.TENSORS_PK,
    ttl_attribute=names.TENSORS_TTL_ATTRIBUTE,
)
TABLES: Final[Mapping[TableName, TableSpec]] = {"runs": RUNS_TABLE, "tensors": TENSORS_TABLE}


@dataclass(frozen=True)
class LifecycleRule:
    """An S3 lifecycle rule on the objects under ``prefix`` ("" for every object)."""

    id: str
    prefix: str = ""
    expiration_days: int | None = None
    abort_multipart_days: int | None = None

    def __post_init__(self) -> None:
        if self.expiration_days is None and self.abort_multipart_days is None:
            raise ValueError(f"lifecycle rule {self.id!r} does nothing")


@dataclass(frozen=True)
class ObjectTrigger:
    """An S3 event notification: objects created under ``prefix`` whose key ends in ``suffix``
    invoke ``function`` (a function of ``trainer.contract.functions.FUNCTIONS``), with S3's
    own event (``{"Records": [{"s3": {"bucket": …, "object": {"key", "size"}}}]}``)."""

    function: str
    prefix: str
    suffix: str
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)


@dataclass(frozen=True)
class BucketSpec:
    """An S3 bucket: its lifecycle rules, its event notifications, and whether it also sends
    its events to EventBridge (``event_bridge``: the retraining rule, ``trainer.contract.retrain``)."""

    name_infix: str
    lifecycle_rules: tuple[LifecycleRule, ...]
    triggers: tuple[ObjectTrigger, ...] = ()
    event_bridge: bool = False

    def physical_name(self, stack_name: str, account_id: str) -> str:
        """The bucket's name in the local engine's account, e.g. ``stepnet-data-123456789012``."""
        return f"{stack_name}-{self.name_infix}-{account_id}"


# Abandoned multipart uploads are never billed for long (the store itself puts single parts).
ABORT_INCOMPLETE_MULTIPART_DAYS: Final = 1

# Batch inference: a file uploaded under inference/<pipeline>/in/ is predicted. A notification
# filter is one prefix and one suffix and cannot say "in/" under any pipeline, so the filter is
# inference/ with each input suffix; the function's own outputs (out/<name>.csv) match too and
# are skipped by the handler (inference.keys.batch_input), which writes nothing for them: one
# short invocation per output, no loop. docs/serving.md weighs this against EventBridge.
INFERENCE_TRIGGERS: Final = tuple(
    ObjectTrigger(function="PredictBatch", prefix=INFERENCE_PREFIX, suffix=suffix)
    for suffix in SUFFIXES
)


def scratch_expiry_days(scratch_ttl_hours: int) -> int:
    """The lifecycle rule's days for a scratch TTL: S3 expires objects in whole days, so the
    hours rounded up (S3 keeps a scratch object at least as long as DynamoDB its item)."""
    if scratch_ttl_hours < 1:
        raise ValueError(f"the scratch TTL is at least one hour, got {scratch_ttl_hours}")
    return math.ceil(scratch_ttl_hours / 24)


def data_bucket(scratch_ttl_hours: int = names.SCRATCH_TTL_HOURS) -> BucketSpec:
    """The data bucket: datasets, converted shards and models (runs/), spilled tensors
    (tensors/) and their scratch (tensors/scratch/), which expires after the deployment's one
    scratch TTL (``FunctionEnvironment.scratch_ttl_hours``, the stack's ``scratch_ttl_hours``
    context), in days (:func:`scratch_expiry_days`); production pointers (models/) and batch
    inference files (inference/, whose uploads trigger predictions: :data:`INFERENCE_TRIGGERS`)."""
    return BucketSpec(
        name_infix="data",
        lifecycle_rules=(
            LifecycleRule(
                id="expire-scratch-tensors",
                prefix=names.S3_SCRATCH_PREFIX,
                expiration_days=scratch_expiry_days(scratch_ttl_hours),
            ),
            LifecycleRule(
                id="abort-incomplete-multipart-uploads",
                abort_multipart_days=ABORT_INCOMPLETE_MULTIPART_DAYS,
            ),
        ),
        triggers=INFERENCE_TRIGGERS,
        event_bridge=True,  # datasets/<pipeline>/ uploads start retraining (trainer.contract.retrain)
    )


# The bucket with the default scratch TTL (what the local engine provisions).
DATA_BUCKET: Final = data_bucket()
