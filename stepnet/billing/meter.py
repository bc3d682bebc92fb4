"""Metering: count, on the local engine, what a run would be billed for on AWS.

Nothing here estimates. A :class:`Meter` attached to a :class:`~stepnet.engine.LocalAccount`
joins it through public seams only:

* the runtime's invocation hooks (``LambdaRuntime.hooks``): invocations per function and their
  billed milliseconds (each invocation's duration rounded up to 1 ms, as Lambda bills), and
  which function is running in which thread;
* the handlers' store (``trainer.settings.store()``): the meter is one of its tensor store's
  observers (:class:`~trainer.store.observer.StoreObserver`: every bundle written, every read
  asked for), and registers botocore event handlers (``before-parameter-build`` and
  ``after-call``) on the store's clients (``Store.clients``) to count every DynamoDB and S3 call
  it really makes, with DynamoDB's capacity units computed from the items' sizes
  (:mod:`stepnet.billing.rules`; there is no ``ReturnConsumedCapacity`` to read locally).

Why both: in the local engine every handler shares one process and the store's write-through
cache, so most tensor reads never reach DynamoDB or S3. A Lambda container only has what it
wrote or read itself. So each call is attributed to the function that made it and counted
twice: ``local`` (the calls the local engine made, from botocore) and ``aws`` (the calls a
Lambda container without the tensor cached would make: tensor writes and reads as the store's
observer hears them — "cold", an upper bound — and the runs table's and other objects' calls as
made). ``aws`` is charged by :class:`~stepnet.billing.usage.StoreCharges`, the rule book the
estimate's dry run charges by too. The run config, read once per container, is counted apart
(``config_reads``).

Calls made from a handler's own worker threads (the Plan handler writes micro-batches from a
thread pool) are attributed to the only function running at the time; if functions of
different names run concurrently, to ``"(unattributed)"`` — it does not happen with the current
handlers, and the totals still include such calls.
"""

from __future__ import annotations

import contextvars
import functools
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from stepnet.billing.rules import inline_item_bytes, item_bytes, read_units, write_units
from stepnet.billing.usage import FunctionUsage, StoreCharges, StoreUsage, Usage
from stepnet.client import epoch_counts
from trainer import settings
from trainer.contract import names, workflow
from trainer.store import RunStore, TensorStore
from trainer.store.observer import Item, StoreObserver
from trainer.store.runs import CONFIG_RECORD
from trainer.store.tensors import NBYTES, PAYLOAD, S3_KEY
from trainer.training.cursor import epoch_name, parse_epoch_name

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


