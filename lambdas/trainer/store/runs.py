"""RunStore: a run's config, dataset facts, status and per-epoch metrics in the runs table.

One partition per run (RUNS_PK = run_id); the sort key (RUNS_SK) names the record:

    "config"       the validated run config JSON          write-once
    "dataset"      facts about the prepared dataset        write-once
    "status"       RUNNING / SUCCEEDED / FAILED + fields    mutable (each write replaces it)
                   (FAILED: ``error`` and ``cause``, trimmed to MAX_CAUSE_CHARS; a diverged
                   run also ``diverged`` and the exported ``model_uri``)
    "epoch#0003"   metrics of epoch 3                      write-once

Write-once records are idempotent: writing equal content again (a retried task) is a no-op,
different content raises. Values are stored as canonical JSON text, so floats round-trip exactly
(including NaN and infinities) and ints stay ints. See docs/storage.md.

Each record's item is built by one function (:func:`config_item`, :func:`dataset_item`,
:func:`status_item`, :func:`epoch_item`) and read by one (:func:`dataset_info_of`,
:func:`metrics_row`): the store and the billing code's dry run use the same ones.
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

# The run's status values: spelled here only (the handlers, the CLI and `stepnet resume` use these).
RUNNING: Final = "RUNNING"
SUCCEEDED: Final = "SUCCEEDED"
FAILED: Final = "FAILED"
RUN_STATUSES: Final = (RUNNING, SUCCEEDED, FAILED)
# A failure's cause is kept to this many characters in the status record: a readable cause is a
# line or two, a stack of nested execution descriptions can reach Step Functions' 32,768; 4,096
# characters (at most 16 KB of UTF-8) keep the item far below DynamoDB's 400 KB.
MAX_CAUSE_CHARS: Final = 4_096

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


def trimmed_cause(cause: str, limit: int = MAX_CAUSE_CHARS) -> str:
    """``cause`` if it has at most ``limit`` characters, else its head and how much was cut:
    ``"<first characters>… (1234 more characters)"``, exactly ``limit`` characters long at
    most."""
    if len(cause) <= limit:
        return cause
    for kept in range(limit, -1, -1):  # the tail's length depends on the count it states
        tail = f"… ({len(cause) - kept} more characters)"
        if kept + len(tail) <= limit:
            return cause[:kept] + tail
    return cause[:limit]


def timestamp(seconds: float) -> str:
    """``created_at`` / ``updated_at``: ISO 8601 UTC to the millisecond, e.g.
    "2023-11-14T22:13:20.000Z" (always 24 characters)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


# --- the records: one writer and one reader of each item format -------------------------------
# RunStore writes and reads exactly these; the billing code sizes the items it would write.


def record_key(run_id: str, record: str) -> Item:
    """The key of one record of a run."""
    return {RUNS_PK: {"S": _check_run_id(run_id)}, RUNS_SK: {"S": record}}


def config_item(run_id: str, config_json: str, created_at: str) -> Item:
    """The "config" record: the run config JSON, exactly as given (write-once)."""
    return {
        **record_key(run_id, CONFIG_RECORD),
        CONFIG: {"S": config_json},
        CREATED_AT: {"S": created_at},
    }


def dataset_item(run_id: str, info: Mapping[str, Any], created_at: str) -> Item:
    """The "dataset" record: the dataset facts as canonical JSON (write-once)."""
    if not isinstance(info, Mapping):
        raise ValueError(f"dataset info must be a mapping, got {type(info).__name__}")
    return {
        **record_key(run_id, DATASET_RECORD),
        INFO: {"S": canonical_json(dict(info))},
        CREATED_AT: {"S": created_at},
    }


def dataset_info_of(item: Item) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(item[INFO]["S"])
    return info


def status_item(run_id: str, status: str, fields: Mapping[str, Any], updated_at: str) -> Item:
    """The "status" record: ``status``, when, and extra ``fields`` as canonical JSON."""
    if not isinstance(status, str) or not status:
        raise ValueError(f"status must be a non-empty string, got {status!r}")
    clash = _RESERVED_STATUS_FIELDS.intersection(fields)
    if clash:
        raise ValueError(f"status fields may not be named {sorted(clash)}")
    return {
        **record_key(run_id, STATUS_RECORD),
        STATUS: {"S": status},
        UPDATED_AT: {"S": updated_at},
        FIELDS: {"S": canonical_json(dict(fields))},
    }


def epoch_item(
    run_id: str, epoch: int, metrics: Mapping[str, float | int | None], created_at: str
) -> Item:
    """An "epoch#NNNN" record: the epoch and its metrics as canonical JSON (write-once)."""
    record = epoch_record(epoch)
    values = {str(name): _metric(str(name), value) for name, value in metrics.items()}
    if values.pop(EPOCH, epoch) != epoch:
        raise ValueError(f"metrics[{EPOCH!r}] = {metrics[EPOCH]!r} but epoch = {epoch}")
    return {
        **record_key(run_id, record),
        EPOCH: {"N": str(epoch)},
        METRICS: {"S": canonical_json(values)},
        CREATED_AT: {"S": created_at},
    }


