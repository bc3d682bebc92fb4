"""RunStore: a run's config, dataset facts, status and per-epoch metrics in the runs table.

One partition per run (RUNS_PK = run_id); the sort key (RUNS_SK) names the record:

    "config"       the validated run config JSON          write-once
    "dataset"      facts about the prepared dataset        write-once
    "status"       RUNNING / SUCCEEDED / FAILED + fields    mutable (each write replaces it)
    "epoch#0003"   metrics of epoch 3                      write-once

Write-once records are idempotent: writing equal content again (a retried task) is a no-op,
different content raises. Values are stored as canonical JSON text, so floats round-trip exactly
(including NaN and infinities) and ints stay ints. See docs/storage.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from botocore.exceptions import ClientError

from trainer.contract.names import RUNS_PK, RUNS_SK
from trainer.store.errors import RecordConflictError, RunExistsError, RunNotFoundError, StoreError

CONFIG_RECORD: Final = "config"
DATASET_RECORD: Final = "dataset"
STATUS_RECORD: Final = "status"
EPOCH_RECORD_PREFIX: Final = "epoch#"
MAX_EPOCH: Final = 9_999  # four digits keep "epoch#NNNN" in numeric order

# Attribute names.
CONFIG: Final = "config"  # S: the run config JSON, as given
INFO: Final = "info"  # S: dataset facts, canonical JSON
STATUS: Final = "status"  # S
FIELDS: Final = "fields"  # S: the status record's extra fields, canonical JSON
EPOCH: Final = "epoch"  # N
METRICS: Final = "metrics"  # S: an epoch's metrics, canonical JSON
CREATED_AT: Final = "created_at"  # S: ISO 8601 UTC
UPDATED_AT: Final = "updated_at"  # S: ISO 8601 UTC

_RESERVED_STATUS_FIELDS: Final = frozenset({RUNS_PK, RUNS_SK, STATUS, UPDATED_AT})

Item = dict[str, Any]


def epoch_record(epoch: int) -> str:
    """The sort key of an epoch's metrics record, e.g. "epoch#0003"."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch must be an integer from 0 to {MAX_EPOCH}, got {epoch!r}")
    return f"{EPOCH_RECORD_PREFIX}{epoch:04d}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace; floats as repr (exact); numpy scalars/arrays as Python."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
    return run_id


def _metric(name: str, value: Any) -> int | float | None:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise ValueError(f"metric {name!r} must be a number (or None), got {value!r}")