class Meter(StoreObserver):
    """Counts a local account's Lambda invocations and store requests, per function.

    ``with Meter(account) as meter: run_local(config, None, account=account)``; then
    :meth:`functions` (per function) or :meth:`epoch_usage` (per epoch, with the histories).
    """

    def __init__(self, account: Any) -> None:
        self.account = account
        self.prefix = f"{account.stack_name}-"
        self._lock = threading.Lock()
        # the function whose handler runs in this context: a context variable, so that threads a
        # handler starts for its own requests (byte-range reads) are attributed to it
        self._function: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"stepnet_meter_{id(self)}", default=None
        )
        self._active: Counter[str] = Counter()
        self._functions: defaultdict[str, FunctionMeter] = defaultdict(FunctionMeter)
        self._charges = StoreCharges()
        self._undo: list[Callable[[], None]] = []
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
        if not isinstance(store.tensors, TensorStore) or not isinstance(store.runs, RunStore):
            raise TypeError(
                "the meter counts a store built from boto3 clients (Store.from_clients)"
            )
        tensors = store.tensors
        self.tensors_table, self.runs_table = tensors.table, store.runs.table
        for client in {id(c): c for c in store.clients}.values():
            service = client.meta.service_model.service_name
            for event, handler in (
                (f"before-parameter-build.{service}", self._before),
                (f"after-call.{service}", self._after),
            ):
                unique_id = f"stepnet-meter-{event}"
                # first: botocore's own before-parameter-build handlers wrap S3 bodies in files
                client.meta.events.register_first(event, handler, unique_id=unique_id)
                self._undo.append(
                    functools.partial(client.meta.events.unregister, event, unique_id=unique_id)
                )
        tensors.observers.append(self)
        self._undo.append(lambda: tensors.observers.remove(self))
        runtime = self.account.runtime
        runtime.hooks.append(self._invocation)
        self._undo.append(lambda: runtime.hooks.remove(self._invocation))
        self.started = time.perf_counter()

    def detach(self) -> None:
        while self._undo:
            self._undo.pop()()

    # --- invocations (the runtime's hook) ----------------------------------------------------

    @contextmanager
    def _invocation(self, function_name: str) -> Iterator[None]:
        name = function_name.removeprefix(self.prefix)
        token = self._function.set(name)
        with self._lock:
            self._active[name] += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._active[name] -= 1
                meter = self._functions[name]
                meter.invocations += 1
                meter.seconds += elapsed
                meter.billed_ms += max(1, math.ceil(elapsed * 1000))
            self._function.reset(token)

    def _current(self) -> str:
        name = self._function.get()
        if name is not None:
            return name
        with self._lock:
            running = {n for n, count in self._active.items() if count > 0}
        return running.pop() if len(running) == 1 else UNATTRIBUTED

    def _aws(self) -> StoreUsage:
        name = self._current()
        with self._lock:
            return self._functions[name].aws

    # --- tensors, as a Lambda container would send them (the store's observer) ---------------

    def on_put(
        self, key: str, item: Item, *, encoded_bytes: int, spilled: bool, scratch: bool
    ) -> None:
        self._charges.tensor_put(self._aws(), key, item, encoded=encoded_bytes, spilled=spilled)

    def on_get(self, keys: Sequence[str], *, batch: bool) -> None:
        self._charges.tensor_get(self._aws(), keys, batch=batch)

    # --- every request as made (botocore hooks) ----------------------------------------------

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
            note["bytes"] = _body_bytes(params.get("Body", b""))
            note["key"] = params.get("Key", "")
        elif op in ("GetObject", "HeadObject"):
            note["key"] = params.get("Key", "")
        context[_CONTEXT_KEY] = note

    def _after(
        self, http_response: Any, parsed: Mapping[str, Any], model: Any, context: Any, **_: Any
    ) -> None:
        note = (context or {}).get(_CONTEXT_KEY, {})
        service = model.service_model.service_name
        name = self._current()
        with self._lock:
            meter = self._functions[name]
            meter.operations[f"{service}.{model.name}" + self._label(service, note)] += 1
        if service == "dynamodb":
            self._dynamodb(meter, model.name, note, parsed)
        elif service == "s3":
            self._s3(meter, model.name, note, parsed)

    def _label(self, service: str, note: Mapping[str, Any]) -> str:
        if service != "dynamodb":
            return ""
        table = str(note.get("table"))
        label = {self.tensors_table: "tensors", self.runs_table: "runs"}.get(table, table)
        return f"[{label}]"

    def _dynamodb(
        self, meter: FunctionMeter, op: str, note: dict[str, Any], parsed: Mapping[str, Any]
    ) -> None:
        tensors = note.get("table") == self.tensors_table
        if op in _DDB_WRITES:
            item = note.get("item", {})
            if not tensors:  # the tensors' writes reach ``aws`` through the observer
                self._charges.record_put(meter.aws, item)
            encoded = int(item.get(NBYTES, {}).get("N", 0)) if tensors else 0
            size = item_bytes(item)
            seed = inline_item_bytes(item, encoded) if tensors and S3_KEY in item else size
            with self._lock:
                meter.local.ddb_writes += 1
                meter.local.wru += write_units(size)
                meter.local.seed_wru += write_units(seed)
                meter.local.bytes_written += encoded if PAYLOAD in item else 0
            return
        if op == "GetItem":
            items = [parsed["Item"]] if parsed.get("Item") else []
            units = read_units(item_bytes(items[0]) if items else 0)
        elif op == "BatchGetItem":
            items = [i for found in parsed.get("Responses", {}).values() for i in found]
            units = sum(read_units(item_bytes(i)) for i in items)
        elif op in ("Query", "Scan"):
            items = list(parsed.get("Items", []))
            units = read_units(sum(item_bytes(i) for i in items))
        else:
            return
        if op == "GetItem" and not tensors and note.get("record") == CONFIG_RECORD:
            self._charges.record_get(meter.local, items[0] if items else None, config=True)
            self._charges.record_get(meter.aws, items[0] if items else None, config=True)
            return
        if not tensors:  # the tensors' reads reach ``aws`` through the observer, as asked for
            if op == "GetItem":
                self._charges.record_get(meter.aws, items[0] if items else None)
            else:
                self._charges.record_query(meter.aws, items)
        with self._lock:
            meter.local.ddb_reads += 1
            meter.local.rru += units
            meter.local.seed_rru += units
            if tensors:
                meter.local.bytes_read += sum(int(i.get(NBYTES, {}).get("N", 0)) for i in items)

    def _s3(
        self, meter: FunctionMeter, op: str, note: dict[str, Any], parsed: Mapping[str, Any]
    ) -> None:
        tensor = str(note.get("key", "")).startswith(names.S3_TENSORS_PREFIX)
        if op in _S3_FREE:
            return
        if op in _S3_PUT_CLASS:
            nbytes = int(note.get("bytes", 0))
            self._charges.object_put(meter.local, nbytes)
            if not tensor:  # a spilled tensor's PUT reaches ``aws`` through the observer
                self._charges.object_put(meter.aws, nbytes)
            return
        # GET-class: a tensor's GET brings bytes the tensor's read already counted
        nbytes = int(parsed.get("ContentLength", 0) or 0) if op == "GetObject" else 0
        self._charges.object_get(meter.local, 0 if tensor else nbytes)
        if not (tensor and op == "GetObject"):
            self._charges.object_get(meter.aws, 0 if tensor else nbytes)

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
        express_seconds: float = 0.0,
        cold: bool = True,
    ) -> Usage:
        """Mean usage of one epoch: the epoch functions' counts, the Standard Epoch executions'
        transitions and the Express chunks' divided by ``epochs``, plus the Training machine's
        transitions per epoch."""
        functions = {
            name: m.usage(cold=cold).scaled(1 / epochs)
            for name, m in self.functions().items()
            if name in workflow.EPOCH_FUNCTIONS or name == UNATTRIBUTED
        }
        return history_usage(histories, run_id, epochs=epochs) + Usage(
            epoch_seconds=epoch_seconds, express_seconds=express_seconds, functions=functions
        )


