"""What a run costs on AWS, before anything is deployed: ``stepnet cost CONFIG``.

An analytic model of one epoch, built from the same rules the pipeline follows:

* **State transitions** count ``StateEntered`` events, exactly as the ASL files produce them
  (``trainer.training.schedule.events_per_step`` counts the same structure as events): per micro-batch,
  ``per_layer`` enters the mode Choice, L Forward Tasks and their L Choices, the cost Task,
  L Backward Tasks and their L Choices and the Succeed (4L + 3); ``fused`` the Choice and one
  Task (2). Per step: the Map, the Update Task and the loop Choice (3). Per Epoch execution:
  its first Choice and its end (Succeed, or Continue + Succeed) — 3 per execution, counting Plan
  once. The Training execution adds 3 per epoch (Train epoch, Evaluate epoch, More epochs?) and
  2 per run (Initialize run, Export model).
* **Lambda invocations** per epoch: Plan, one Update per step, per micro-batch 2L + 1 tasks
  (per_layer) or 1 (fused), and the Training machine's Evaluate.
* **DynamoDB and S3 requests** replay what each handler asks the store for
  (``trainer.dal``/``trainer.store``): every bundle's encoded size is computed exactly (the
  codec writes an uncompressed ``.npz``), bundles above the inline limit are spilled to S3 (one
  PUT, a pointer item), and each item is charged by DynamoDB's rule — 1 WRU per started KB
  written, 1 RRU per started 4 KB read (strongly consistent), per item. Reads are counted as if
  no Lambda container had the tensor cached ("cold": an upper bound — a warm container re-reads
  neither what it wrote nor immutable weights it already read). The run config is read once
  per container and is not charged per task.
* **Lambda duration** (GB-seconds) is an *assumption* (:class:`DurationModel`), not a
  measurement: `make bench` reports the local engine's measured handler times next to it.

:func:`estimate` returns a :class:`CostEstimate` for both modes; :func:`format_estimate` renders
it. ``tests/engine/test_metering.py`` checks the counts against a metered local run.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from stepnet import sources
from stepnet.billing import prices
from trainer.config import RunConfig
from trainer.contract import names
from trainer.contract.functions import FUNCTIONS, LAMBDA_ARCHITECTURE, functions_in
from trainer.contract.names import (
    HISTORY_EVENT_BUDGET,
    INLINE_LIMIT_BYTES,
    TENSORS_PK,
    TENSORS_TTL_ATTRIBUTE,
)
from trainer.data.errors import DatasetError
from trainer.data.prepare import split_sizes
from trainer.store import codec, keys
from trainer.store.tensors import (
    BATCH_GET_LIMIT,
    DIGEST,
    NBYTES,
    PAYLOAD,
    S3_KEY,
)
from trainer.training.schedule import steps_per_execution
from trainer.training.step import initial_state

# --- the deployment this model prices ----------------------------------------------------------

# Memory per function, MB: the sizes the stack and the local engine give the functions
# (trainer.contract.functions.FUNCTIONS, the one table they share).
FUNCTION_MEMORY_MB: Final[dict[str, int]] = {
    logical: spec.memory_mb for logical, spec in FUNCTIONS.items()
}
# Express bills the memory the execution uses in 64 MB steps; states that carry only keys stay
# in the first step. Duration is billed in 100 ms steps.
EXPRESS_MEMORY_MB: Final = 64
EXPRESS_DURATION_STEP_S: Final = 0.1
EXPRESS_MAX_SECONDS: Final = 300.0

MODES: Final = ("per_layer", "fused")
EPOCH_FUNCTIONS: Final = tuple(
    logical for logical in FUNCTIONS if logical not in functions_in("run")
)
RUN_FUNCTIONS: Final = functions_in("run")
TRAINING_TRANSITIONS_PER_EPOCH: Final = 3  # Train epoch, Evaluate epoch, More epochs?
TRAINING_TRANSITIONS_PER_RUN: Final = 2  # Initialize run, Export model
KB: Final = 1024


# --- DynamoDB's capacity rules ----------------------------------------------------------------


def attribute_value_bytes(value: Mapping[str, Any]) -> int:
    """Size of one typed DynamoDB value (``{"S": ...}``, ``{"N": ...}``, ``{"B": ...}``, …).

    Strings and binaries count their bytes; numbers ``ceil(digits / 2) + 1`` bytes (DynamoDB's
    "about one byte per two significant digits, plus one"); lists and maps 3 bytes plus their
    elements (and, for maps, the keys).
    """
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "B":
        return len(inner)
    if kind == "N":
        digits = sum(ch.isdigit() for ch in str(inner))
        return (digits + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "NS":
        return sum(attribute_value_bytes({"N": n}) for n in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_value_bytes(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + attribute_value_bytes(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_bytes(item: Mapping[str, Mapping[str, Any]]) -> int:
    """An item's size as DynamoDB charges it: attribute names plus values."""
    return sum(len(name.encode()) + attribute_value_bytes(value) for name, value in item.items())


def write_units(size: int) -> int:
    """WRU of writing one item of ``size`` bytes: one per started KB (at least one)."""
    return max(1, math.ceil(size / KB))


def read_units(size: int) -> int:
    """RRU of one strongly consistent read of an item of ``size`` bytes: one per started 4 KB."""
    return max(1, math.ceil(size / (4 * KB)))


# --- tensor bundles: exact encoded sizes and their items ----------------------------------------

ArraySpec = tuple[tuple[int, ...], Any]  # (shape, dtype)
_EMPTY: Final = ((0,), np.uint8)


def _npy_header_bytes(shape: Sequence[int], dtype: Any) -> int:
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(int(n) for n in shape),
    }
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.tell()


_zip_overheads: dict[tuple[str, ...], int] = {}


