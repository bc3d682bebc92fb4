"""The storage layer: the only code that talks to DynamoDB and S3.

* :class:`TensorStore` - tensor bundles (dicts of named numpy arrays) by key; immutable or scratch.
* :class:`RunStore` - a run's config, dataset facts, status and per-epoch metrics, and the model
  registry's records (:mod:`~trainer.store.registry`).
* :mod:`~trainer.store.keys` - how tensor keys are spelled; :mod:`~trainer.store.codec` - bytes.
* :class:`~trainer.store.objects.ObjectStore` - whole S3 objects (uploaded datasets, exports).
* :class:`Store` - all three, built from one pair of low-level boto3 clients.

Handlers see each of the three through what they use of it (:class:`TensorAccess`,
:class:`RunAccess`, :class:`ObjectAccess`), so a :class:`Store` may hold other implementations:
the billing code's dry run runs the handlers on a store of shapes (``stepnet.billing.dryrun``).
:class:`~trainer.store.observer.StoreObserver`: what a tensor store tells a meter.

Layout and rules: docs/storage.md. Configuration (table names, bucket) is read elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

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
from trainer.store.observer import StoreObserver
from trainer.store.runs import RunStore
from trainer.store.tensors import DEFAULT_CACHE_BYTES, DEFAULT_SCRATCH_TTL_SECONDS, TensorStore


class TensorAccess(Protocol):
    """What the handlers use of a tensor store (:class:`TensorStore`)."""

    def put(self, key: str, bundle: Mapping[str, np.ndarray], *, immutable: bool = True) -> None:
        """Store ``bundle`` under ``key``: write-once if ``immutable``, else as scratch."""

    def get(self, key: str) -> dict[str, np.ndarray]:
        """The bundle under ``key`` (read-only arrays if immutable, writable if scratch)."""

    def get_many(self, keys: Sequence[str]) -> list[dict[str, np.ndarray]]:
        """The bundles under ``keys``, in order."""


class RunAccess(Protocol):
    """What the handlers (and the CLI) use of a run store (:class:`RunStore`)."""

    def create_run(self, run_id: str, config_json: str) -> None: ...
    def get_config_json(self, run_id: str) -> str: ...
    def put_dataset_info(self, run_id: str, info: Mapping[str, Any]) -> None: ...
    def get_dataset_info(self, run_id: str) -> dict[str, Any]: ...
    def set_status(self, run_id: str, status: str, /, **fields: Any) -> None: ...
    def get_status(self, run_id: str) -> dict[str, Any]: ...
    def put_epoch_metrics(
        self, run_id: str, epoch: int, metrics: Mapping[str, float | int | None]
    ) -> None: ...
    def list_epoch_metrics(self, run_id: str) -> list[dict[str, Any]]: ...
    def get_epoch_metrics(self, run_id: str, epoch: int) -> dict[str, Any] | None: ...
    def dataset_created_at(self, run_id: str) -> str | None: ...
    # the model registry (trainer.store.registry)
    def put_model_version(
        self, pipeline: str, run_id: str, document: Mapping[str, Any]
    ) -> None: ...
    def get_model_version(self, pipeline: str, run_id: str) -> dict[str, Any] | None: ...
    def put_decision(
        self, pipeline: str, run_id: str, document: Mapping[str, Any]
    ) -> dict[str, Any]: ...
    def get_decision(self, pipeline: str, run_id: str) -> dict[str, Any] | None: ...
    def get_production(self, pipeline: str) -> dict[str, Any] | None: ...
    def put_production(self, pipeline: str, document: Mapping[str, Any], revision: int) -> None: ...
    def add_pipeline(self, pipeline: str) -> None: ...
    def list_pipelines(self) -> list[str]: ...
    def list_registry(self, pipeline: str) -> dict[str, dict[str, Any]]: ...
    def get_claim(self, pipeline: str) -> dict[str, Any] | None: ...
    def put_claim(self, pipeline: str, document: Mapping[str, Any], revision: int) -> None: ...


class ObjectAccess(Protocol):
    """What the handlers (and the CLI) use of an object store (:class:`ObjectStore`)."""

    def uri(self, key: str) -> str: ...
    def get_bytes(self, uri: str) -> bytes: ...
    def get_range(self, uri: str, start: int, stop: int) -> bytes: ...
    def size(self, uri: str) -> int: ...
    def list_prefix(self, prefix_uri: str) -> list[tuple[str, int]]: ...
    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str: ...


@dataclass(frozen=True)
class Store:
    """The tensor, run and object stores; ``clients``: the low-level boto3 clients they share
    (from :meth:`from_clients`), for instrumentation such as ``stepnet.billing.meter``."""

    tensors: TensorAccess
    runs: RunAccess
    objects: ObjectAccess
    clients: tuple[Any, ...] = ()

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
        observers: Iterable[StoreObserver] = (),
    ) -> Store:
        """Build the stores from low-level clients (``boto3.client("dynamodb")``, ``"s3"``);
        ``observers`` hear of every tensor written and read (:class:`TensorStore`)."""
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
                observers=observers,
            ),
            runs=RunStore(dynamodb_client, table=runs_table, clock=clock),
            objects=ObjectStore(s3_client, bucket=bucket),
            clients=(dynamodb_client, s3_client),
        )


__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_SCRATCH_TTL_SECONDS",
    "INLINE_LIMIT_BYTES",
    "CodecError",
    "ImmutableTensorError",
    "ObjectAccess",
    "ObjectNotFoundError",
    "ObjectStore",
    "RecordConflictError",
    "RunAccess",
    "RunExistsError",
    "RunNotFoundError",
    "RunStore",
    "Store",
    "StoreError",
    "StoreObserver",
    "TensorAccess",
    "TensorIntegrityError",
    "TensorNotFoundError",
    "TensorStore",
    "codec",
    "errors",
    "keys",
]