def history_usage(
    histories: Mapping[str, list[dict[str, Any]]], run_id: str, *, epochs: float
) -> Usage:
    """What the histories of a run's epochs say, per epoch: the Standard Epoch executions' and
    the Express chunks' transitions and executions, and every execution's events (the
    Training machine's per-epoch share included)."""
    standard = Counter[str]()
    chunks = Counter[str]()
    for name, events in histories.items():
        epoch = parse_epoch_name(run_id, name)
        if epoch is None:
            continue
        # the epoch's own execution is Standard; its chunks (<epoch>-part-MM) are Express
        counts = standard if name == epoch_name(run_id, epoch) else chunks
        counts["transitions"] += epoch_counts(events)["transitions"]
        counts["events"] += len(events)
        counts["executions"] += 1
    return Usage(
        transitions=standard["transitions"] / epochs + workflow.TRAINING_TRANSITIONS_PER_EPOCH,
        epoch_transitions=standard["transitions"] / epochs,
        epoch_executions=standard["executions"] / epochs,
        express_transitions=chunks["transitions"] / epochs,
        express_executions=chunks["executions"] / epochs,
        history_events=(standard["events"] + chunks["events"]) / epochs
        + workflow.TRAINING_EVENTS_PER_EPOCH,
        express_history_events=chunks["events"] / epochs,
    )


def _body_bytes(body: Any) -> int:
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    if hasattr(body, "getbuffer"):
        return int(body.getbuffer().nbytes)
    return 0


@contextmanager
def metered(account: Any) -> Iterator[Meter]:
    """``with metered(account) as meter: ...`` — counts while the block runs."""
    meter = Meter(account)
    meter.attach()
    try:
        yield meter
    finally:
        meter.detach()
