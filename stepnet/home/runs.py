"""HomeRuns: the runs table's records in the home's SQLite database.

The same records under the same code as the DynamoDB store's: ``HomeRuns`` is a
:class:`trainer.store.runs.RunRecords`, as ``RunStore`` is, and gives it a table's primitives
over SQLite, keeping the typed items DynamoDB would hold (one ``records`` row per item,
:mod:`stepnet.home.database`). So the rules are the same: write-once records accept equal content again and refuse other content
(:class:`~trainer.store.errors.RecordConflictError`, :class:`~trainer.store.errors.RunExistsError`),
the status record is replaced, the production record and the retraining claims are replaced only
over the revision a writer read (``ProductionChangedError``, ``ClaimChangedError``). Every
read-then-write runs in one write transaction, so concurrent processes cannot interleave.

Beyond ``RunAccess``, what the CLI and ``stepnet resume`` read of a home: every run
(:meth:`HomeRuns.list_runs`), the process that owns
a local run (:meth:`HomeRuns.set_owner`, :meth:`HomeRuns.owner`), and deleting a run
(:meth:`HomeRuns.delete_run`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Final

from stepnet.home.database import Database
from trainer.contract.names import RUNS_PK, RUNS_SK
from trainer.store import registry
from trainer.store.errors import RunNotFoundError, StoreError
from trainer.store.runs import CONFIG_RECORD, CREATED_AT, Item, RunRecords

_LAST: Final = "\U0010ffff"  # sorts after every sort key that starts with a prefix
# DynamoDB's item limit, which the runs table's records live under on AWS: a record too large
# there is refused here too (attribute names and values, UTF-8; numbers counted as their text)
ITEM_LIMIT_BYTES: Final = 400 * 1024


class HomeRuns(RunRecords):
    """Run and registry records in a home (module docstring): :class:`RunRecords`' rules over
    SQLite rows. Thread-safe."""

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self._db = database

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

    def _get_item(self, key: Item) -> Item | None:
        rows = self._db.read(
            "SELECT item FROM records WHERE pk = ? AND sk = ?",
            (key[RUNS_PK]["S"], key[RUNS_SK]["S"]),
        )
        return None if not rows else _item(rows[0][0])

    def _query(self, partition: str, prefix: str = "") -> list[Item]:
        rows = self._db.read(
            "SELECT item FROM records WHERE pk = ? AND sk >= ? AND sk < ? ORDER BY sk",
            (partition, prefix, prefix + _LAST),
        )
        return [_item(row[0]) for row in rows]

    def _put(self, item: Item) -> None:
        with self._db.write() as db:
            _replace(db, item)

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
