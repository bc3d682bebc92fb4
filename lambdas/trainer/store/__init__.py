"""The storage layer: the only code that talks to DynamoDB and S3.

* :class:`TensorStore` - tensor bundles (dicts of named numpy arrays) by key; immutable or scratch.
* :class:`RunStore` - a run's config, dataset facts, status and per-epoch metrics.
* :mod:`~trainer.store.keys` - how tensor keys are spelled; :mod:`~trainer.store.codec` - bytes.
* :class:`~trainer.store.objects.ObjectStore` - whole S3 objects (uploaded datasets, exports).
* :class:`Store` - all three, built from one pair of low-level boto3 clients.

Layout and rules: docs/storage.md. Configuration (table names, bucket) is read elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainer.contract.names import INLINE_LIMIT_BYTES
from trainer.store import codec, errors, keys
from trainer.store.errors import (
    CodecError,
    ImmutableTensorError,
    RecordConflictError,
    RunExistsError,
    RunNotFoundError,
    StoreError,
    TensorIntegrityError,
    TensorNotFoundError,
)
from trainer.store.objects import ObjectNotFoundError, ObjectStore
from trainer.store.runs import RunStore
from trainer.store.tensors import DEFAULT_CACHE_BYTES, DEFAULT_SCRATCH_TTL_SECONDS, TensorStore


@dataclass(frozen=True)
class Store:
    """The tensor, run and object stores, sharing one DynamoDB and one S3 client."""

    tensors: TensorStore
    runs: RunStore
    objects: ObjectStore

    @classmethod
    def from_clients(
        cls,
        dynamodb_client: Any,
        s3_client: Any,
        *,
        runs_table: str,
        tensors_table: str,
        bucket: str,
        scratch_ttl_seconds: int = DEFAULT_SCRATCH_TTL_SECONDS,
        inline_limit: int = INLINE_LIMIT_BYTES,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> Store:
        """Build both stores from low-level clients (``boto3.client("dynamodb")``, ``"s3"``)."""
        return cls(
            tensors=TensorStore(
                dynamodb_client,
                s3_client,
                table=tensors_table,
                bucket=bucket,
                scratch_ttl_seconds=scratch_ttl_seconds,
                inline_limit=inline_limit,
                cache_bytes=cache_bytes,
                clock=clock,
            ),
            runs=RunStore(dynamodb_client, table=runs_table, clock=clock),
            objects=ObjectStore(s3_client, bucket=bucket),
        )


__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_SCRATCH_TTL_SECONDS",
    "INLINE_LIMIT_BYTES",
    "CodecError",
    "ImmutableTensorError",
    "ObjectNotFoundError",
    "ObjectStore",
    "RecordConflictError",
    "RunExistsError",
    "RunNotFoundError",
    "RunStore",
    "Store",
    "StoreError",
    "TensorIntegrityError",
    "TensorNotFoundError",
    "TensorStore",
    "codec",
    "errors",
    "keys",
]
