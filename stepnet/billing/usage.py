"""What a run consumes on AWS, and how each store call adds to it.

* :class:`StoreUsage` (requests, capacity units, bytes), :class:`FunctionUsage` (one function's
  invocations, billed milliseconds and store traffic) and :class:`Usage` (an epoch's, or the
  fixed part of a run's): additive records, scaled by counts.
* :class:`StoreCharges` prices store calls into a :class:`StoreUsage` by the rules of
  :mod:`stepnet.billing.rules`: tensor writes and reads (what a
  :class:`~trainer.store.observer.StoreObserver` hears), run records and whole objects. The
  meter (real calls on the local engine) and the dry run (the handlers on a store of shapes)
  both charge through it, so the estimate and the metered counts follow one rule book.

Reads are charged **cold**: a tensor read costs what a Lambda container without it cached would
send (a ``get`` one ``GetItem``, a ``get_many`` one ``BatchGetItem`` per 100 distinct keys, one
RRU per started 4 KB of each item, an S3 GET per spilled bundle). The local engine's shared
cache is the meter's business (``local`` counts), not the bill's.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final

from stepnet.billing.rules import inline_item_bytes, item_bytes, read_units, write_units
from trainer.contract.functions import FUNCTIONS
from trainer.store.observer import Item
from trainer.store.tensors import BATCH_GET_LIMIT

# Memory per function, MB: the sizes the stack and the local engine give the functions
# (trainer.contract.functions.FUNCTIONS, the one table they share).
FUNCTION_MEMORY_MB: Final[dict[str, int]] = {
    logical: spec.memory_mb for logical, spec in FUNCTIONS.items()
}
DEFAULT_MEMORY_MB: Final = 1024  # a function the table leaves out (none today)


@dataclass
class StoreUsage:
    """DynamoDB and S3 requests, with capacity units and bytes. Additive."""

    ddb_writes: float = 0.0  # PutItem requests
    wru: float = 0.0
    ddb_reads: float = 0.0  # GetItem, BatchGetItem and Query requests
    rru: float = 0.0
    s3_puts: float = 0.0  # PUT-class requests
    s3_gets: float = 0.0  # GET-class requests (GET, HEAD)
    bytes_written: float = 0.0  # encoded tensor bytes and objects written
    bytes_read: float = 0.0
    seed_wru: float = 0.0  # the seed design: the same writes, every tensor inline in DynamoDB
    seed_rru: float = 0.0  # … and the same reads
    config_reads: float = 0.0  # the run config: once per container, not charged per task
    config_rru: float = 0.0

    def __add__(self, other: StoreUsage) -> StoreUsage:
        return StoreUsage(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def scaled(self, factor: float) -> StoreUsage:
        return StoreUsage(**{f.name: getattr(self, f.name) * factor for f in fields(self)})

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def requests(self) -> float:
        return self.ddb_writes + self.ddb_reads + self.s3_puts + self.s3_gets


@dataclass
class FunctionUsage:
    """One Lambda function's invocations, billed milliseconds and store traffic. Additive."""

    invocations: float = 0.0
    billed_ms: float = 0.0  # Σ over invocations of the duration rounded up to 1 ms
    store: StoreUsage = field(default_factory=StoreUsage)

    def __add__(self, other: FunctionUsage) -> FunctionUsage:
        return FunctionUsage(
            self.invocations + other.invocations,
            self.billed_ms + other.billed_ms,
            self.store + other.store,
        )

    def scaled(self, factor: float) -> FunctionUsage:
        return FunctionUsage(
            self.invocations * factor, self.billed_ms * factor, self.store.scaled(factor)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "invocations": self.invocations,
            "billed_ms": self.billed_ms,
            "store": self.store.as_dict(),
        }


@dataclass
class Usage:
    """What one epoch (or the fixed part of a run) consumes on AWS."""

    transitions: float = 0.0  # Standard state transitions (billed each), every Standard machine
    epoch_transitions: float = 0.0  # of which inside the Standard Epoch executions
    epoch_executions: float = 0.0  # Standard Epoch executions
    epoch_seconds: float = 0.0  # the epoch's duration (assumed on AWS, or measured locally)
    express_transitions: float = (
        0.0  # state transitions inside the Express chunks (not billed each)
    )
    express_executions: float = 0.0  # Express chunks (each billed as a request)
    express_seconds: float = 0.0  # their duration together (Express bills GB-s of it)
    history_events: float = 0.0  # events of every execution, per epoch
    functions: dict[str, FunctionUsage] = field(default_factory=dict)
    express_history_events: float = 0.0  # of which the Express chunks' (logged at level ALL)

    @property
    def invocations(self) -> float:
        return sum(f.invocations for f in self.functions.values())

    @property
    def store(self) -> StoreUsage:
        total = StoreUsage()
        for usage in self.functions.values():
            total = total + usage.store
        return total

    def gb_seconds(self, memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB) -> float:
        """Σ billed seconds × memory in GB, per function."""
        return sum(
            u.billed_ms / 1000 * memory_mb.get(name, DEFAULT_MEMORY_MB) / 1024
            for name, u in self.functions.items()
        )

    def __add__(self, other: Usage) -> Usage:
        functions = dict(self.functions)
        for name, usage in other.functions.items():
            functions[name] = functions.get(name, FunctionUsage()) + usage
        return Usage(
            self.transitions + other.transitions,
            self.epoch_transitions + other.epoch_transitions,
            self.epoch_executions + other.epoch_executions,
            self.epoch_seconds + other.epoch_seconds,
            self.express_transitions + other.express_transitions,
            self.express_executions + other.express_executions,
            self.express_seconds + other.express_seconds,
            self.history_events + other.history_events,
            functions,
            self.express_history_events + other.express_history_events,
        )

    def scaled(self, factor: float) -> Usage:
        return Usage(
            self.transitions * factor,
            self.epoch_transitions * factor,
            self.epoch_executions * factor,
            self.epoch_seconds * factor,
            self.express_transitions * factor,
            self.express_executions * factor,
            self.express_seconds * factor,
            self.history_events * factor,
            {name: u.scaled(factor) for name, u in self.functions.items()},
            self.express_history_events * factor,
        )

    def as_dict(self, memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB) -> dict[str, Any]:
        return {
            "transitions": self.transitions,
            "epoch_transitions": self.epoch_transitions,
            "epoch_executions": self.epoch_executions,
            "epoch_seconds": self.epoch_seconds,
            "express_transitions": self.express_transitions,
            "express_executions": self.express_executions,
            "express_seconds": self.express_seconds,
            "history_events": self.history_events,
            "express_history_events": self.express_history_events,
            "invocations": self.invocations,
            "gb_seconds": self.gb_seconds(memory_mb),
            "store": self.store.as_dict(),
            "functions": {name: u.as_dict() for name, u in sorted(self.functions.items())},
        }


