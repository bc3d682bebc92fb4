"""Metering: count, on the local engine, what a run would be billed for on AWS.

Nothing here estimates. A :class:`Meter` attached to a :class:`~stepnet.engine.LocalAccount`:

* wraps the account's ``LambdaRuntime.invoke`` to count invocations per function and their
  billed milliseconds (each invocation's duration rounded up to 1 ms, as Lambda bills);
* registers botocore event handlers (``before-parameter-build`` and ``after-call``) on the
  handlers' store clients (``trainer.settings.store()``) and counts every DynamoDB and S3 call
  per operation, with DynamoDB's capacity units computed from the items' sizes (1 WRU per
  started KB written, 1 RRU per started 4 KB read strongly consistently, per item — the same
  rule as ``stepnet.billing.estimate``, which has no ``ReturnConsumedCapacity`` to read);
* wraps the tensor store's ``get`` and ``get_many`` to count every tensor read the handlers
  ask for, whether or not the in-process cache answered it.

Why both: in the local engine every handler shares one process and the store's write-through
cache, so most tensor reads never reach DynamoDB or S3. A Lambda container only has what it
wrote or read itself. So each call is attributed to the function that made it and counted
twice: ``local`` (the calls the local engine made) and ``aws`` (the calls a Lambda container
without the tensor cached would make: writes as made, tensor reads as asked for — "cold", an
upper bound). The run config, read once per container, is counted apart (``config_reads``).

Calls made from a handler's own worker threads (the Plan handler writes micro-batches from a
thread pool) are attributed to the only function running at the time; if functions of
different names run concurrently, to ``"(unattributed)"`` — it does not happen with the current
handlers, and the totals still include such calls.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from stepnet.billing.estimate import (
    BATCH_GET_LIMIT,
    EPOCH_FUNCTIONS,
    TRAINING_TRANSITIONS_PER_EPOCH,
    FunctionUsage,
    StoreUsage,
    Usage,
    item_bytes,
    read_units,
    write_units,
)
from stepnet.client import epoch_counts
from trainer import settings
from trainer.contract import names
from trainer.store.runs import CONFIG_RECORD
from trainer.store.tensors import NBYTES, PAYLOAD, S3_KEY
from trainer.training.cursor import parse_epoch_name

UNATTRIBUTED = "(unattributed)"
_S3_PUT_CLASS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "PostObject",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
    }
)
_S3_FREE = frozenset({"DeleteObject", "DeleteObjects", "AbortMultipartUpload"})
_DDB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
_CONTEXT_KEY = "stepnet_meter"


@dataclass
class _Written:
    """What the meter saw written under a tensor key: enough to charge a later read."""

    item_bytes: int
    inline_bytes: int  # the item had the bundle been stored inline (the seed design)
    encoded: int
    spilled: bool


@dataclass
class FunctionMeter:
    """One function's counts: invocations, billed ms, and the store traffic both ways."""

    invocations: int = 0
    billed_ms: int = 0
    seconds: float = 0.0
    aws: StoreUsage = field(default_factory=StoreUsage)
    local: StoreUsage = field(default_factory=StoreUsage)
    operations: Counter[str] = field(default_factory=Counter)  # "dynamodb.PutItem[tensors]", …

    def usage(self, *, cold: bool = True) -> FunctionUsage:
        return FunctionUsage(
            float(self.invocations), float(self.billed_ms), self.aws if cold else self.local
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "invocations": self.invocations,
            "billed_ms": self.billed_ms,
            "handler_seconds": self.seconds,
            "aws_cold": self.aws.as_dict(),
            "local": self.local.as_dict(),
            "operations": dict(sorted(self.operations.items())),
        }


