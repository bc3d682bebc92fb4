"""The home's SQLite database: one file, ``<home>/home.sqlite``, shared by every process.

Opened in WAL mode (readers never wait for the writer; one writer at a time, the others wait up
to :data:`BUSY_TIMEOUT_MS`) with ``synchronous=NORMAL``: a committed transaction survives the
process being killed at any moment (SIGKILL included); only a power loss may undo the last ones,
never leaving half of one. Each thread of each process has its own connection (a connection is
never shared across a ``fork``: the sandboxes are forked from a template process).

Tables::

    records(pk, sk, item)        the runs table's items, as DynamoDB holds them (typed JSON):
                                 a run's records and the model registry's (trainer.store.runs,
                                 trainer.store.registry, trainer.store.claims)
    tensors(key, digest, nbytes, path, expires_at)
                                 the tensor index: one row per bundle, the bundle in a file
                                 (``path``, relative to the home); ``expires_at`` (epoch seconds)
                                 for scratch, NULL for immutable
    owners(run_id, pid, host, started_at, process_start)
                                 the process that runs a local run (``stepnet local``): a run
                                 whose status is RUNNING but whose owner is gone was killed
                                 (``process_start``: the kernel's start time of that pid, so a
                                 pid used again by another process is not taken for it)
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

DATABASE_FILE: Final = "home.sqlite"
BUSY_TIMEOUT_MS: Final = 60_000

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS records (
    pk TEXT NOT NULL, sk TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tensors (
    key TEXT PRIMARY KEY, digest TEXT NOT NULL, nbytes INTEGER NOT NULL, path TEXT NOT NULL,
    expires_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tensors_expiry ON tensors (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS owners (
    run_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, started_at TEXT NOT NULL,
    process_start TEXT
) WITHOUT ROWID;
"""


class Database:
    """Connections to ``<home>/home.sqlite`` (created with its tables on first use), one per
    thread and process. Thread-safe and fork-safe."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / DATABASE_FILE
        self._local = threading.local()
        self._created = False
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (a new one in a forked child)."""
        pid = os.getpid()
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None or getattr(self._local, "pid", None) != pid:
            connection = self._connect()
            self._local.connection, self._local.pid = connection, pid
        return connection

    def _connect(self) -> sqlite3.Connection:
        self.home.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if connection.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise RuntimeError(f"{self.path}: SQLite could not switch to WAL mode")
        connection.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            if not self._created:
                connection.executescript(SCHEMA)  # each statement idempotent and atomic
                self._created = True
        return connection

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: the write lock is taken first, so a
        read-then-write inside it cannot be overtaken by another writer)."""
        connection = self.connection()
        with _immediate(connection):
            yield connection

    def read(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query (a consistent snapshot)."""
        return self.connection().execute(sql, parameters).fetchall()


@contextmanager
def _immediate(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