# --- charging store calls -----------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """What was written under a tensor key: enough to charge a later (cold) read of it."""

    item_bytes: int  # the item as stored
    seed_bytes: int  # the item had the bundle been stored inline (the seed design)
    encoded: int  # the encoded bundle's length
    spilled: bool  # in S3, the item a pointer


class StoreCharges:
    """Charges store calls to a :class:`StoreUsage` (each call names the usage to charge).

    Remembers every tensor written, so a later read is charged by the item it would fetch; a
    read of a key not written here is charged the minimum (1 RRU, no bytes). Thread-safe.
    """

    def __init__(self) -> None:
        self.written: dict[str, Written] = {}
        self._lock = threading.Lock()

    # --- tensors (what a StoreObserver hears) --------------------------------------------------

    def tensor_put(
        self, usage: StoreUsage, key: str, item: Item, *, encoded: int, spilled: bool
    ) -> None:
        """One bundle written: a ``PutItem`` of ``item`` (1 WRU per started KB), and an S3 PUT
        of the ``encoded`` bytes first if it is ``spilled``."""
        size = item_bytes(item)
        seed = size if not spilled else inline_item_bytes(item, encoded)
        with self._lock:
            self.written[key] = Written(size, seed, encoded, spilled)
            usage.ddb_writes += 1
            usage.wru += write_units(size)
            usage.seed_wru += write_units(seed)
            usage.s3_puts += spilled
            usage.bytes_written += encoded

    def tensor_get(self, usage: StoreUsage, keys: Sequence[str], *, batch: bool) -> None:
        """Bundles read cold: ``get`` one ``GetItem``; ``get_many`` one ``BatchGetItem`` per
        100 distinct keys; per key the RRU of its item, and an S3 GET if it is spilled."""
        unique = list(dict.fromkeys(keys))
        with self._lock:
            usage.ddb_reads += -(-len(unique) // BATCH_GET_LIMIT) if batch else len(unique)
            for key in unique:
                written = self.written.get(key)
                if written is None:  # not written here: the minimum
                    usage.rru += 1
                    usage.seed_rru += 1
                    continue
                usage.rru += read_units(written.item_bytes)
                usage.seed_rru += read_units(written.seed_bytes)
                usage.bytes_read += written.encoded
                usage.s3_gets += written.spilled

    # --- run records ---------------------------------------------------------------------------

    def record_put(self, usage: StoreUsage, item: Item) -> None:
        """One run record written (``PutItem``)."""
        units = write_units(item_bytes(item))
        with self._lock:
            usage.ddb_writes += 1
            usage.wru += units
            usage.seed_wru += units

    def record_get(self, usage: StoreUsage, item: Item | None, *, config: bool = False) -> None:
        """One run record read (``GetItem``; a missing record still costs 1 RRU). The run
        config is counted apart (``config_reads``): a container reads it once."""
        units = read_units(item_bytes(item) if item else 0)
        with self._lock:
            if config:
                usage.config_reads += 1
                usage.config_rru += units
                return
            usage.ddb_reads += 1
            usage.rru += units
            usage.seed_rru += units

    def record_query(self, usage: StoreUsage, items: Sequence[Item]) -> None:
        """One ``Query`` page: the RRU of the items' summed size."""
        units = read_units(sum(item_bytes(item) for item in items))
        with self._lock:
            usage.ddb_reads += 1
            usage.rru += units
            usage.seed_rru += units

    # --- whole objects -------------------------------------------------------------------------

    def object_put(self, usage: StoreUsage, nbytes: int) -> None:
        """One S3 PUT-class request carrying ``nbytes``."""
        with self._lock:
            usage.s3_puts += 1
            usage.bytes_written += nbytes

    def object_get(self, usage: StoreUsage, nbytes: int) -> None:
        """One S3 GET-class request returning ``nbytes`` (0 for a HEAD)."""
        with self._lock:
            usage.s3_gets += 1
            usage.bytes_read += nbytes
