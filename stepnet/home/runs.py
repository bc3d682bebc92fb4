"""HomeRuns: the runs table's records in the home's SQLite database.

The same records, built and read by the same functions as the DynamoDB store's
(:mod:`trainer.store.runs`, :mod:`trainer.store.registry`, :mod:`trainer.store.claims`), kept
as the typed items DynamoDB would hold (one ``records`` row per item, :mod:`stepnet.home.database`),
with the same rules: write-once records accept equal content again and refuse other content
(:class:`~trainer.store.errors.RecordConflictError`, :class:`~trainer.store.errors.RunExistsError`),
the status record is replaced, the production record and the retraining claims are replaced only
over the revision a writer read (``ProductionChangedError``, ``ClaimChangedError``). Every
read-then-write runs in one write transaction, so concurrent processes cannot interleave.

Beyond ``RunAccess``, what the CLI and ``stepnet resume`` read of a home: every run
(:meth:`HomeRuns.list_runs`), a run's status (:meth:`HomeRuns.get_status`), the process that owns
a local run (:meth:`HomeRuns.set_owner`, :meth:`HomeRuns.owner`), and deleting a run
(:meth:`HomeRuns.delete_run`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from stepnet.home.database import Database
from trainer.contract.names import RUNS_PK, RUNS_SK
from trainer.store import claims, registry
from trainer.store.errors import (
    RecordConflictError,
    RunExistsError,
    RunNotFoundError,
    StoreError,
)
from trainer.store.runs import (
    CONFIG,
    CONFIG_RECORD,
    CREATED_AT,
    DATASET_RECORD,
    EPOCH_RECORD_PREFIX,
    FIELDS,
    INFO,
    METRICS,
    STATUS,
    STATUS_RECORD,
    UPDATED_AT,
    Item,
    canonical_json,
    config_item,
    dataset_info_of,
    dataset_item,
    epoch_item,
    epoch_record,
    metrics_row,
    status_item,
    timestamp,
)

_LAST: Final = "\U0010ffff"  # sorts after every sort key that starts with a prefix
# DynamoDB's item limit, which the runs table's records live under on AWS: a record too large
# there is refused here too (attribute names and values, UTF-8; numbers counted as their text)
ITEM_LIMIT_BYTES: Final = 400 * 1024


class HomeRuns:
    """Run and registry records in a home (module docstring). Thread-safe."""

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = database
        self._clock = clock
        self._configs: dict[str, str] = {}  # write-once records, so safe to keep

    def _now(self) -> str:
        return timestamp(self._clock())

    # --- config ----------------------------------------------------------------------------------

    def create_run(self, run_id: str, config_json: str) -> None:
        """Record a new run's config. Same config again: no-op. Other config: RunExistsError."""
        try:
            canonical = canonical_json(json.loads(config_json))
        except (TypeError, ValueError) as error:
            raise ValueError(f"config_json must be a JSON document: {error}") from None
        existing = self._put_once(config_item(run_id, config_json, self._now()))
        if existing is not None and canonical_json(json.loads(existing[CONFIG]["S"])) != canonical:
            raise RunExistsError(run_id)

    def get_config_json(self, run_id: str) -> str:
        config = self._configs.get(run_id)
        if config is None:
            item = self._get(run_id, CONFIG_RECORD)
            if item is None:
                raise RunNotFoundError(run_id)
            config = self._configs[run_id] = str(item[CONFIG]["S"])
        return config

    def clear_cache(self) -> None:
        self._configs.clear()

    # --- dataset facts ---------------------------------------------------------------------------

    def put_dataset_info(self, run_id: str, info: Mapping[str, Any]) -> None:
        item = dataset_item(run_id, info, self._now())
        existing = self._put_once(item)
        if existing is not None and existing[INFO]["S"] != item[INFO]["S"]:
            raise RecordConflictError(run_id, DATASET_RECORD)

    def get_dataset_info(self, run_id: str) -> dict[str, Any]:
        item = self._get(run_id, DATASET_RECORD)
        if item is None:
            raise RunNotFoundError(run_id, DATASET_RECORD)
        return dataset_info_of(item)

    def dataset_created_at(self, run_id: str) -> str | None:
        item = self._get(run_id, DATASET_RECORD)
        return None if item is None else str(item[CREATED_AT]["S"])

    # --- status ----------------------------------------------------------------------------------

    def set_status(self, run_id: str, status: str, /, **fields: Any) -> None:
        item = status_item(run_id, status, fields, self._now())
        with self._db.write() as db:
            _replace(db, item)

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
        item = epoch_item(run_id, epoch, metrics, self._now())
        existing = self._put_once(item)
        if existing is not None and existing[METRICS]["S"] != item[METRICS]["S"]:
            raise RecordConflictError(
                run_id,
                item[RUNS_SK]["S"],
                f"run {run_id!r} already has different metrics for epoch {epoch}",
            )

    def get_epoch_metrics(self, run_id: str, epoch: int) -> dict[str, Any] | None:
        item = self._get(run_id, epoch_record(epoch))
        return None if item is None else metrics_row(item) | {CREATED_AT: item[CREATED_AT]["S"]}

    def list_epoch_metrics(self, run_id: str) -> list[dict[str, Any]]:
        rows = [metrics_row(item) for item in self._query(run_id, EPOCH_RECORD_PREFIX)]
        return sorted(rows, key=lambda row: int(row["epoch"]))

    # --- the model registry ----------------------------------------------------------------------

    def put_model_version(self, pipeline: str, run_id: str, document: Mapping[str, Any]) -> None:
        item = registry.model_version_item(pipeline, run_id, document, self._now())
        existing = self._put_once(item)
        if existing is not None and existing[registry.DOCUMENT] != item[registry.DOCUMENT]:
            raise RecordConflictError(
                run_id,
                item[RUNS_SK]["S"],
                f"pipeline {pipeline!r} already has a different model version of run {run_id!r}",
            )

    def get_model_version(self, pipeline: str, run_id: str) -> dict[str, Any] | None:
        return self._document(registry.registry_key(pipeline, registry.model_record(run_id)))

    def put_decision(
        self, pipeline: str, run_id: str, document: Mapping[str, Any]
    ) -> dict[str, Any]:
        item = registry.decision_item(pipeline, run_id, document, self._now())
        return registry.document_of(self._put_once(item) or item)

    def get_decision(self, pipeline: str, run_id: str) -> dict[str, Any] | None:
        return self._document(registry.registry_key(pipeline, registry.decision_record(run_id)))

    def get_production(self, pipeline: str) -> dict[str, Any] | None:
        return self._document(registry.registry_key(pipeline, registry.PRODUCTION_RECORD))

    def put_production(self, pipeline: str, document: Mapping[str, Any], revision: int) -> None:
        item = registry.production_item(pipeline, document, revision, self._now())
        if not self._put_over_revision(item, revision):
            raise registry.ProductionChangedError(pipeline, revision)

    def add_pipeline(self, pipeline: str) -> None:
        self._put_once(registry.pipeline_item(pipeline, self._now()))

    def list_pipelines(self) -> list[str]:
        items = self._query(registry.PIPELINES_PARTITION)
        return sorted(registry.pipeline_of(item) for item in items)

    def list_registry(self, pipeline: str) -> dict[str, dict[str, Any]]:
        items = self._query(registry.pipeline_partition(pipeline))
        return {str(item[RUNS_SK]["S"]): registry.document_of(item) for item in items}

    def get_claim(self, pipeline: str) -> dict[str, Any] | None:
        return self._document(claims.claim_key(pipeline))

    def put_claim(self, pipeline: str, document: Mapping[str, Any], revision: int) -> None:
        item = claims.claim_item(pipeline, document, revision, self._now())
        if not self._put_over_revision(item, revision):
            raise claims.ClaimChangedError(pipeline, revision)

    # --- what a home tells beyond RunAccess ------------------------------------------------------

    def list_runs(self) -> list[str]:
        """Every run with a config record, oldest first."""
        rows = self._db.read("SELECT item FROM records WHERE sk = ?", (CONFIG_RECORD,))
        items = [json.loads(str(row[0])) for row in rows]
        items.sort(key=lambda item: (item[CREATED_AT]["S"], item[RUNS_PK]["S"]))
        return [str(item[RUNS_PK]["S"]) for item in items]

    def created_at(self, run_id: str) -> str:
        item = self._get(run_id, CONFIG_RECORD)
        if item is None:
            raise RunNotFoundError(run_id)
        return str(item[CREATED_AT]["S"])

    def set_owner(self, run_id: str, pid: int, host: str, process_start: str | None = None) -> None:
        """Record the process that runs ``run_id`` now (``stepnet local``, a resume);
        ``process_start``: its start time as the kernel has it (``lifecycle.process_start``)."""
        with self._db.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO owners (run_id, pid, host, started_at, process_start) "
                "VALUES (?, ?, ?, ?, ?)",
                (run_id, pid, host, self._now(), process_start),
            )

    def owner(self, run_id: str) -> dict[str, Any] | None:
        """``{"pid", "host", "started_at", "process_start"}`` of the process that last ran the
        run, if any."""
        rows = self._db.read(
            "SELECT pid, host, started_at, process_start FROM owners WHERE run_id = ?", (run_id,)
        )
        if not rows:
            return None
        pid, host, started_at, process_start = rows[0]
        return {"pid": pid, "host": host, "started_at": started_at, "process_start": process_start}

    def delete_run(self, run_id: str) -> None:
        """Forget the run's records (config, dataset, status, epochs) and its owner."""
        with self._db.write() as db:
            db.execute("DELETE FROM records WHERE pk = ?", (run_id,))
            db.execute("DELETE FROM owners WHERE run_id = ?", (run_id,))
        self._configs.pop(run_id, None)

    # --- plumbing --------------------------------------------------------------------------------

    def _get(self, run_id: str, record: str) -> Item | None:
        return self._get_item({RUNS_PK: {"S": run_id}, RUNS_SK: {"S": record}})

    def _get_item(self, key: Item) -> Item | None:
        rows = self._db.read(
            "SELECT item FROM records WHERE pk = ? AND sk = ?",
            (key[RUNS_PK]["S"], key[RUNS_SK]["S"]),
        )
        return None if not rows else _item(rows[0][0])

    def _document(self, key: Item) -> dict[str, Any] | None:
        item = self._get_item(key)
        return None if item is None else registry.document_of(item)

    def _query(self, partition: str, prefix: str = "") -> list[Item]:
        rows = self._db.read(
            "SELECT item FROM records WHERE pk = ? AND sk >= ? AND sk < ? ORDER BY sk",
            (partition, prefix, prefix + _LAST),
        )
        return [_item(row[0]) for row in rows]

    def _put_once(self, item: Item) -> Item | None:
        """Put the record unless it exists; return the existing item if it does."""
        with self._db.write() as db:
            found = db.execute(
                "SELECT item FROM records WHERE pk = ? AND sk = ?",
                (item[RUNS_PK]["S"], item[RUNS_SK]["S"]),
            ).fetchone()
            if found is not None:
                return _item(found[0])
            _replace(db, item)
        return None

    def _put_over_revision(self, item: Item, revision: int) -> bool:
        """Put the record if it holds ``revision - 1`` (or is absent, for 1); False if not."""
        with self._db.write() as db:
            found = db.execute(
                "SELECT item FROM records WHERE pk = ? AND sk = ?",
                (item[RUNS_PK]["S"], item[RUNS_SK]["S"]),
            ).fetchone()
            current = None if found is None else int(_item(found[0])[registry.REVISION]["N"])
            if current != (None if revision == 1 else revision - 1):
                return False
            _replace(db, item)
        return True


def _item(text: object) -> Item:
    item: Item = json.loads(str(text))
    return item


def item_size(item: Item) -> int:
    """An item's size as DynamoDB counts it, closely enough (names and string/number values)."""
    return sum(
        len(name.encode()) + sum(len(str(v).encode()) for v in value.values())
        for name, value in item.items()
    )


def _replace(db: sqlite3.Connection, item: Item) -> None:
    if item_size(item) > ITEM_LIMIT_BYTES:
        raise StoreError(
            f"the {item[RUNS_SK]['S']!r} record of run {item[RUNS_PK]['S']!r} is larger than "
            "DynamoDB's 400 KB item limit"
        )
    db.execute(
        "INSERT OR REPLACE INTO records (pk, sk, item) VALUES (?, ?, ?)",
        (item[RUNS_PK]["S"], item[RUNS_SK]["S"], json.dumps(item, separators=(",", ":"))),
    )