def _zip_overhead(names: Sequence[str]) -> int:
    """Bytes of the codec's zip structure for members ``names`` (headers, directory)."""
    ordered = tuple(sorted(names))
    cached = _zip_overheads.get(ordered)
    if cached is None:
        empty = {name: np.zeros(*_EMPTY) for name in ordered}
        cached = len(codec.encode(empty)) - len(ordered) * _npy_header_bytes(*_EMPTY)
        _zip_overheads[ordered] = cached
    return cached


def encoded_bytes(arrays: Mapping[str, ArraySpec]) -> int:
    """Length of ``trainer.store.codec.encode`` of arrays with these shapes and dtypes,
    computed without allocating them (tests check it against the codec)."""
    if len(arrays) == 0:
        return len(codec.encode({}))
    data = sum(
        _npy_header_bytes(shape, dtype) + math.prod(shape) * np.dtype(dtype).itemsize
        for shape, dtype in arrays.values()
    )
    return _zip_overhead(list(arrays)) + data


def bundle_spec(bundle: Mapping[str, np.ndarray]) -> dict[str, ArraySpec]:
    return {name: (tuple(array.shape), array.dtype) for name, array in bundle.items()}


_TTL_DIGITS: Final = "1" * 10  # an epoch-seconds expiry: ten digits until 2286
_DIGEST_HEX: Final = "0" * 64


def tensor_item(key: str, encoded: int, *, spilled: bool, scratch: bool) -> dict[str, Any]:
    """The shape of the item ``TensorStore`` writes for a bundle (payload as zero bytes)."""
    item: dict[str, Any] = {
        TENSORS_PK: {"S": key},
        DIGEST: {"S": _DIGEST_HEX},
        NBYTES: {"N": str(encoded)},
    }
    if spilled:
        prefix = names.S3_SCRATCH_PREFIX if scratch else names.S3_TENSORS_PREFIX
        item[S3_KEY] = {"S": prefix + key}
    else:
        item[PAYLOAD] = {"B": b""}
    if scratch:
        item[TENSORS_TTL_ATTRIBUTE] = {"N": _TTL_DIGITS}
    return item


def tensor_item_bytes(key: str, encoded: int, *, spilled: bool, scratch: bool) -> int:
    size = item_bytes(tensor_item(key, encoded, spilled=spilled, scratch=scratch))
    return size if spilled else size + encoded


# --- usage: what an epoch consumes --------------------------------------------------------------


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

    transitions: float = 0.0  # Standard state transitions, every machine
    epoch_transitions: float = 0.0  # of which inside Epoch executions (Express would take them)
    epoch_executions: float = 0.0  # Epoch executions, continuation parts included
    epoch_seconds: float = 0.0  # their duration (what Express would bill)
    functions: dict[str, FunctionUsage] = field(default_factory=dict)

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
        return sum(
            u.billed_ms / 1000 * memory_mb.get(name, 1024) / 1024
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
            functions,
        )

    def scaled(self, factor: float) -> Usage:
        return Usage(
            self.transitions * factor,
            self.epoch_transitions * factor,
            self.epoch_executions * factor,
            self.epoch_seconds * factor,
            {name: u.scaled(factor) for name, u in self.functions.items()},
        )

    def as_dict(self, memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB) -> dict[str, Any]:
        return {
            "transitions": self.transitions,
            "epoch_transitions": self.epoch_transitions,
            "epoch_executions": self.epoch_executions,
            "epoch_seconds": self.epoch_seconds,
            "invocations": self.invocations,
            "gb_seconds": self.gb_seconds(memory_mb),
            "store": self.store.as_dict(),
            "functions": {name: u.as_dict() for name, u in sorted(self.functions.items())},
        }


# --- dollars ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bill:
    """Dollars for one design, by component."""

    design: str
    label: str
    items: dict[str, float]
    hypothetical: bool = False
    note: str = ""

    @property
    def total(self) -> float:
        return sum(self.items.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "design": self.design,
            "label": self.label,
            "total_usd": self.total,
            "items_usd": self.items,
            "hypothetical": self.hypothetical,
            "note": self.note,
        }


def _lambda_items(usage: Usage, memory_mb: Mapping[str, int]) -> dict[str, float]:
    gb_price = prices.each(f"lambda_gb_second_{LAMBDA_ARCHITECTURE.replace('-', '_')}")
    return {
        "Lambda requests": usage.invocations * prices.each("lambda_request"),
        "Lambda GB-s": usage.gb_seconds(memory_mb) * gb_price,
    }


def _store_items(store: StoreUsage) -> dict[str, float]:
    return {
        "DynamoDB WRU": store.wru * prices.each("dynamodb_write_request_unit"),
        "DynamoDB RRU": (store.rru + store.config_rru) * prices.each("dynamodb_read_request_unit"),
        "S3 PUT": store.s3_puts * prices.each("s3_put_request"),
        "S3 GET": store.s3_gets * prices.each("s3_get_request"),
    }


def standard_bill(
    usage: Usage, mode: str, memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB
) -> Bill:
    """The stack as built: Standard Training and Epoch machines."""
    items = {
        "Step Functions transitions": usage.transitions
        * prices.each("stepfunctions_standard_transition"),
        **_lambda_items(usage, memory_mb),
        **_store_items(usage.store),
    }
    return Bill(f"standard:{mode}", f"Step Functions Standard, {mode}", items)


def express_seconds(seconds: float, executions: float) -> float:
    """Billed Express duration: each execution rounded up to 100 ms (spread evenly)."""
    if executions <= 0:
        return 0.0
    each = seconds / executions
    return math.ceil(each / EXPRESS_DURATION_STEP_S - 1e-9) * EXPRESS_DURATION_STEP_S * executions