def metrics_row(item: Item) -> dict[str, Any]:
    """An epoch record as a row: ``{"epoch": 3, "train_loss": ..., ...}``."""
    return {EPOCH: int(item[EPOCH]["N"]), **json.loads(item[METRICS]["S"])}


class RunRecords:
    """Run and registry records: every rule of them (write-once, replaced, replaced over a
    revision), over a table's five primitives, which a subclass implements — :class:`RunStore`
    on DynamoDB, ``stepnet.home.runs.HomeRuns`` on the local engine's SQLite home — so both
    stores keep records exactly alike."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._configs: dict[str, str] = {}  # write-once records, so safe to keep

    def _now(self) -> str:
        return timestamp(self._clock())

    # --- config ----------------------------------------------------------------------------------

    def create_run(self, run_id: str, config_json: str) -> None:
        """Record a new run's config. Same config again: no-op. Other config: RunExistsError."""
        _check_run_id(run_id)
        try:
            canonical = canonical_json(json.loads(config_json))
        except (TypeError, ValueError) as error:
            raise ValueError(f"config_json must be a JSON document: {error}") from None
        existing = self._put_once(config_item(run_id, config_json, self._now()))
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

    # --- dataset facts ---------------------------------------------------------------------------

    def put_dataset_info(self, run_id: str, info: Mapping[str, Any]) -> None:
        """Record the dataset facts (JSON-able dict). Equal again: no-op. Different: error."""
        item = dataset_item(run_id, info, self._now())
        existing = self._put_once(item)
        if existing is not None and existing[INFO]["S"] != item[INFO]["S"]:
            raise RecordConflictError(run_id, DATASET_RECORD)

    def get_dataset_info(self, run_id: str) -> dict[str, Any]:
        item = self._get(run_id, DATASET_RECORD)
        if item is None:
            raise RunNotFoundError(run_id, DATASET_RECORD)
        return dataset_info_of(item)

    # --- status ----------------------------------------------------------------------------------

    def set_status(self, run_id: str, status: str, /, **fields: Any) -> None:
        """Replace the run's status record with ``status``, ``updated_at`` and ``fields``."""
        self._put(status_item(run_id, status, fields, self._now()))

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
        item = epoch_item(run_id, epoch, metrics, self._now())
        existing = self._put_once(item)
        if existing is not None and existing[METRICS]["S"] != item[METRICS]["S"]:
            record = item[RUNS_SK]["S"]
            raise RecordConflictError(
                run_id, record, f"run {run_id!r} already has different metrics for epoch {epoch}"
            )

    def get_epoch_metrics(self, run_id: str, epoch: int) -> dict[str, Any] | None:
        """One epoch's row (as :meth:`list_epoch_metrics` gives it) with its ``created_at``,
        or None if it is not evaluated yet."""
        item = self._get(run_id, epoch_record(epoch))
        return None if item is None else metrics_row(item) | {CREATED_AT: item[CREATED_AT]["S"]}

    def dataset_created_at(self, run_id: str) -> str | None:
        """When the run's prepared dataset was recorded (its training began), if it was."""
        item = self._get(run_id, DATASET_RECORD)
        return None if item is None else str(item[CREATED_AT]["S"])

    def list_epoch_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Every recorded epoch, ordered by epoch: ``[{"epoch": 1, "train_loss": ...}, ...]``."""
        _check_run_id(run_id)
        rows = [metrics_row(item) for item in self._query(run_id, EPOCH_RECORD_PREFIX)]
        return sorted(rows, key=lambda row: int(row[EPOCH]))

    # --- the model registry (trainer.store.registry: records of pipeline partitions) ------------

    def put_model_version(self, pipeline: str, run_id: str, document: Mapping[str, Any]) -> None:
        """Register a run's model in a pipeline. Equal again: no-op. Different: error."""
        from trainer.store import registry

        item = registry.model_version_item(pipeline, run_id, document, self._now())
        existing = self._put_once(item)
        if existing is not None and existing[registry.DOCUMENT] != item[registry.DOCUMENT]:
            raise RecordConflictError(
                run_id,
                item[RUNS_SK]["S"],
                f"pipeline {pipeline!r} already has a different model version of run {run_id!r}",
            )

    def get_model_version(self, pipeline: str, run_id: str) -> dict[str, Any] | None:
        from trainer.store import registry

        item = self._get_item(registry.registry_key(pipeline, registry.model_record(run_id)))
        return None if item is None else registry.document_of(item)

    def put_decision(
        self, pipeline: str, run_id: str, document: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Record the promotion decision on a run's model; the first one recorded stands (a
        retry gets it back)."""
        from trainer.store import registry

        item = registry.decision_item(pipeline, run_id, document, self._now())
        return registry.document_of(self._put_once(item) or item)

    def get_decision(self, pipeline: str, run_id: str) -> dict[str, Any] | None:
        from trainer.store import registry

        item = self._get_item(registry.registry_key(pipeline, registry.decision_record(run_id)))
        return None if item is None else registry.document_of(item)

    def get_production(self, pipeline: str) -> dict[str, Any] | None:
        """The production record (with its ``revision``), or None before the first promotion."""
        from trainer.store import registry

        item = self._get_item(registry.registry_key(pipeline, registry.PRODUCTION_RECORD))
        return None if item is None else registry.document_of(item)

    def put_production(self, pipeline: str, document: Mapping[str, Any], revision: int) -> None:
        """Write revision ``revision`` of the production record if the record still holds
        ``revision - 1`` (none for 1); else ProductionChangedError."""
        from trainer.store import registry

        item = registry.production_item(pipeline, document, revision, self._now())
        if not self._put_over_revision(item, revision):
            raise registry.ProductionChangedError(pipeline, revision)

    def add_pipeline(self, pipeline: str) -> None:
        """Record the pipeline in the registry's index (once)."""
        from trainer.store import registry

        self._put_once(registry.pipeline_item(pipeline, self._now()))

    def list_pipelines(self) -> list[str]:
        """Every pipeline that has a registered model, sorted."""
        from trainer.store import registry

        items = self._query(registry.PIPELINES_PARTITION)
        return sorted(registry.pipeline_of(item) for item in items)

    def list_registry(self, pipeline: str) -> dict[str, dict[str, Any]]:
        """Every record of a pipeline (one Query): sort key -> document
        (``model#<run>``, ``decision#<run>``, ``production``)."""
        from trainer.store import registry

        items = self._query(registry.pipeline_partition(pipeline))
        return {str(item[RUNS_SK]["S"]): registry.document_of(item) for item in items}

    # --- a pipeline's retraining claim (trainer.store.claims) -----------------------------------

    def get_claim(self, pipeline: str) -> dict[str, Any] | None:
        """The pipeline's retraining claim (with its ``revision``), or None if it never had one."""
        from trainer.store import claims, registry

        item = self._get_item(claims.claim_key(pipeline))
        return None if item is None else registry.document_of(item)

    def put_claim(self, pipeline: str, document: Mapping[str, Any], revision: int) -> None:
        """Write revision ``revision`` of the claim if the record still holds ``revision - 1``
        (none for 1); else ClaimChangedError."""
        from trainer.store import claims

        item = claims.claim_item(pipeline, document, revision, self._now())
        if not self._put_over_revision(item, revision):
            raise claims.ClaimChangedError(pipeline, revision)

    # --- a table's primitives (the subclass's) ----------------------------------------------------

    def _get_item(self, key: Item) -> Item | None:
        """The item under ``key`` (read consistently), or None."""
        raise NotImplementedError

    def _query(self, partition: str, prefix: str = "") -> list[Item]:
        """Every item of a partition whose sort key starts with ``prefix``, in sort-key order."""
        raise NotImplementedError

    def _put(self, item: Item) -> None:
        """Write ``item``, replacing the record if it exists."""
        raise NotImplementedError

    def _put_once(self, item: Item) -> Item | None:
        """Write ``item`` unless its record exists; return the existing item if it does."""
        raise NotImplementedError

    def _put_over_revision(self, item: Item, revision: int) -> bool:
        """Write ``item`` if its record holds revision ``revision - 1`` (is absent, for 1);
        False if it does not."""
        raise NotImplementedError

    def _get(self, run_id: str, record: str) -> Item | None:
        return self._get_item(record_key(run_id, record))