class Meter:
    """Counts a local account's Lambda invocations and store requests, per function.

    ``with Meter(account) as meter: run_local(config, None, account=account)``; then
    :meth:`functions` (per function) or :meth:`epoch_usage` (per epoch, with the histories).
    """

    def __init__(self, account: Any) -> None:
        self.account = account
        self.prefix = f"{account.stack_name}-"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._active: Counter[str] = Counter()
        self._functions: defaultdict[str, FunctionMeter] = defaultdict(FunctionMeter)
        self._written: dict[str, _Written] = {}
        self._undo: list[Any] = []
        self.started = 0.0

    # --- attach / detach --------------------------------------------------------------------

    def __enter__(self) -> Meter:
        self.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def attach(self) -> None:
        """Start counting (the account must be entered: the store reads its environment)."""
        store = settings.store()
        self.store = store
        self.tensors_table = store.tensors.table
        self.runs_table = store.runs.table
        clients = {id(c): c for c in (store.tensors._ddb, store.runs._ddb)}
        clients |= {id(c): c for c in (store.tensors._s3, store.objects._s3)}
        for client in clients.values():
            service = client.meta.service_model.service_name
            hooks = (
                (f"before-parameter-build.{service}", self._before),
                (f"after-call.{service}", self._after),
            )
            for event, handler in hooks:
                # first: botocore's own before-parameter-build handlers wrap S3 bodies in files
                client.meta.events.register_first(
                    event, handler, unique_id=f"stepnet-meter-{event}"
                )
                self._undo.append(
                    lambda c=client, e=event: c.meta.events.unregister(
                        e, unique_id=f"stepnet-meter-{e}"
                    )
                )
        self._wrap_tensor_reads(store.tensors)
        self._wrap_runtime(self.account.runtime)
        self.started = time.perf_counter()

    def detach(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _wrap_runtime(self, runtime: Any) -> None:
        original = runtime.invoke

        def invoke(function_name: str, event: Any) -> Any:
            name = self._logical(function_name)
            outer = getattr(self._local, "function", None)
            self._local.function = name
            with self._lock:
                self._active[name] += 1
            started = time.perf_counter()
            try:
                return original(function_name, event)
            finally:
                elapsed = time.perf_counter() - started
                with self._lock:
                    self._active[name] -= 1
                    meter = self._functions[name]
                    meter.invocations += 1
                    meter.seconds += elapsed
                    meter.billed_ms += max(1, math.ceil(elapsed * 1000))
                self._local.function = outer

        self._replace(runtime, "invoke", invoke)

    def _wrap_tensor_reads(self, tensors: Any) -> None:
        get, get_many = tensors.get, tensors.get_many

        def metered_get(key: str) -> Any:
            self._tensor_reads([key], batch=False)
            return get(key)

        def metered_get_many(keys: Sequence[str]) -> Any:
            self._tensor_reads(list(keys), batch=True)
            return get_many(keys)

        self._replace(tensors, "get", metered_get)
        self._replace(tensors, "get_many", metered_get_many)

    def _replace(self, owner: Any, name: str, value: Any) -> None:
        """Set an instance attribute; detach puts back what was there (or the class's)."""
        missing = object()
        previous = owner.__dict__.get(name, missing)
        setattr(owner, name, value)

        def undo() -> None:
            if previous is missing:
                owner.__dict__.pop(name, None)
            else:
                setattr(owner, name, previous)

        self._undo.append(undo)

    def _logical(self, function_name: str) -> str:
        name = function_name.split(":")[6] if function_name.startswith("arn:") else function_name
        return name.removeprefix(self.prefix)

    def _current(self) -> str:
        name = getattr(self._local, "function", None)
        if name is not None:
            return str(name)
        with self._lock:
            running = {n for n, count in self._active.items() if count > 0}
        return running.pop() if len(running) == 1 else UNATTRIBUTED

    # --- tensor reads, as asked for ----------------------------------------------------------

    def _tensor_reads(self, keys: list[str], *, batch: bool) -> None:
        unique = list(dict.fromkeys(keys))
        name = self._current()
        with self._lock:
            aws = self._functions[name].aws
            aws.ddb_reads += -(-len(unique) // BATCH_GET_LIMIT) if batch else len(unique)
            for key in unique:
                written = self._written.get(key)
                if written is None:  # not written while metering: charge the minimum
                    aws.rru += 1
                    aws.seed_rru += 1
                    continue
                aws.rru += read_units(written.item_bytes)
                aws.seed_rru += read_units(written.inline_bytes)
                aws.bytes_read += written.encoded
                aws.s3_gets += written.spilled

    # --- botocore hooks ----------------------------------------------------------------------

    def _before(self, params: Mapping[str, Any], model: Any, context: Any, **_: Any) -> None:
        """Remember what the request carries (its item, its body size) for after-call."""
        if context is None:
            return
        op = model.name
        note: dict[str, Any] = {}
        if op == "PutItem":
            note["table"] = params.get("TableName")
            note["item"] = params.get("Item", {})
        elif op == "GetItem":
            note["table"] = params.get("TableName")
            note["record"] = params.get("Key", {}).get(names.RUNS_SK, {}).get("S")
        elif op in ("Query", "Scan"):
            note["table"] = params.get("TableName")
        elif op == "BatchGetItem":
            note["table"] = next(iter(params.get("RequestItems", {})), None)
        elif op in ("PutObject", "UploadPart"):
            body = params.get("Body", b"")
            note["bytes"] = _body_bytes(body)
            note["key"] = params.get("Key", "")
        elif op in ("GetObject", "HeadObject"):
            note["key"] = params.get("Key", "")
        context[_CONTEXT_KEY] = note

    def _after(
        self, http_response: Any, parsed: Mapping[str, Any], model: Any, context: Any, **_: Any
    ) -> None:
        note = (context or {}).get(_CONTEXT_KEY, {})
        service = model.service_model.service_name
        op = model.name
        name = self._current()
        with self._lock:
            meter = self._functions[name]
            if service == "dynamodb":
                self._dynamodb(meter, op, note, parsed)
            elif service == "s3":
                self._s3(meter, op, note, parsed)

    def _table_label(self, table: str | None) -> str:
        if table == self.tensors_table:
            return "tensors"
        if table == self.runs_table:
            return "runs"
        return str(table)

    def _dynamodb(
        self, meter: FunctionMeter, op: str, note: dict[str, Any], parsed: Mapping[str, Any]
    ) -> None:
        table = self._table_label(note.get("table"))
        meter.operations[f"dynamodb.{op}[{table}]"] += 1
        both = (meter.local, meter.aws)
        if op in _DDB_WRITES:
            item = note.get("item", {})
            size = item_bytes(item)
            inline = size
            encoded = 0
            if table == "tensors" and item:
                encoded = int(item.get(NBYTES, {}).get("N", 0))
                if S3_KEY in item:  # spilled: the seed design would hold the payload inline
                    inline = size - item_bytes({S3_KEY: item[S3_KEY]}) + len(PAYLOAD) + encoded
                self._written[item[names.TENSORS_PK]["S"]] = _Written(
                    size, inline, encoded, S3_KEY in item
                )
            for usage in both:
                usage.ddb_writes += 1
                usage.wru += write_units(size)
                usage.seed_wru += write_units(inline)
                usage.bytes_written += encoded if S3_KEY not in item else 0
            return
        sizes: list[int]
        if op == "GetItem":
            found = parsed.get("Item")
            sizes = [item_bytes(found)] if found else [0]
            units = sum(read_units(s) for s in sizes)
        elif op == "BatchGetItem":
            items = [i for found in parsed.get("Responses", {}).values() for i in found]
            sizes = [item_bytes(i) for i in items]
            units = sum(read_units(s) for s in sizes)
        elif op in ("Query", "Scan"):
            sizes = [item_bytes(i) for i in parsed.get("Items", [])]
            units = read_units(sum(sizes))
        else:
            return
        if table == "runs" and op == "GetItem" and note.get("record") == CONFIG_RECORD:
            for usage in both:
                usage.config_reads += 1
                usage.config_rru += units
            return
        targets = (meter.local,) if table == "tensors" else both  # aws: counted as asked for
        for usage in targets:
            usage.ddb_reads += 1
            usage.rru += units
            usage.seed_rru += units
            if table == "tensors":
                usage.bytes_read += sum(
                    int(i.get(NBYTES, {}).get("N", 0)) for i in _payload_items(op, parsed)
                )

    def _s3(
        self, meter: FunctionMeter, op: str, note: dict[str, Any], parsed: Mapping[str, Any]
    ) -> None:
        key = str(note.get("key", ""))
        meter.operations[f"s3.{op}"] += 1
        tensor = key.startswith(names.S3_TENSORS_PREFIX)
        if op in _S3_FREE:
            return
        if op in _S3_PUT_CLASS:
            for usage in (meter.local, meter.aws):
                usage.s3_puts += 1
                usage.bytes_written += note.get("bytes", 0)
            return
        targets = (meter.local,) if tensor and op == "GetObject" else (meter.local, meter.aws)
        for usage in targets:
            usage.s3_gets += 1
            if op == "GetObject" and not tensor:
                usage.bytes_read += int(parsed.get("ContentLength", 0) or 0)

    # --- reading the counts ------------------------------------------------------------------

    def functions(self) -> dict[str, FunctionMeter]:
        """A snapshot of the counts, per function (logical names, e.g. ``"Forward"``)."""
        with self._lock:
            return {
                name: FunctionMeter(
                    m.invocations,
                    m.billed_ms,
                    m.seconds,
                    StoreUsage(**m.aws.as_dict()),
                    StoreUsage(**m.local.as_dict()),
                    Counter(m.operations),
                )
                for name, m in self._functions.items()
            }

    def epoch_usage(
        self,
        histories: Mapping[str, list[dict[str, Any]]],
        run_id: str,
        *,
        epochs: float,
        epoch_seconds: float = 0.0,
        cold: bool = True,
    ) -> Usage:
        """Mean usage of one epoch: the epoch functions' counts and the Epoch executions'
        transitions divided by ``epochs``, plus the Training machine's 3 transitions."""
        functions = {
            name: m.usage(cold=cold).scaled(1 / epochs)
            for name, m in self.functions().items()
            if name in EPOCH_FUNCTIONS or name == UNATTRIBUTED
        }
        transitions = executions = 0
        for name, events in histories.items():
            if parse_epoch_name(run_id, name) is not None:
                transitions += epoch_counts(events)["transitions"]
                executions += 1
        return Usage(
            transitions=transitions / epochs + TRAINING_TRANSITIONS_PER_EPOCH,
            epoch_transitions=transitions / epochs,
            epoch_executions=executions / epochs,
            epoch_seconds=epoch_seconds,
            functions=functions,
        )


def _body_bytes(body: Any) -> int:
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    if hasattr(body, "getbuffer"):
        return int(body.getbuffer().nbytes)
    return 0


def _payload_items(op: str, parsed: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if op == "GetItem":
        return [parsed["Item"]] if parsed.get("Item") else []
    return [i for found in parsed.get("Responses", {}).values() for i in found]


@contextmanager
def metered(account: Any) -> Iterator[Meter]:
    """``with metered(account) as meter: ...`` — counts while the block runs."""
    meter = Meter(account)
    meter.attach()
    try:
        yield meter
    finally:
        meter.detach()