def express_bill(
    usage: Usage, mode: str, memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB
) -> Bill:
    """Hypothetical: the Epoch machine as an Express workflow (the Training machine stays
    Standard). stepnet has no Express mode; Express allows no ``.sync`` inside and at most
    5 minutes per execution."""
    gb_s = express_seconds(usage.epoch_seconds, usage.epoch_executions) * EXPRESS_MEMORY_MB / 1024
    items = {
        "Step Functions transitions": (usage.transitions - usage.epoch_transitions)
        * prices.each("stepfunctions_standard_transition"),
        "Express requests": usage.epoch_executions * prices.each("stepfunctions_express_request"),
        "Express GB-s": gb_s * prices.each("stepfunctions_express_gb_second"),
        **_lambda_items(usage, memory_mb),
        **_store_items(usage.store),
    }
    per_execution = usage.epoch_seconds / max(usage.epoch_executions, 1.0)
    note = "hypothetical: stepnet has no Express mode"
    if per_execution > EXPRESS_MAX_SECONDS:
        note += f"; {per_execution:.0f} s per execution exceeds Express's 5-minute limit"
    return Bill(
        f"express:{mode}", f"Epoch machine as Express (hypothetical), {mode}", items, True, note
    )


def seed_bill(per_layer: Usage, memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB) -> Bill:
    """The seed design: the per-layer Lambdas chained by SNS (a publish per invocation), every
    tensor in DynamoDB (1 WRU per KB written, 1 RRU per 4 KB read), no Step Functions, no S3.
    Priced from the per-layer mode's counts."""
    store = per_layer.store
    items = {
        **_lambda_items(per_layer, memory_mb),
        "SNS publishes": per_layer.invocations * prices.each("sns_publish"),
        "DynamoDB WRU": store.seed_wru * prices.each("dynamodb_write_request_unit"),
        "DynamoDB RRU": (store.seed_rru + store.config_rru)
        * prices.each("dynamodb_read_request_unit"),
    }
    note = "items above 400 KB would have to be chunked; units are the same"
    return Bill(
        "seed", "seed design: Lambdas chained by SNS, tensors in DynamoDB", items, False, note
    )


def m5_bill(reference_seconds: float, *, measured: bool) -> Bill:
    """An m5.large running the reference trainer for the same epoch."""
    items = {"m5.large time": reference_seconds / 3600 * prices.each("ec2_m5_large_hour")}
    how = "measured reference time" if measured else "assumed throughput (DurationModel)"
    return Bill("m5.large", "m5.large running the reference", items, False, how)


# --- the analytic model -----------------------------------------------------------------------


# Store requests a handler keeps in flight at once (state.save_microbatches: a pool of 16).
CONCURRENCY: Final = {"Plan": 16}


@dataclass(frozen=True)
class DurationModel:
    """Assumed warm-Lambda durations, for GB-seconds and the Express duration. Not measured on
    AWS: ballpark figures to be replaced by measurements when the stack is deployed."""

    invoke_overhead_ms: float = 5.0  # runtime, event validation, logging
    dynamodb_request_ms: float = 6.0  # single-digit ms in-region
    s3_request_ms: float = 25.0  # first byte of a GET / a PUT's round trip
    store_mb_per_s: float = 80.0  # payload throughput of one function to DynamoDB / S3
    codec_mb_per_s: float = 400.0  # .npz encode/decode plus sha256
    gflops_per_vcpu: float = 8.0  # numpy float32 dense layers on one Lambda vCPU
    mb_per_vcpu: float = 1769.0  # Lambda gives one vCPU per 1,769 MB
    task_dispatch_ms: float = 25.0  # Step Functions → Lambda → Step Functions per Task state
    m5_large_gflops: float = 20.0  # the reference trainer on an m5.large (2 vCPU)

    def task_ms(
        self, store: StoreUsage, flops: float, memory_mb: int, concurrency: int = 1
    ) -> float:
        """One invocation's duration; ``concurrency``: requests the handler overlaps."""
        vcpu = min(1.0, memory_mb / self.mb_per_vcpu)
        moved = (store.bytes_written + store.bytes_read) / 1e6
        return (
            self.invoke_overhead_ms
            + (store.ddb_writes + store.ddb_reads) * self.dynamodb_request_ms / concurrency
            + (store.s3_puts + store.s3_gets) * self.s3_request_ms / concurrency
            + moved / self.store_mb_per_s * 1000
            + moved / self.codec_mb_per_s * 1000
            + flops / (self.gflops_per_vcpu * 1e9 * vcpu) * 1000
        )