class RunStore(RunRecords):
    """Run records in the runs table. Thread-safe (holds only a low-level DynamoDB client)."""

    def __init__(
        self, dynamodb_client: Any, *, table: str, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(clock=clock)
        self._ddb = dynamodb_client
        self.table = table

    def _get_item(self, key: Item) -> Item | None:
        response = self._ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        item: Item | None = response.get("Item")
        return item

    def _query(self, partition: str, prefix: str = "") -> list[Item]:
        """Every item of a partition (with a sort key prefix), following every page."""
        names = {"#pk": RUNS_PK}
        values: Item = {":pk": {"S": partition}}
        condition = "#pk = :pk"
        if prefix:
            names["#sk"] = RUNS_SK
            values[":prefix"] = {"S": prefix}
            condition += " AND begins_with(#sk, :prefix)"
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        items: list[Item] = []
        while True:
            response = self._ddb.query(**request)
            items.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return items
            request["ExclusiveStartKey"] = last

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

    def _put_over_revision(self, item: Item, revision: int) -> bool:
        from trainer.store import registry

        try:
            self._put(item, **registry.revision_condition(revision))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def _put_once(self, item: Item) -> Item | None:
        """Put the record unless it exists; return the existing item if it does."""
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
        run_id, record = item[RUNS_PK]["S"], item[RUNS_SK]["S"]
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