class RunStore:
    """Run records in the runs table. Thread-safe (holds only a low-level DynamoDB client)."""

    def __init__(
        self, dynamodb_client: Any, *, table: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._ddb = dynamodb_client
        self.table = table
        self._clock = clock
        self._configs: dict[str, str] = {}  # write-once records, so safe to keep

    def _now(self) -> str:
        moment = datetime.fromtimestamp(self._clock(), UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # --- config ----------------------------------------------------------------------------------

    def create_run(self, run_id: str, config_json: str) -> None:
        """Record a new run's config. Same config again: no-op. Other config: RunExistsError."""
        _check_run_id(run_id)
        try:
            canonical = canonical_json(json.loads(config_json))
        except (TypeError, ValueError) as error:
            raise ValueError(f"config_json must be a JSON document: {error}") from None
        attributes = {CONFIG: {"S": config_json}, CREATED_AT: {"S": self._now()}}
        existing = self._put_once(run_id, CONFIG_RECORD, attributes)
        if existing is not None and canonical_json(json.loads(existing[CONFIG]["S"])) != canonical:
            raise RunExistsError(run_id)

    def get_config_json(self, run_id: str) -> str:
        """The run's config JSON, exactly as given to :meth:`create_run`; read once per store
        (a run's config never changes)."""
        config = self._configs.get(run_id)
        if config is None:
            item = self._get(run_id, CONFIG_RECORD)
            if item is None:
                raise RunNotFoundError(run_id)
            config = self._configs[run_id] = str(item[CONFIG]["S"])
        return config

    def clear_cache(self) -> None:
        """Forget the configs read so far (as a new Lambda container would)."""
        self._configs.clear()

    def run_exists(self, run_id: str) -> bool:
        return self._get(_check_run_id(run_id), CONFIG_RECORD) is not None

    # --- dataset facts ---------------------------------------------------------------------------

    def put_dataset_info(self, run_id: str, info: Mapping[str, Any]) -> None:
        """Record the dataset facts (JSON-able dict). Equal again: no-op. Different: error."""
        _check_run_id(run_id)
        if not isinstance(info, Mapping):
            raise ValueError(f"dataset info must be a mapping, got {type(info).__name__}")
        text = canonical_json(dict(info))
        attributes = {INFO: {"S": text}, CREATED_AT: {"S": self._now()}}
        existing = self._put_once(run_id, DATASET_RECORD, attributes)
        if existing is not None and existing[INFO]["S"] != text:
            raise RecordConflictError(run_id, DATASET_RECORD)

    def get_dataset_info(self, run_id: str) -> dict[str, Any]:
        item = self._get(run_id, DATASET_RECORD)
        if item is None:
            raise RunNotFoundError(run_id, DATASET_RECORD)
        info: dict[str, Any] = json.loads(item[INFO]["S"])
        return info

    # --- status ----------------------------------------------------------------------------------

    def set_status(self, run_id: str, status: str, /, **fields: Any) -> None:
        """Replace the run's status record with ``status``, ``updated_at`` and ``fields``."""
        _check_run_id(run_id)
        if not isinstance(status, str) or not status:
            raise ValueError(f"status must be a non-empty string, got {status!r}")
        clash = _RESERVED_STATUS_FIELDS.intersection(fields)
        if clash:
            raise ValueError(f"status fields may not be named {sorted(clash)}")
        item = {
            RUNS_PK: {"S": run_id},
            RUNS_SK: {"S": STATUS_RECORD},
            STATUS: {"S": status},
            UPDATED_AT: {"S": self._now()},
            FIELDS: {"S": canonical_json(fields)},
        }
        self._put(item)

    def get_status(self, run_id: str) -> dict[str, Any]:
        """``{"status": ..., "updated_at": ..., **fields}`` as last set."""
        item = self._get(run_id, STATUS_RECORD)
        if item is None:
            raise RunNotFoundError(run_id, STATUS_RECORD)
        fields: dict[str, Any] = json.loads(item[FIELDS]["S"])
        return {STATUS: item[STATUS]["S"], UPDATED_AT: item[UPDATED_AT]["S"], **fields}

    # --- epoch metrics ---------------------------------------------------------------------------

    def put_epoch_metrics(
        self, run_id: str, epoch: int, metrics: Mapping[str, float | int | None]
    ) -> None:
        """Record an epoch's metrics. Equal again: no-op. Different: RecordConflictError."""
        _check_run_id(run_id)
        record = epoch_record(epoch)
        values = {str(name): _metric(str(name), value) for name, value in metrics.items()}
        if values.pop(EPOCH, epoch) != epoch:
            raise ValueError(f"metrics[{EPOCH!r}] = {metrics[EPOCH]!r} but epoch = {epoch}")
        text = canonical_json(values)
        attributes = {
            EPOCH: {"N": str(epoch)},
            METRICS: {"S": text},
            CREATED_AT: {"S": self._now()},
        }
        existing = self._put_once(run_id, record, attributes)
        if existing is not None and existing[METRICS]["S"] != text:
            raise RecordConflictError(
                run_id, record, f"run {run_id!r} already has different metrics for epoch {epoch}"
            )

    def list_epoch_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Every recorded epoch, ordered by epoch: ``[{"epoch": 1, "train_loss": ...}, ...]``."""
        _check_run_id(run_id)
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :run AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": RUNS_PK, "#sk": RUNS_SK},
            "ExpressionAttributeValues": {
                ":run": {"S": run_id},
                ":prefix": {"S": EPOCH_RECORD_PREFIX},
            },
            "ConsistentRead": True,
        }
        rows: list[dict[str, Any]] = []
        while True:
            response = self._ddb.query(**request)
            for item in response.get("Items", []):
                rows.append({EPOCH: int(item[EPOCH]["N"]), **json.loads(item[METRICS]["S"])})
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last
        rows.sort(key=lambda row: row[EPOCH])
        return rows

    # --- plumbing --------------------------------------------------------------------------------

    def _key(self, run_id: str, record: str) -> Item:
        return {RUNS_PK: {"S": run_id}, RUNS_SK: {"S": record}}

    def _get(self, run_id: str, record: str) -> Item | None:
        _check_run_id(run_id)
        response = self._ddb.get_item(
            TableName=self.table, Key=self._key(run_id, record), ConsistentRead=True
        )
        item: Item | None = response.get("Item")
        return item

    def _put(self, item: Item, **condition: Any) -> None:
        try:
            self._ddb.put_item(TableName=self.table, Item=item, **condition)
        except ClientError as error:
            if _too_large(error):
                record = item[RUNS_SK]["S"]
                raise StoreError(
                    f"the {record!r} record of run {item[RUNS_PK]['S']!r} is larger than "
                    "DynamoDB's 400 KB item limit"
                ) from error
            raise

    def _put_once(self, run_id: str, record: str, attributes: Item) -> Item | None:
        """Put the record unless it exists; return the existing item if it does."""
        item = {**self._key(run_id, record), **attributes}
        try:
            self._put(
                item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": RUNS_PK},
            )
            return None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        existing = self._get(run_id, record)
        if existing is None:
            raise StoreError(
                f"writing the {record!r} record of run {run_id!r}: the write-once condition "
                "failed but the record is gone (deleted concurrently?); retry"
            )
        return existing


def _too_large(error: ClientError) -> bool:
    err = error.response.get("Error", {})
    message = str(err.get("Message", "")).lower()
    return err.get("Code") == "ValidationException" and "size" in message