@dataclass(frozen=True)
class Shapes:
    """Everything the model needs to know about the data and the network."""

    run_id: str
    n_train: int
    n_val: int
    n_features: int
    n_outputs: int
    units: tuple[int, ...]  # per layer
    batch_size: int
    workers: int
    weights: tuple[dict[str, ArraySpec], ...]  # per layer {"W", "b"}
    optimizer: tuple[dict[str, ArraySpec], ...]  # per layer, as the optimizer stores it
    history_event_budget: int = HISTORY_EVENT_BUDGET  # the deployment's (see Limits)

    @property
    def layers(self) -> int:
        return len(self.units)

    @property
    def microbatches(self) -> int:
        return -(-self.n_train // self.batch_size)

    @property
    def steps(self) -> int:
        return -(-self.n_train // (self.batch_size * self.workers))

    @property
    def last_microbatch(self) -> int:
        return self.n_train - (self.microbatches - 1) * self.batch_size

    @property
    def last_step_microbatches(self) -> int:
        return self.microbatches - (self.steps - 1) * self.workers

    @property
    def multiply_adds(self) -> int:
        """Σ_l n_in·n_out: one example's multiply-adds through every layer."""
        sizes = (self.n_features, *self.units)
        return sum(a * b for a, b in itertools.pairwise(sizes))


def shapes_for(
    config: RunConfig,
    n_train: int,
    n_val: int,
    n_features: int,
    *,
    history_event_budget: int = HISTORY_EVENT_BUDGET,
) -> Shapes:
    params, states = initial_state(config, n_features)
    return Shapes(
        run_id=config.run_id,
        n_train=n_train,
        n_val=n_val,
        n_features=n_features,
        n_outputs=config.model.layers[-1].units,
        units=tuple(layer.units for layer in config.model.layers),
        batch_size=config.batch_size,
        workers=config.workers,
        weights=tuple(bundle_spec({"W": W, "b": b}) for W, b in params),
        optimizer=tuple(bundle_spec(state) for state in states),
        history_event_budget=history_event_budget,
    )


def transitions_per_microbatch(layers: int, mode: str) -> int:
    """StateEntered events of one Map iteration: 4L + 3 per layer, 2 fused."""
    return 4 * layers + 3 if mode == "per_layer" else 2


def epoch_parts(shapes: Shapes, mode: str) -> int:
    """Epoch executions one epoch takes (continuations after each step budget)."""
    chunk = steps_per_execution(
        workers=shapes.workers,
        layers=shapes.layers,
        mode=mode,
        budget=shapes.history_event_budget,
    )
    return -(-shapes.steps // chunk)


def epoch_machine_transitions(shapes: Shapes, mode: str) -> int:
    """StateEntered events of one epoch's Epoch executions."""
    per_mb = transitions_per_microbatch(shapes.layers, mode)
    return 3 * epoch_parts(shapes, mode) + 3 * shapes.steps + shapes.microbatches * per_mb


class _Tally:
    """Replays a handler's store calls, charging each by the store's and DynamoDB's rules."""

    def __init__(self, inline_limit: int = INLINE_LIMIT_BYTES) -> None:
        self.inline_limit = inline_limit
        self.usage: defaultdict[str, StoreUsage] = defaultdict(StoreUsage)

    def _sizes(
        self, key: str, spec: Mapping[str, ArraySpec], scratch: bool
    ) -> tuple[int, bool, int, int]:
        encoded = encoded_bytes(spec)
        spilled = encoded > self.inline_limit
        stored = tensor_item_bytes(key, encoded, spilled=spilled, scratch=scratch)
        inline = tensor_item_bytes(key, encoded, spilled=False, scratch=scratch)
        return encoded, spilled, stored, inline

    def put(
        self, fn: str, key: str, spec: Mapping[str, ArraySpec], *, scratch: bool, times: int = 1
    ) -> None:
        encoded, spilled, stored, inline = self._sizes(key, spec, scratch)
        u = self.usage[fn]
        u.ddb_writes += times
        u.wru += write_units(stored) * times
        u.s3_puts += spilled * times
        u.bytes_written += encoded * times
        u.seed_wru += write_units(inline) * times

    def get(self, fn: str, key: str, spec: Mapping[str, ArraySpec], *, scratch: bool) -> None:
        self.get_many(fn, [(key, spec, scratch)], batch=False)

    def get_many(
        self,
        fn: str,
        items: Sequence[tuple[str, Mapping[str, ArraySpec], bool]],
        *,
        batch: bool = True,
    ) -> None:
        unique = {key: (spec, scratch) for key, spec, scratch in items}
        u = self.usage[fn]
        u.ddb_reads += -(-len(unique) // BATCH_GET_LIMIT) if batch else len(unique)
        for key, (spec, scratch) in unique.items():
            encoded, spilled, stored, inline = self._sizes(key, spec, scratch)
            u.rru += read_units(stored)
            u.s3_gets += spilled
            u.bytes_read += encoded
            u.seed_rru += read_units(inline)

    def runs_put(self, fn: str, item: Mapping[str, Any]) -> None:
        size = item_bytes(item)
        u = self.usage[fn]
        u.ddb_writes += 1
        u.wru += write_units(size)
        u.seed_wru += write_units(size)

    def runs_read(self, fn: str, sizes: Sequence[int], *, query: bool = False) -> None:
        u = self.usage[fn]
        u.ddb_reads += 1 if query else len(sizes)
        units = read_units(sum(sizes)) if query else sum(read_units(s) for s in sizes)
        u.rru += units
        u.seed_rru += units

    def object_put(self, fn: str, nbytes: int) -> None:
        u = self.usage[fn]
        u.s3_puts += 1
        u.bytes_written += nbytes

    def object_get(self, fn: str, nbytes: int) -> None:
        u = self.usage[fn]
        u.s3_gets += 1
        u.bytes_read += nbytes


_F32: Final = np.dtype(np.float32)


def _batch(shapes: Shapes, rows: int) -> dict[str, ArraySpec]:
    return {"X": ((rows, shapes.n_features), _F32), "Y": ((rows, shapes.n_outputs), _F32)}


def _activation(rows: int, units: int) -> dict[str, ArraySpec]:
    return {"A": ((rows, units), _F32)}


def _output_grad(rows: int, units: int) -> dict[str, ArraySpec]:
    return {"dZ": ((rows, units), _F32)}


def _grad(weights: Mapping[str, ArraySpec]) -> dict[str, ArraySpec]:
    return {"dW": weights["W"], "db": weights["b"]}


def _metrics_item(run_id: str, epoch: int) -> dict[str, Any]:
    value = 0.12345678901234568  # a float's repr is at most 17 significant digits
    metrics = {"train_loss": value, "val_accuracy": value, "val_loss": value, "version": 999_999}
    return {
        names.RUNS_PK: {"S": run_id},
        names.RUNS_SK: {"S": f"epoch#{epoch:04d}"},
        "epoch": {"N": str(epoch)},
        "metrics": {"S": json.dumps(metrics, sort_keys=True, separators=(",", ":"))},
        "created_at": {"S": "2026-01-01T00:00:00.000Z"},
    }


@dataclass
class _Unit:
    """One kind of invocation: its store traffic and arithmetic, times how often it runs."""

    function: str
    count: float
    store: StoreUsage
    flops: float


def _units(shapes: Shapes, mode: str, inline_limit: int = INLINE_LIMIT_BYTES) -> list[_Unit]:
    """Every invocation of one epoch, grouped by kind (the last micro-batch and step apart)."""
    L, run = shapes.layers, shapes.run_id
    v, e, s = 1, 1, 0  # representative version, epoch, step: keys are zero-padded
    units: list[_Unit] = []

    def one(fn: str, count: float, flops: float, replay: Any) -> None:
        if count <= 0:
            return
        tally = _Tally(inline_limit)
        replay(tally)
        units.append(_Unit(fn, count, tally.usage[fn], flops))

    sizes = (shapes.n_features, *shapes.units)
    batch_key = keys.batch_key(run, e, s, 0)
    network_grads = {
        f"{name}{k}": spec
        for k, weights in enumerate(shapes.weights, start=1)
        for name, spec in (("dW", weights["W"]), ("db", weights["b"]))
    }
    mb_sizes = [(shapes.batch_size, shapes.microbatches - 1), (shapes.last_microbatch, 1)]

    def layer_input(t: _Tally, fn: str, layer: int, rows: int) -> None:
        if layer == 1:
            t.get(fn, batch_key, _batch(shapes, rows), scratch=True)
        else:
            key = keys.activation_key(run, v, 0, layer - 1)
            t.get(fn, key, _activation(rows, shapes.units[layer - 2]), scratch=True)

    for rows, count in mb_sizes:
        if mode == "per_layer":
            for layer in range(1, L + 1):

                def forward(t: _Tally, layer: int = layer, rows: int = rows) -> None:
                    layer_input(t, "Forward", layer, rows)
                    t.get(
                        "Forward",
                        keys.weights_key(run, v, layer),
                        shapes.weights[layer - 1],
                        scratch=False,
                    )
                    t.put(
                        "Forward",
                        keys.activation_key(run, v, 0, layer),
                        _activation(rows, shapes.units[layer - 1]),
                        scratch=True,
                    )

                def backward(t: _Tally, layer: int = layer, rows: int = rows) -> None:
                    t.get(
                        "Backward",
                        keys.output_grad_key(run, v, 0, layer),
                        _output_grad(rows, shapes.units[layer - 1]),
                        scratch=True,
                    )
                    layer_input(t, "Backward", layer, rows)
                    t.get(
                        "Backward",
                        keys.weights_key(run, v, layer),
                        shapes.weights[layer - 1],
                        scratch=False,
                    )
                    t.put(
                        "Backward",
                        keys.gradient_key(run, v, 0, layer),
                        _grad(shapes.weights[layer - 1]),
                        scratch=True,
                    )
                    if layer > 1:
                        t.put(
                            "Backward",
                            keys.output_grad_key(run, v, 0, layer - 1),
                            _output_grad(rows, shapes.units[layer - 2]),
                            scratch=True,
                        )

                macs = rows * sizes[layer - 1] * sizes[layer]
                one("Forward", count, 2 * macs, forward)
                one("Backward", count, 4 * macs, backward)

            def cost(t: _Tally, rows: int = rows) -> None:
                t.get(
                    "Loss",
                    keys.activation_key(run, v, 0, L),
                    _activation(rows, shapes.units[-1]),
                    scratch=True,
                )
                t.get("Loss", batch_key, _batch(shapes, rows), scratch=True)
                t.put(
                    "Loss",
                    keys.output_grad_key(run, v, 0, L),
                    _output_grad(rows, shapes.units[-1]),
                    scratch=True,
                )

            one("Loss", count, 5 * rows * shapes.n_outputs, cost)
        else:

            def gradients(t: _Tally, rows: int = rows) -> None:
                t.get("Gradients", batch_key, _batch(shapes, rows), scratch=True)
                t.get_many(
                    "Gradients",
                    [
                        (keys.weights_key(run, v, k), shapes.weights[k - 1], False)
                        for k in range(1, L + 1)
                    ],
                )
                # every layer's gradients in one bundle (state.save_network_gradients)
                t.put("Gradients", keys.gradients_key(run, v, 0), network_grads, scratch=True)

            one("Gradients", count, 6 * rows * shapes.multiply_adds, gradients)

    schedule = {
        "sizes": ((shapes.steps, min(shapes.workers, shapes.microbatches)), np.dtype(np.int64))
    }
    params = sum(math.prod(spec[0]) for w in shapes.weights for spec in w.values())
    step_kinds = [(shapes.workers, shapes.steps - 1), (shapes.last_step_microbatches, 1)]
    for microbatches, count in step_kinds:

        def update(t: _Tally, m: int = microbatches) -> None:
            t.get("Update", keys.schedule_key(run, e), schedule, scratch=False)
            t.get_many(
                "Update",
                [
                    (keys.weights_key(run, v, k), shapes.weights[k - 1], False)
                    for k in range(1, L + 1)
                ],
            )
            t.get_many(
                "Update",
                [
                    (keys.optimizer_key(run, v, k), shapes.optimizer[k - 1], False)
                    for k in range(1, L + 1)
                ],
            )
            if mode == "fused":  # one bundle per micro-batch
                wanted = [(keys.gradients_key(run, v, mb), network_grads, True) for mb in range(m)]
            else:  # one bundle per micro-batch and layer
                wanted = [
                    (keys.gradient_key(run, v, mb, k), _grad(shapes.weights[k - 1]), True)
                    for mb in range(m)
                    for k in range(1, L + 1)
                ]
            t.get_many("Update", wanted)
            for k in range(1, L + 1):
                t.put(
                    "Update", keys.weights_key(run, v + 1, k), shapes.weights[k - 1], scratch=False
                )
            for k in range(1, L + 1):
                t.put(
                    "Update",
                    keys.optimizer_key(run, v + 1, k),
                    shapes.optimizer[k - 1],
                    scratch=False,
                )

        one("Update", count, (microbatches + 20) * params, update)

    train = _batch(shapes, shapes.n_train)
    val = _batch(shapes, shapes.n_val)

    def plan(t: _Tally) -> None:
        t.get("Plan", keys.data_key(run, "train"), train, scratch=False)
        for rows, count in mb_sizes:
            t.put("Plan", batch_key, _batch(shapes, rows), scratch=True, times=count)
        t.put("Plan", keys.schedule_key(run, e), schedule, scratch=False)

    one("Plan", 1, 0.0, plan)

    def evaluate(t: _Tally) -> None:
        t.get_many(
            "Evaluate",
            [(keys.weights_key(run, v, k), shapes.weights[k - 1], False) for k in range(1, L + 1)],
        )
        t.get("Evaluate", keys.data_key(run, "train"), train, scratch=False)
        t.get("Evaluate", keys.data_key(run, "val"), val, scratch=False)
        t.runs_put("Evaluate", _metrics_item(run, e))

    one("Evaluate", 1, 2 * (shapes.n_train + shapes.n_val) * shapes.multiply_adds, evaluate)
    return units


def _run_units(
    shapes: Shapes,
    config: RunConfig,
    uploaded_bytes: int | None,
    inline_limit: int = INLINE_LIMIT_BYTES,
) -> list[_Unit]:
    """The fixed part of a run: Initialize and Finalize (runs-table items sized roughly)."""
    run, L = shapes.run_id, shapes.layers
    units: list[_Unit] = []
    train = _batch(shapes, shapes.n_train)
    val = _batch(shapes, shapes.n_val)
    info_chars = 200 + 2 * 24 * shapes.n_features  # mean and std as JSON floats

    def record(name: str, chars: int) -> dict[str, Any]:
        return {
            names.RUNS_PK: {"S": run},
            names.RUNS_SK: {"S": name},
            "value": {"S": "x" * chars},
        }

    def initialize(t: _Tally) -> None:
        if uploaded_bytes is not None:
            t.object_get("Initialize", uploaded_bytes)
        t.runs_put("Initialize", record("config", len(config.to_json()) + 30))
        t.put("Initialize", keys.data_key(run, "train"), train, scratch=False)
        t.put("Initialize", keys.data_key(run, "val"), val, scratch=False)
        t.runs_put("Initialize", record("dataset", info_chars))
        t.runs_put("Initialize", record("status", 60))
        for k in range(1, L + 1):
            t.put("Initialize", keys.weights_key(run, 0, k), shapes.weights[k - 1], scratch=False)
        for k in range(1, L + 1):
            t.put(
                "Initialize", keys.optimizer_key(run, 0, k), shapes.optimizer[k - 1], scratch=False
            )

    def finalize(t: _Tally) -> None:
        t.runs_read("Finalize", [info_chars + 60])
        t.get_many(
            "Finalize",
            [(keys.weights_key(run, 1, k), shapes.weights[k - 1], False) for k in range(1, L + 1)],
        )
        t.runs_read("Finalize", [item_bytes(_metrics_item(run, 1))] * config.epochs, query=True)
        model_bytes = sum(encoded_bytes(w) for w in shapes.weights)
        for nbytes in (model_bytes, info_chars + 400, 120 * config.epochs + 80):
            t.object_put("Finalize", nbytes)
        t.runs_put("Finalize", record("status", 120))

    for fn, replay in (("Initialize", initialize), ("Finalize", finalize)):
        tally = _Tally(inline_limit)
        replay(tally)
        units.append(_Unit(fn, 1, tally.usage[fn], 0.0))
    return units


def _usage(units: Iterable[_Unit], duration: DurationModel, memory_mb: Mapping[str, int]) -> Usage:
    functions: dict[str, FunctionUsage] = {}
    for unit in units:
        memory = memory_mb.get(unit.function, 1024)
        ms = math.ceil(
            duration.task_ms(unit.store, unit.flops, memory, CONCURRENCY.get(unit.function, 1))
        )
        usage = FunctionUsage(unit.count, ms * unit.count, unit.store.scaled(unit.count))
        functions[unit.function] = functions.get(unit.function, FunctionUsage()) + usage
    return Usage(functions=functions)


def _critical_path_seconds(
    units: Sequence[_Unit],
    shapes: Shapes,
    mode: str,
    duration: DurationModel,
    memory_mb: Mapping[str, int],
) -> float:
    """The assumed duration of one epoch's Epoch executions on AWS: the step's micro-batches
    run in parallel, so each step takes one micro-batch chain plus the update."""
    per_task: dict[str, float] = defaultdict(float)
    per_count: dict[str, float] = defaultdict(float)
    for unit in units:
        ms = duration.task_ms(
            unit.store,
            unit.flops,
            memory_mb.get(unit.function, 1024),
            CONCURRENCY.get(unit.function, 1),
        )
        per_task[unit.function] += ms * unit.count
        per_count[unit.function] += unit.count
    mean = {fn: per_task[fn] / per_count[fn] for fn in per_task}
    L = shapes.layers
    if mode == "per_layer":
        chain = L * (mean["Forward"] + mean["Backward"]) + mean["Loss"]
        tasks_per_step = 2 * L + 2
    else:
        chain = mean["Gradients"]
        tasks_per_step = 2
    ms = (
        mean["Plan"]
        + shapes.steps * (chain + mean["Update"] + tasks_per_step * duration.task_dispatch_ms)
        + duration.task_dispatch_ms
    )
    return ms / 1000


@dataclass
class ModeEstimate:
    mode: str
    usage: Usage  # one epoch
    run_usage: Usage  # the fixed part of a run (Initialize, Finalize, 2 transitions)
    standard: Bill  # one epoch
    express: Bill  # one epoch, hypothetical
    parts: int  # Epoch executions per epoch
    tasks_per_microbatch: int

    def transitions_per_example(self, n_train: int) -> float:
        return self.usage.transitions / n_train

    def run_total(self, epochs: int, memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB) -> float:
        fixed = standard_bill(self.run_usage, self.mode, memory_mb).total
        return epochs * self.standard.total + fixed


@dataclass
class CostEstimate:
    """The analytic estimate of one config, both modes, per epoch (and per run)."""

    config: RunConfig
    shapes: Shapes
    modes: dict[str, ModeEstimate]
    seed: Bill
    m5_large: Bill
    reference_seconds: float
    duration: DurationModel
    memory_mb: dict[str, int]

    @property
    def mode(self) -> ModeEstimate:
        """The config's own mode."""
        return self.modes[self.config.mode]

    def cheapest(self) -> Bill:
        bills = [m.standard for m in self.modes.values()]
        return min(bills, key=lambda b: b.total)

    def as_dict(self) -> dict[str, Any]:
        s = self.shapes
        return {
            "run_id": self.config.run_id,
            "mode": self.config.mode,
            "epochs": self.config.epochs,
            "n_train": s.n_train,
            "n_val": s.n_val,
            "n_features": s.n_features,
            "layers": [s.n_features, *s.units],
            "batch_size": s.batch_size,
            "workers": s.workers,
            "steps_per_epoch": s.steps,
            "microbatches_per_epoch": s.microbatches,
            "modes": {
                name: {
                    "epoch_executions": m.parts,
                    "transitions_per_example": m.transitions_per_example(s.n_train),
                    "usage_per_epoch": m.usage.as_dict(self.memory_mb),
                    "usage_per_run_fixed": m.run_usage.as_dict(self.memory_mb),
                    "standard_per_epoch": m.standard.as_dict(),
                    "express_per_epoch": m.express.as_dict(),
                    "run_total_usd": m.run_total(self.config.epochs, self.memory_mb),
                }
                for name, m in self.modes.items()
            },
            "seed_per_epoch": self.seed.as_dict(),
            "m5_large_per_epoch": self.m5_large.as_dict(),
            "reference_seconds_assumed": self.reference_seconds,
            "memory_mb": self.memory_mb,
            "duration_model": self.duration.__dict__,
            "prices": {"source": prices.SOURCE, "recorded": prices.RECORDED},
        }


def model_epoch(
    shapes: Shapes,
    mode: str,
    *,
    duration: DurationModel | None = None,
    memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB,
    inline_limit: int = INLINE_LIMIT_BYTES,
) -> Usage:
    """One epoch's usage in ``mode`` (transitions, invocations, store requests, GB-s).

    ``inline_limit``: the tensor store's spill threshold (the deployed store's by default)."""
    duration = duration or DurationModel()
    units = _units(shapes, mode, inline_limit)
    usage = _usage(units, duration, memory_mb)
    epoch_transitions = epoch_machine_transitions(shapes, mode)
    return replace(
        usage,
        transitions=epoch_transitions + TRAINING_TRANSITIONS_PER_EPOCH,
        epoch_transitions=epoch_transitions,
        epoch_executions=epoch_parts(shapes, mode),
        epoch_seconds=_critical_path_seconds(units, shapes, mode, duration, memory_mb),
    )


def model_run_fixed(
    shapes: Shapes,
    config: RunConfig,
    *,
    uploaded_bytes: int | None = None,
    duration: DurationModel | None = None,
    memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB,
    inline_limit: int = INLINE_LIMIT_BYTES,
) -> Usage:
    """The part of a run that does not repeat per epoch: Initialize, Export, 2 transitions."""
    units = _run_units(shapes, config, uploaded_bytes, inline_limit)
    usage = _usage(units, duration or DurationModel(), memory_mb)
    return replace(usage, transitions=TRAINING_TRANSITIONS_PER_RUN)


# --- the dataset's shape, without training anything -----------------------------------------------


class EstimateError(ValueError):
    """The estimate needs something it cannot read; the message says what to pass."""


def dataset_shape(config: RunConfig, base: Path = Path()) -> tuple[int, int]:
    """(examples, features) of the config's dataset, read from its header (or CSV lines)."""
    source = config.dataset.source
    if source.startswith("s3://"):
        raise EstimateError(
            f"dataset.source is {source}: the estimate reads no S3; pass n_train and n_features"
        )
    try:
        return sources.shape_of(source, base)
    except DatasetError as error:
        raise EstimateError(f"{error}; pass n_train and n_features") from None


def estimate(
    config: RunConfig,
    n_train: int | None = None,
    *,
    n_features: int | None = None,
    base: Path = Path(),
    duration: DurationModel | None = None,
    memory_mb: Mapping[str, int] | None = None,
    reference_seconds: float | None = None,
) -> CostEstimate:
    """The cost of one epoch of ``config`` on AWS, in both modes, before deploying anything.

    ``n_train`` (training examples, after the validation split) and ``n_features`` default to
    what the dataset's header says (builtin and local files; an ``s3://`` source needs both).
    ``reference_seconds`` (one epoch of the reference trainer) prices the m5.large; without it
    the time is assumed from ``duration.m5_large_gflops``.
    """
    duration = duration or DurationModel()
    memory = dict(memory_mb or FUNCTION_MEMORY_MB)
    fraction = config.dataset.validation_fraction
    if n_train is None or n_features is None:
        try:
            n, d = dataset_shape(config, base)
        except EstimateError:
            if n_train is None:
                raise
            raise EstimateError("pass n_features too: the dataset cannot be read here") from None
        n_features = d if n_features is None else n_features
        if n_train is None:
            n_train, n_val = split_sizes(n, fraction)
        else:
            n_val = max(1, round(n_train * fraction / (1 - fraction)))
    else:
        n_val = max(1, round(n_train * fraction / (1 - fraction)))
    if n_train < 1 or n_features < 1:
        raise EstimateError(f"need n_train >= 1 and n_features >= 1, got {n_train}, {n_features}")
    shapes = shapes_for(config, n_train, n_val, n_features)
    uploaded = None if config.dataset.source.startswith("builtin:") else n_train * n_features * 4
    modes: dict[str, ModeEstimate] = {}
    for mode in MODES:
        usage = model_epoch(shapes, mode, duration=duration, memory_mb=memory)
        run_usage = model_run_fixed(
            shapes, config, uploaded_bytes=uploaded, duration=duration, memory_mb=memory
        )
        modes[mode] = ModeEstimate(
            mode=mode,
            usage=usage,
            run_usage=run_usage,
            standard=standard_bill(usage, mode, memory),
            express=express_bill(usage, mode, memory),
            parts=epoch_parts(shapes, mode),
            tasks_per_microbatch=2 * shapes.layers + 1 if mode == "per_layer" else 1,
        )
    measured = reference_seconds is not None
    if reference_seconds is None:
        flops = (
            6 * shapes.n_train * shapes.multiply_adds
            + 2 * (shapes.n_train + shapes.n_val) * shapes.multiply_adds
        )
        reference_seconds = flops / (duration.m5_large_gflops * 1e9)
    return CostEstimate(
        config=config,
        shapes=shapes,
        modes=modes,
        seed=seed_bill(modes["per_layer"].usage, memory),
        m5_large=m5_bill(reference_seconds, measured=measured),
        reference_seconds=reference_seconds,
        duration=duration,
        memory_mb=memory,
    )


# --- rendering ---------------------------------------------------------------------------------


def usd(value: float) -> str:
    """Dollars with enough digits to compare small amounts: $0.0134, $0.000021."""
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    digits = max(2, -math.floor(math.log10(abs(value))) + 2)
    return f"${value:.{digits}f}"


def _count(value: float) -> str:
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _bytes(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return out


def format_estimate(est: CostEstimate) -> str:
    """The estimate as plain text: counts and dollars per epoch, both modes, and per run."""
    s, c = est.shapes, est.config
    pl, fu = est.modes["per_layer"], est.modes["fused"]
    lines = [
        f"stepnet cost: {c.run_id}  (configured mode: {c.mode}, {c.epochs} epochs)",
        f"  data: {s.n_train:,} training + {s.n_val:,} validation examples, {s.n_features} features",
        f"  network: {' -> '.join(str(n) for n in (s.n_features, *s.units))};  "
        f"batch {s.batch_size} x {s.workers} workers",
        f"  per epoch: {s.steps:,} steps, {s.microbatches:,} micro-batches",
        "",
        "Per epoch (analytic)",
    ]

    def both(fn: Any) -> list[str]:
        return [fn(pl), fn(fu)]

    rows = [
        ["Epoch executions", *both(lambda m: str(m.parts))],
        ["State transitions", *both(lambda m: _count(m.usage.transitions))],
        ["Transitions per example", *both(lambda m: f"{m.transitions_per_example(s.n_train):.3f}")],
        ["Lambda invocations", *both(lambda m: _count(m.usage.invocations))],
        [
            "Lambda GB-s (assumed durations)",
            *both(lambda m: f"{m.usage.gb_seconds(est.memory_mb):,.1f}"),
        ],
        [
            "DynamoDB writes / WRU",
            *both(lambda m: f"{_count(m.usage.store.ddb_writes)} / {_count(m.usage.store.wru)}"),
        ],
        [
            "DynamoDB reads / RRU (cold)",
            *both(lambda m: f"{_count(m.usage.store.ddb_reads)} / {_count(m.usage.store.rru)}"),
        ],
        [
            "S3 PUT / GET",
            *both(lambda m: f"{_count(m.usage.store.s3_puts)} / {_count(m.usage.store.s3_gets)}"),
        ],
        [
            "Tensor bytes written / read",
            *both(
                lambda m: (
                    f"{_bytes(m.usage.store.bytes_written)} / {_bytes(m.usage.store.bytes_read)}"
                )
            ),
        ],
    ]
    lines += _table(["", "per_layer", "fused"], rows)
    lines += ["", "Tensor bytes per task (written + read)"]
    task_rows = []
    for m in (pl, fu):
        for fn in EPOCH_FUNCTIONS:
            u = m.usage.functions.get(fn)
            if (
                u is None
                or u.invocations == 0
                or (m is fu and fn in ("Plan", "Update", "Evaluate"))
            ):
                continue
            moved = (u.store.bytes_written + u.store.bytes_read) / u.invocations
            task_rows.append(
                [
                    f"{fn} ({m.mode})" if fn not in ("Plan", "Update", "Evaluate") else fn,
                    _count(u.invocations),
                    _bytes(moved),
                    f"{u.billed_ms / u.invocations:,.0f}",
                ]
            )
    lines += _table(["task", "per epoch", "bytes per task", "assumed ms"], task_rows)
    lines += ["", "Dollars per epoch"]
    bill_rows = [
        [pl.standard.label, usd(pl.standard.total), ""],
        [fu.standard.label, usd(fu.standard.total), ""],
        [pl.express.label, usd(pl.express.total), pl.express.note],
        [fu.express.label, usd(fu.express.total), fu.express.note],
        [est.seed.label, usd(est.seed.total), "from per_layer counts"],
        [
            est.m5_large.label,
            usd(est.m5_large.total),
            f"{est.reference_seconds:.3g} s, {est.m5_large.note}",
        ],
    ]
    lines += _table(["design", "$ / epoch", "note"], bill_rows)
    mode = est.mode
    memory = "/".join(str(m) for m in sorted(set(est.memory_mb.values())))
    lines += [
        "",
        f"Whole run ({c.epochs} epochs, {c.mode}, Standard): "
        f"{usd(mode.run_total(c.epochs, est.memory_mb))} "
        f"(transitions {usd(mode.standard.items['Step Functions transitions'])} of "
        f"{usd(mode.standard.total)} per epoch)",
        f"Prices: {prices.SOURCE} (recorded {prices.RECORDED}). Lambda {LAMBDA_ARCHITECTURE}, "
        f"{memory} MB. Reads counted cold (no warm cache): an upper bound. Lambda durations "
        "are assumptions (stepnet.billing.estimate.DurationModel), not measurements.",
    ]
    return "\n".join(lines)
