"""HomeTensors: tensor bundles as files under ``<home>/tensors/``, indexed in SQLite.

The same contract as :class:`trainer.store.tensors.TensorStore` (``TensorAccess``):

* ``put(immutable=True)`` writes once: the same content again (a task run twice) is a no-op,
  other content raises :class:`~trainer.store.errors.ImmutableTensorError`, and so does a scratch
  bundle in the way; ``put(immutable=False)`` writes scratch that expires ``scratch_ttl_seconds``
  later (and may not replace an immutable bundle).
* ``get`` / ``get_many`` raise :class:`~trainer.store.errors.TensorNotFoundError` for a missing or
  expired key; every read checks the bytes' sha256 against the index
  (:class:`~trainer.store.errors.TensorIntegrityError`); immutable bundles come back read-only
  (and are cached in the process, up to ``cache_bytes``), scratch ones writable.

A bundle's bytes (:mod:`trainer.store.codec`) go to ``tensors/<key>.<sha256[:32]>`` — written
whole then renamed (:mod:`stepnet.home.files`) — *before* its index row is committed: a writer
killed at any moment leaves the old state (no row, or the previous row and its file) or the new
one, never a row without its bytes. Files are named by their content, so two writers of one key
never overwrite each other's bytes: the index row says which file is the bundle. Many processes
may write at once (SQLite serialises the index rows; :mod:`stepnet.home.database`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import numpy as np

from stepnet.home.database import Database
from stepnet.home.files import inside, write_atomically
from trainer.store import codec
from trainer.store.errors import ImmutableTensorError, TensorIntegrityError, TensorNotFoundError
from trainer.store.tensors import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_SCRATCH_TTL_SECONDS,
    _freeze,
    _LruCache,
    check_key,
    in_order,
)

TENSORS_DIR: Final = "tensors"
DIGEST_IN_NAME: Final = 32  # hex digits of the sha256 in a bundle's file name
_QUERY_CHUNK: Final = 500  # keys per SELECT … IN (…), below SQLite's variable limit
_READ_ATTEMPTS: Final = 3  # a scratch row may be replaced between reading it and its file

Row = tuple[str, int, str, float | None]  # digest, nbytes, path, expires_at

# One decode at a time per process: np.load parses each array's header with ast.literal_eval,
# and CPython 3.11's AST construction is not safe in concurrent threads (python/cpython#106905:
# "SystemError: AST constructor recursion depth mismatch"), which the engine's threads
# isolation reaches. Decoding is microseconds; the sandboxes decode in one thread anyway.
_DECODING: Final = threading.Lock()


class HomeTensors:
    """Tensor bundles in a home (module docstring). Thread-safe; one per process."""

    def __init__(
        self,
        database: Database,
        *,
        scratch_ttl_seconds: int = DEFAULT_SCRATCH_TTL_SECONDS,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(scratch_ttl_seconds, int) or scratch_ttl_seconds <= 0:
            raise ValueError(f"scratch_ttl_seconds must be a positive int: {scratch_ttl_seconds!r}")
        self._db = database
        self.root = database.home / TENSORS_DIR
        self.scratch_ttl_seconds = scratch_ttl_seconds
        self._clock = clock
        self._cache = _LruCache(cache_bytes)
        self._scratch_expiry: dict[str, float] = {}  # scratch keys in the cache: when they expire
        self._scratch_lock = threading.Lock()

    # --- writing -------------------------------------------------------------------------------

    def put(self, key: str, bundle: Mapping[str, np.ndarray], *, immutable: bool = True) -> None:
        """Store ``bundle`` under ``key``: write-once if ``immutable``, else as scratch."""
        check_key(key)
        data = codec.encode(bundle)
        digest = codec.digest(data)
        relative = f"{key}.{digest[:DIGEST_IN_NAME]}"
        write_atomically(inside(self.root, relative), data)
        expires_at = None if immutable else self._clock() + self.scratch_ttl_seconds
        replaced = None
        with self._db.write() as db:
            found = db.execute(
                "SELECT digest, expires_at, path FROM tensors WHERE key = ?", (key,)
            ).fetchone()
            if found is not None:
                stored, stored_expiry, stored_path = found
                if stored_expiry is None:  # an immutable bundle is there
                    if not immutable:
                        raise ImmutableTensorError(
                            key, "a scratch write may not replace an immutable bundle"
                        )
                    if stored != digest:
                        raise ImmutableTensorError(
                            key, f"stored sha256 {stored[:16]}…, new {digest[:16]}…"
                        )
                    return  # a retried task wrote this already
                if immutable:
                    raise ImmutableTensorError(
                        key,
                        "it holds a scratch bundle; immutable and scratch bundles need distinct "
                        "keys",
                    )
                if stored_path != relative:
                    replaced = stored_path
            db.execute(
                "INSERT OR REPLACE INTO tensors (key, digest, nbytes, path, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, digest, len(data), relative, expires_at),
            )
        if replaced is not None:  # the scratch bundle it replaced (a reader may retry)
            inside(self.root, replaced).unlink(missing_ok=True)
        # Write-through, as TensorStore: a process reads back what it wrote without a file read
        # (a key never changes content: immutable by rule, scratch as one deterministic result).
        copies = _freeze({name: np.array(array, copy=True) for name, array in bundle.items()})
        if expires_at is not None:
            with self._scratch_lock:
                self._scratch_expiry[key] = expires_at
        self._cache.put(key, copies, replace=not immutable)

    # --- reading -------------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, np.ndarray]:
        """The bundle stored under ``key``; raises :class:`TensorNotFoundError` if none."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[dict[str, np.ndarray]]:
        """The bundles stored under ``keys``, in the same order (duplicates allowed)."""
        keys = [check_key(key) for key in keys]
        found: dict[str, dict[str, np.ndarray]] = {}
        cached_scratch: set[str] = set()
        for key in dict.fromkeys(keys):
            cached, scratch_copy = self._cached(key)
            if cached is not None:
                found[key] = cached
                if scratch_copy:
                    cached_scratch.add(key)
        todo = [key for key in dict.fromkeys(keys) if key not in found]
        rows = self._rows(todo)
        now = self._clock()
        missing = [k for k in todo if k not in rows or _expired(rows[k], now)]
        if missing:
            detail = f"{len(missing)} of {len(todo)} keys are missing" if missing[1:] else ""
            if not missing[1:] and missing[0] in rows:
                detail = "the scratch bundle has expired"
            raise TensorNotFoundError(missing[0], detail)
        scratch = {key for key in todo if rows[key][3] is not None} | cached_scratch
        for key in todo:
            found[key] = self._load(key, rows[key])
        return in_order(keys, found, scratch)

    def _cached(self, key: str) -> tuple[dict[str, np.ndarray] | None, bool]:
        """A cached bundle (immutable ones shared read-only, scratch ones as fresh copies) and
        whether it is scratch."""
        cached = self._cache.get(key)
        if cached is None:
            return None, False
        with self._scratch_lock:
            expiry = self._scratch_expiry.get(key)
        if expiry is None:
            return dict(cached), False
        if expiry <= self._clock():
            return None, False
        return {name: array.copy() for name, array in cached.items()}, True

    def _rows(self, keys: Sequence[str]) -> dict[str, Row]:
        rows: dict[str, Row] = {}
        for start in range(0, len(keys), _QUERY_CHUNK):
            chunk = keys[start : start + _QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, digest, nbytes, path, expires_at in self._db.read(
                f"SELECT key, digest, nbytes, path, expires_at FROM tensors WHERE key IN ({marks})",
                tuple(chunk),
            ):
                rows[str(key)] = (str(digest), int(nbytes), str(path), expires_at)
        return rows

    def _load(self, key: str, row: Row) -> dict[str, np.ndarray]:
        for _ in range(_READ_ATTEMPTS):
            digest, _nbytes, path, expires_at = row
            try:
                data = inside(self.root, path).read_bytes()
            except FileNotFoundError:
                data = None
            if data is not None and codec.digest(data) == digest:
                with _DECODING:
                    bundle = codec.decode(data)
                if expires_at is not None:
                    return bundle
                frozen = _freeze(bundle)
                self._cache.put(key, frozen)
                return dict(frozen)
            if expires_at is None:
                problem = "is missing" if data is None else "does not match the recorded sha256"
                raise TensorIntegrityError(key, f"its file {self.root / path} {problem}")
            fresh = self._rows([key]).get(key)  # a scratch bundle rewritten meanwhile
            if fresh is None or _expired(fresh, self._clock()):
                raise TensorNotFoundError(key, "the scratch bundle has expired")
            row = fresh
        raise TensorIntegrityError(key, "its file kept disagreeing with the index (rewritten?)")

    # --- housekeeping --------------------------------------------------------------------------

    def clear_cache(self) -> None:
        """Drop every cached bundle (tests; memory pressure)."""
        self._cache.clear()
        with self._scratch_lock:
            self._scratch_expiry.clear()

    def versions(self, prefix: str) -> list[str]:
        """Every immutable key under ``prefix`` (e.g. ``<run_id>/weights/``), sorted."""
        rows = self._db.read(
            "SELECT key FROM tensors WHERE key >= ? AND key < ? AND expires_at IS NULL "
            "ORDER BY key",
            (prefix, prefix + "\U0010ffff"),
        )
        return [str(row[0]) for row in rows]

    def sweep_expired(self) -> int:
        """Delete the expired scratch bundles (rows, then files); returns how many."""
        now = self._clock()
        with self._db.write() as db:
            rows = db.execute(
                "SELECT path FROM tensors WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (now,),
            ).fetchall()
            db.execute(
                "DELETE FROM tensors WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
        for (path,) in rows:
            inside(self.root, str(path)).unlink(missing_ok=True)
        return len(rows)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every bundle under ``prefix`` (a run's, to replace it); returns how many."""
        with self._db.write() as db:
            rows = db.execute(
                "SELECT key, path FROM tensors WHERE key >= ? AND key < ?",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
            db.execute(
                "DELETE FROM tensors WHERE key >= ? AND key < ?", (prefix, prefix + "\U0010ffff")
            )
        for _key, path in rows:
            inside(self.root, str(path)).unlink(missing_ok=True)
        self.clear_cache()
        return len(rows)


def _expired(row: Row, now: float) -> bool:
    return row[3] is not None and row[3] <= now
