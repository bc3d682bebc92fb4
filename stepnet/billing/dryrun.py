"""The dry run: the handlers' own ``run()`` on a store of shapes, every store call charged.

Nothing here restates what a handler reads or writes. :func:`dry_run` calls the handlers
(``trainer.handlers.*.run``) in the workflow's order (``trainer.contract.workflow``) on a
:class:`ShapeStore`, a :class:`~trainer.store.Store` whose three parts keep only what billing
needs and charge each call through :class:`~stepnet.billing.usage.StoreCharges`:

* :class:`ShapeTensors` records each bundle's key, its arrays' ``(shape, dtype, order)`` and
  whether it is scratch; it sizes the item with the store's one writer
  (``trainer.store.tensors.tensor_item``; the encoding's exact length from the shapes,
  :func:`~stepnet.billing.rules.encoded_bytes`) and tells its observer, as ``TensorStore`` does.
  Reads return zeros of the recorded shapes: read-only ``np.broadcast_to`` views for immutable
  bundles (no memory, however large the data), fresh writable arrays for scratch (as
  ``TensorStore`` hands out scratch; untouched zero pages). Integer, boolean and string arrays
  keep their values: they steer what the handlers do next (the dataset's shard sizes, byte
  offsets and URIs decide which rows each task reads); floating-point values never do.
* :class:`ShapeRuns` builds each record with ``trainer.store.runs``' record builders and
  charges the item; :class:`ShapeObjects` serves the dataset's files and the objects put (the
  converted shards), charging every GET, ranged GET, HEAD, LIST and PUT.

The handlers do their real arithmetic on those zeros, in real time: EvaluateShards over the
whole dataset is the largest piece (about 30 GFLOP for the MNIST-sized bench config, a second
or so).
The numbers that come out are meaningless; the calls, keys, shapes and sizes are the real ones.

**The dataset: the shard passes run for real.** CheckShards reads and checks every shard,
PrepareShards converts what it must and computes each shard's statistics, Start merges them and
records the dataset; they run once per group of shards, on the real files (a builtin set, or a
local file or folder served from the ShapeStore's bucket where ``stepnet start`` would upload
it, cut into shards as it cuts them), so everything downstream is exact: the split's sizes, the
classes, the shards' byte offsets, and the byte ranges every micro-batch task and EvaluateShards
read (the ShapeStore serves the files and the shards the handlers convert). The price is their
own work once per estimate (both modes share the run, below), as their Lambdas do it on AWS.
When the file cannot be read (an ``s3://`` source) or its counts are overridden, a stand-in of
the given shape (the rest from the header, ``stepnet.sources.shape_of``) is generated: one
file, zeros, the classes cycling through the labels; exact in shapes, approximate only in the
shards' count and the dataset's statistics.

**Representatives.** The dry run runs Initialize, the shard passes and Start, Plan for epoch 1,
then per mode the epoch's first step and, if the epoch has more than one, its last (every
micro-batch of each, for Update reads them all), then every group's EvaluateShards, Evaluate,
Finalize, Register and Promote (the pipeline's first model: promoted, the pointer written).
Keys are zero-padded, so every full
micro-batch (and every full step) sends exactly what the first one sends;
``stepnet.billing.estimate`` weights these by the counts of
``trainer.training.schedule.step_layout``. Two shortcuts, both invisible to the bill: the last
step trains on the weights version the first step wrote (so no step in between is run; versions
are fixed-width in keys), and both modes share one run (Initialize and Plan are the same in
either mode but for the config record's ``"mode"``, so the other mode's steps start from the
cursor Plan returns for it, ``trainer.training.cursor.first_cursor``). The other epochs'
metrics records, which Finalize reads back, are written uncharged with epoch 1's values.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from pydantic import BaseModel

from stepnet import sources
from stepnet.billing.rules import ArraySpec, bundle_spec, encoded_bytes
from stepnet.billing.usage import StoreCharges, StoreUsage
from trainer import dal
from trainer.config import RunConfig, parse_config
from trainer.contract import names, workflow
from trainer.contract.functions import FUNCTIONS, handler_module, in_workflow
from trainer.contract.names import HISTORY_EVENT_BUDGET, INLINE_LIMIT_BYTES
from trainer.contract.storage import DATA_BUCKET
from trainer.data.blocks import split_blocks
from trainer.data.errors import DatasetError
from trainer.data.shards import DEFAULT_SHARD_MB
from trainer.data.sources import BUILTIN_FILES
from trainer.messages import (
    Cursor,
    EpochEnd,
    EpochMetrics,
    EpochStart,
    EvaluationTask,
    FinalizeRequest,
    InitializeRequest,
    MicroBatchTask,
    ModelRegistered,
    PrepareTask,
    PromoteRequest,
    RegisterRequest,
    RunPlan,
    RunProgress,
    ShardGroupTask,
    StartRequest,
    StepEnd,
)
from trainer.store import ObjectNotFoundError, Store, TensorNotFoundError, registry, runs
from trainer.store.objects import object_uri
from trainer.store.observer import Item, StoreObserver
from trainer.store.tensors import DEFAULT_SCRATCH_TTL_SECONDS, check_key, tensor_item
from trainer.training.cursor import first_cursor, next_cursor, step_seconds
from trainer.training.schedule import (
    StepLayout,
    layout_sizes,
    microbatch_segments,
    step_layout,
)

# The bucket the dry run's objects live in: its name is in the model's S3 URI (the status record,
# the run summary). The local engine's name for it; a deployed stack's generated name is as long.
DRY_RUN_BUCKET: Final = DATA_BUCKET.physical_name(names.DEFAULT_STACK_NAME, "123456789012")


class EstimateError(ValueError):
    """The estimate needs something it cannot read; the message says what to pass."""


# --- the store of shapes ------------------------------------------------------------------------


class _Account(StoreObserver):
    """Where the dry run's charges go: ``usage``, the invocation being run (Plan's worker
    threads included). The tensors' observer; the runs and objects charge it directly."""

    def __init__(self) -> None:
        self.charges = StoreCharges()
        self.usage = StoreUsage()

    def on_put(
        self, key: str, item: Item, *, encoded_bytes: int, spilled: bool, scratch: bool
    ) -> None:
        self.charges.tensor_put(self.usage, key, item, encoded=encoded_bytes, spilled=spilled)

    def on_get(self, keys: Sequence[str], *, batch: bool) -> None:
        self.charges.tensor_get(self.usage, keys, batch=batch)


@dataclass(frozen=True)
class _Bundle:
    specs: dict[str, ArraySpec]
    scratch: bool
    values: dict[str, np.ndarray]  # the integer arrays, kept


def _kept(array: np.ndarray) -> bool:
    """Integers, booleans and strings steer the handlers (sizes, offsets, URIs): kept."""
    return bool(np.issubdtype(array.dtype, np.integer) or array.dtype.kind in "bUS")


class ShapeTensors:
    """A tensor store that keeps shapes, not numbers (see the module docstring).

    ``put`` records ``{name: (shape, dtype, order)}``, sizes the item exactly as
    ``TensorStore`` writes it (inline up to ``inline_limit`` encoded bytes, else spilled) and
    tells the observers; ``get``/``get_many`` tell the observers, then return zeros of the
    recorded shapes (integer arrays: their values).
    """

    def __init__(
        self,
        *,
        inline_limit: int = INLINE_LIMIT_BYTES,
        scratch_ttl_seconds: int = DEFAULT_SCRATCH_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        observers: Iterable[StoreObserver] = (),
    ) -> None:
        self.inline_limit = inline_limit
        self.scratch_ttl_seconds = scratch_ttl_seconds
        self._clock = clock
        self.observers: list[StoreObserver] = list(observers)
        self._bundles: dict[str, _Bundle] = {}
        self._lock = threading.Lock()

    def put(self, key: str, bundle: Mapping[str, np.ndarray], *, immutable: bool = True) -> None:
        check_key(key)
        specs = bundle_spec(bundle)
        encoded = encoded_bytes(specs)
        spilled = encoded > self.inline_limit
        scratch = not immutable
        expires_at = int(self._clock()) + self.scratch_ttl_seconds if scratch else None
        # an inline item carries the encoding: zero bytes of its length (at most the limit)
        payload = b"" if spilled else bytes(encoded)
        item = tensor_item(key, encoded, spilled=spilled, expires_at=expires_at, payload=payload)
        values = {n: np.array(a, copy=True) for n, a in bundle.items() if _kept(np.asarray(a))}
        with self._lock:
            self._bundles[key] = _Bundle(specs, scratch, values)
        for observer in self.observers:
            observer.on_put(key, item, encoded_bytes=encoded, spilled=spilled, scratch=scratch)

    def get(self, key: str) -> dict[str, np.ndarray]:
        check_key(key)
        for observer in self.observers:
            observer.on_get([key], batch=False)
        return self._arrays(key)

    def get_many(self, keys: Sequence[str]) -> list[dict[str, np.ndarray]]:
        keys = [check_key(key) for key in keys]
        for observer in self.observers:
            observer.on_get(keys, batch=True)
        return [self._arrays(key) for key in keys]

    def value(self, key: str) -> dict[str, np.ndarray]:
        """The bundle under ``key``, uncharged (for the dry run's own bookkeeping)."""
        return self._arrays(key)

    def _arrays(self, key: str) -> dict[str, np.ndarray]:
        with self._lock:
            stored = self._bundles.get(key)
        if stored is None:
            raise TensorNotFoundError(key, "(the dry run wrote nothing under it)")
        arrays = {}
        for name, (shape, dtype, _) in stored.specs.items():
            if name in stored.values:
                array = stored.values[name].copy()
                array.flags.writeable = stored.scratch
            elif stored.scratch:
                array = np.zeros(shape, dtype)
            else:
                array = np.broadcast_to(np.zeros((), dtype), shape)
            arrays[name] = array
        return arrays


class ShapeRuns:
    """A run store that builds each record with ``trainer.store.runs``' builders and charges it
    (a write ``PutItem``, a read ``GetItem``, the metrics a ``Query``). The run config is
    answered uncharged: a container reads it once (``RunStore`` caches it)."""

    def __init__(self, account: _Account, clock: Callable[[], float] = time.time) -> None:
        self._account = account
        self._clock = clock
        self._items: dict[tuple[str, str], Item] = {}
        self._lock = threading.Lock()

    def _put(self, item: Item) -> None:
        self._account.charges.record_put(self._account.usage, item)
        with self._lock:
            self._items[item[names.RUNS_PK]["S"], item[names.RUNS_SK]["S"]] = item

    def record(self, run_id: str, record: str) -> Item | None:
        """The item of one record, uncharged (for the dry run's own bookkeeping)."""
        with self._lock:
            return self._items.get((run_id, record))

    def create_run(self, run_id: str, config_json: str) -> None:
        json.loads(config_json)
        self._put(runs.config_item(run_id, config_json, runs.timestamp(self._clock())))

    def get_config_json(self, run_id: str) -> str:
        item = self.record(run_id, runs.CONFIG_RECORD)
        if item is None:
            raise EstimateError(f"the dry run has no config for run {run_id!r}")
        return str(item[runs.CONFIG]["S"])

    def put_dataset_info(self, run_id: str, info: Mapping[str, Any]) -> None:
        self._put(runs.dataset_item(run_id, info, runs.timestamp(self._clock())))

    def get_dataset_info(self, run_id: str) -> dict[str, Any]:
        item = self.record(run_id, runs.DATASET_RECORD)
        self._account.charges.record_get(self._account.usage, item)
        if item is None:
            raise EstimateError(f"the dry run has no dataset facts for run {run_id!r}")
        return runs.dataset_info_of(item)

    def set_status(self, run_id: str, status: str, /, **fields: Any) -> None:
        self._put(runs.status_item(run_id, status, fields, runs.timestamp(self._clock())))

    def get_status(self, run_id: str) -> dict[str, Any]:
        raise EstimateError(f"the dry run does not read run {run_id!r}'s status")

    def put_epoch_metrics(
        self, run_id: str, epoch: int, metrics: Mapping[str, float | int | None]
    ) -> None:
        self._put(runs.epoch_item(run_id, epoch, metrics, runs.timestamp(self._clock())))

    def get_epoch_metrics(self, run_id: str, epoch: int) -> dict[str, Any] | None:
        item = self.record(run_id, runs.epoch_record(epoch))
        self._account.charges.record_get(self._account.usage, item)
        return (
            None
            if item is None
            else runs.metrics_row(item) | {runs.CREATED_AT: item[runs.CREATED_AT]["S"]}
        )

    def dataset_created_at(self, run_id: str) -> str | None:
        item = self.record(run_id, runs.DATASET_RECORD)
        self._account.charges.record_get(self._account.usage, item)
        return None if item is None else str(item[runs.CREATED_AT]["S"])

    def list_epoch_metrics(self, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
            found = [
                item
                for (run, record), item in sorted(self._items.items())
                if run == run_id and record.startswith(runs.EPOCH_RECORD_PREFIX)
            ]
        # one Query page: a page holds up to 1 MB, a run's at most 999 records of ~200 bytes
        self._account.charges.record_query(self._account.usage, found)
        return [runs.metrics_row(item) for item in found]

    # --- the model registry: the same records (trainer.store.registry), charged alike ---------

    def _registry_get(self, key: Item) -> Item | None:
        with self._lock:
            item = self._items.get((key[names.RUNS_PK]["S"], key[names.RUNS_SK]["S"]))
        self._account.charges.record_get(self._account.usage, item)
        return item

    def _put_once(self, item: Item) -> Item | None:
        """A conditional put: charged as a write (a failed condition costs one too)."""
        key = (item[names.RUNS_PK]["S"], item[names.RUNS_SK]["S"])
        with self._lock:
            existing = self._items.get(key)
        if existing is None:
            self._put(item)
            return None
        self._account.charges.record_put(self._account.usage, item)
        return existing

    def put_model_version(self, pipeline: str, run_id: str, document: Mapping[str, Any]) -> None:
        self._put_once(registry.model_version_item(pipeline, run_id, document, self._timestamp()))

    def get_model_version(self, pipeline: str, run_id: str) -> dict[str, Any] | None:
        item = self._registry_get(registry.registry_key(pipeline, registry.model_record(run_id)))
        return None if item is None else registry.document_of(item)

    def put_decision(
        self, pipeline: str, run_id: str, document: Mapping[str, Any]
    ) -> dict[str, Any]:
        item = registry.decision_item(pipeline, run_id, document, self._timestamp())
        return registry.document_of(self._put_once(item) or item)

    def get_decision(self, pipeline: str, run_id: str) -> dict[str, Any] | None:
        key = registry.registry_key(pipeline, registry.decision_record(run_id))
        item = self._registry_get(key)
        return None if item is None else registry.document_of(item)

    def get_production(self, pipeline: str) -> dict[str, Any] | None:
        item = self._registry_get(registry.registry_key(pipeline, registry.PRODUCTION_RECORD))
        return None if item is None else registry.document_of(item)

    def put_production(self, pipeline: str, document: Mapping[str, Any], revision: int) -> None:
        self._put(registry.production_item(pipeline, document, revision, self._timestamp()))

    def add_pipeline(self, pipeline: str) -> None:
        self._put_once(registry.pipeline_item(pipeline, self._timestamp()))

    def list_pipelines(self) -> list[str]:
        raise EstimateError("the dry run does not list pipelines")

    def list_registry(self, pipeline: str) -> dict[str, dict[str, Any]]:
        raise EstimateError("the dry run does not list a pipeline's records")

    def get_claim(self, pipeline: str) -> dict[str, Any] | None:
        raise EstimateError("the dry run does not retrain (a pipeline's claim is not a run's)")

    def put_claim(self, pipeline: str, document: Mapping[str, Any], revision: int) -> None:
        raise EstimateError("the dry run does not retrain (a pipeline's claim is not a run's)")

    def _timestamp(self) -> str:
        return runs.timestamp(self._clock())


class ShapeObjects:
    """An object store that serves ``files`` (``s3://`` URI → bytes) and the objects put into
    it (the handlers read back the shards they convert), and charges every request: a GET, a
    ranged GET or a HEAD by the bytes it returns, a PUT by its bytes, a LIST as the PUT-class
    request it is."""

    def __init__(self, account: _Account, *, bucket: str, files: Mapping[str, bytes]) -> None:
        self._account = account
        self.bucket = bucket
        self._files = dict(files)
        self._lock = threading.Lock()

    def uri(self, key: str) -> str:
        return object_uri(self.bucket, key)

    def _data(self, uri: str) -> bytes:
        with self._lock:
            data = self._files.get(uri)
        if data is None:
            raise ObjectNotFoundError(f"no object at {uri}")
        return data

    def get_bytes(self, uri: str) -> bytes:
        data = self._data(uri)
        self._account.charges.object_get(self._account.usage, len(data))
        return data

    def get_range(self, uri: str, start: int, stop: int) -> bytes:
        data = self._data(uri)[start:stop]
        self._account.charges.object_get(self._account.usage, len(data))
        return data

    def size(self, uri: str) -> int:
        data = self._data(uri)
        self._account.charges.object_get(self._account.usage, 0)
        return len(data)

    def list_prefix(self, prefix_uri: str) -> list[tuple[str, int]]:
        self._account.charges.object_put(self._account.usage, 0)  # LIST: a PUT-class request
        with self._lock:
            return sorted(
                (uri, len(data)) for uri, data in self._files.items() if uri.startswith(prefix_uri)
            )

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        self._account.charges.object_put(self._account.usage, len(data))
        uri = self.uri(key)
        with self._lock:
            self._files[uri] = bytes(data)
        return uri


@dataclass(frozen=True)
class ShapeStore(Store):
    """A :class:`~trainer.store.Store` of shapes: what the handlers run on in the dry run."""

    tensors: ShapeTensors
    runs: ShapeRuns
    objects: ShapeObjects

    @classmethod
    def create(
        cls,
        account: _Account,
        *,
        inline_limit: int = INLINE_LIMIT_BYTES,
        bucket: str = DRY_RUN_BUCKET,
        files: Mapping[str, bytes] | None = None,
    ) -> ShapeStore:
        return cls(
            tensors=ShapeTensors(inline_limit=inline_limit, observers=[account]),
            runs=ShapeRuns(account),
            objects=ShapeObjects(account, bucket=bucket, files=files or {}),
        )


# --- the dataset Initialize reads ---------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInput:
    """What Initialize reads in the dry run: ``source`` becomes the config's ``dataset.source``
    (a builtin name, or an ``s3://`` URI of the dry run's bucket), ``objects`` what that bucket
    serves."""

    source: str
    objects: Mapping[str, bytes] = field(default_factory=dict)
    csv_label: bool = True  # False: a CSV file was cut into .npz shards

    @classmethod
    def of(
        cls,
        config: RunConfig,
        *,
        base: Path = Path(),
        bucket: str = DRY_RUN_BUCKET,
        n_train: int | None = None,
        n_features: int | None = None,
        shard_mb: int = DEFAULT_SHARD_MB,
    ) -> DatasetInput:
        """The config's own dataset (builtin, or a local file or folder put where ``stepnet
        start`` uploads it, cut into shards as it cuts them); a stand-in of the given shape
        when ``n_train`` or ``n_features`` is given or the source is in S3 (which the estimate
        does not read)."""
        source = config.dataset.source
        if source.startswith("s3://") and (n_train is None or n_features is None):
            raise EstimateError(
                f"dataset.source is {source}: the estimate reads no S3; pass n_train and n_features"
            )
        try:
            if n_train is None and n_features is None:
                if source in BUILTIN_FILES:
                    return cls(source)
                plan = sources.upload_plan(source, config.dataset.label, base, shard_mb)
                assert plan is not None  # a local source
                objects = {object_uri(bucket, key): data for key, data in plan.objects()}
                return cls(object_uri(bucket, plan.key), objects, csv_label=plan.csv_label)
            if n_train is None or n_features is None:
                n, d = sources.shape_of(source, base)
                n_features = d if n_features is None else n_features
                if n_train is None:
                    n_train = _training_rows(config, n)
        except DatasetError as error:
            raise EstimateError(f"{error}; pass n_train and n_features") from None
        if n_train is None or n_train < 1 or n_features < 1:
            raise EstimateError(
                f"need n_train >= 1 and n_features >= 1, got {n_train}, {n_features}"
            )
        data = stand_in(config, n_train, n_features)
        if source.startswith("s3://") and not source.endswith("/"):
            return cls(source, {source: data})
        name = BUILTIN_FILES.get(source, Path(source.rstrip("/")).name)
        if not name.lower().endswith((".npz", ".csv")):
            name += ".npz"  # a folder or prefix: one stand-in file
        uri = object_uri(bucket, sources.upload_key(data, name))
        return cls(uri, {uri: data})


def _training_rows(config: RunConfig, n: int) -> int:
    """The training rows of a single file of ``n`` rows (the block split of one shard)."""
    return split_blocks(
        (n,), config.block_rows, config.dataset.validation_fraction, config.seed
    ).n_train


def _examples_for(config: RunConfig, n_train: int) -> int:
    """The smallest ``n`` whose split (``trainer.data.blocks.split_blocks``, one shard) leaves
    ``n_train`` training rows or more (whole blocks: at most a block more)."""

    def training(n: int) -> int:
        try:
            return _training_rows(config, n)
        except DatasetError:  # nothing left to train on
            return 0

    fraction = config.dataset.validation_fraction
    n = max(n_train + 1, int(n_train / (1 - fraction)) - 2 * config.block_rows)
    while training(n) < n_train:
        n += 1
    return n


def stand_in(config: RunConfig, n_train: int, n_features: int) -> bytes:
    """A dataset file of the right shape for a config whose data cannot be read: ``n`` examples
    (``n_train`` after the split) of ``n_features`` zeros; classification labels cycle through
    ``model.layers[-1].units`` classes, regression targets are zeros. In the format the source
    names: ``.csv`` (the label column ``dataset.label``, last), else ``.npz``."""
    n = _examples_for(config, n_train)
    k = config.model.layers[-1].units
    if config.dataset.source.lower().endswith(".csv"):
        header = ",".join(
            [*(f"x{j}" for j in range(1, n_features + 1)), config.dataset.label or "y"]
        )
        labels = [str(c) for c in range(k)] if config.is_classification else ["0"]
        rows = ["0," * n_features + label for label in labels]
        body = "\n".join(rows[i % len(rows)] for i in range(n))
        return f"{header}\n{body}\n".encode()
    if config.is_classification:
        y = np.arange(n) % k
    else:
        y = np.zeros(n if k == 1 else (n, k), np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, X=np.zeros((n, n_features), np.float32), y=y)
    return buffer.getvalue()


# --- running the handlers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """One handler invocation of the dry run: its input and the store traffic it caused."""

    function: str
    message: BaseModel
    store: StoreUsage


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch's invocations (``workflow.microbatch_functions`` order)."""

    step: int
    microbatch: int
    rows: int
    invocations: tuple[Invocation, ...]


@dataclass(frozen=True)
class Step:
    """One step: its micro-batches and its Update."""

    step: int
    microbatches: tuple[MicroBatch, ...]
    update: Invocation


@dataclass(frozen=True)
class DryRun:
    """What the handlers did: the run-level invocations once (the shard passes once per group
    of shards), the epoch's evaluation (once per group, then its merge), and per mode the
    epoch's first step and, if there are more, its last (``steps[mode][0]``,
    ``steps[mode][-1]``)."""

    config: RunConfig
    info: dict[str, Any]  # the dataset facts Start recorded
    layout: StepLayout  # the epoch's steps (trainer.training.schedule.step_layout)
    initialize: Invocation
    check_shards: tuple[Invocation, ...]
    prepare_shards: tuple[Invocation, ...]
    start: Invocation
    plan: Invocation
    evaluate_shards: tuple[Invocation, ...]
    evaluate: Invocation
    finalize: Invocation
    # the registry, after Export: the run's model registered, then promoted (a pipeline's first
    # model always is; a refused promotion makes the same calls but the pointer's)
    register: Invocation
    promote: Invocation
    steps: dict[str, tuple[Step, ...]]
    # the segments of shards (``trainer.training.schedule.microbatch_segments``) the epoch's
    # micro-batches read their rows in: per epoch of the run, all its micro-batches together;
    # and epoch 1's first and last micro-batch (those the dry run ran)
    row_segments: tuple[int, ...] = ()
    representative_segments: tuple[int, int] = (0, 0)

    @property
    def groups(self) -> int:
        """The groups of shards each shard pass and each evaluation runs over."""
        return len(self.check_shards)

    @property
    def fixed(self) -> tuple[Invocation, ...]:
        """The run's invocations outside its epochs, in workflow order."""
        return (
            self.initialize,
            *self.check_shards,
            *self.prepare_shards,
            self.start,
            self.finalize,
            self.register,
            self.promote,
        )


Run = Callable[[Store, Any], BaseModel]


def handlers() -> dict[str, Run]:
    """Every workflow function's ``run(store, message)``, from the handler modules the contract
    names (the API's and the prediction functions run outside the workflow, per request)."""
    return {
        logical: importlib.import_module(handler_module(logical)).run
        for logical in FUNCTIONS
        if in_workflow(logical)
    }


def map_item(cursor: Cursor, microbatch: int) -> MicroBatchTask:
    """One item of the Map "Train step", as its ``ItemSelector`` builds it from the cursor."""
    return MicroBatchTask(
        run_id=cursor.run_id,
        epoch=cursor.epoch,
        step=cursor.step,
        version=cursor.version,
        microbatch=microbatch,
        layer=1,
        layers=cursor.layers,
        mode=cursor.mode,
    )


@contextmanager
def _quiet_handlers() -> Iterator[None]:
    """The handlers log each run they initialize, plan and finish; not here (their logger is
    the standard ``logging`` logger of the service name, its level restored after)."""
    logger = logging.getLogger(names.SERVICE_NAME)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class _Driver:
    def __init__(self, store: ShapeStore, account: _Account) -> None:
        self.store = store
        self.account = account
        self.run = handlers()

    def invoke(self, function: str, message: BaseModel) -> tuple[Any, Invocation]:
        self.account.usage = StoreUsage()
        result = self.run[function](self.store, message)
        return result, Invocation(function, message, self.account.usage)

    def train_step(self, cursor: Cursor, schedule: np.ndarray) -> tuple[Step, Cursor]:
        """The Map over the step's micro-batches, then Update; the step and the next cursor."""
        microbatches, losses = [], []
        for index in cursor.microbatches:
            task: BaseModel = map_item(cursor, index)
            invocations = []
            for function in workflow.microbatch_functions(cursor.mode, cursor.layers):
                task, invocation = self.invoke(function, task)
                invocations.append(invocation)
            assert isinstance(task, MicroBatchTask) and task.loss is not None
            losses.append(task.loss)
            rows = int(schedule[cursor.step, index])
            microbatches.append(MicroBatch(cursor.step, index, rows, tuple(invocations)))
        after, update = self.invoke("Update", StepEnd(cursor=cursor, losses=losses))
        return Step(cursor.step, tuple(microbatches), update), after

    def groups(
        self, function: str, messages: Sequence[BaseModel]
    ) -> tuple[list[Any], list[Invocation]]:
        """A Map over groups of shards: each group's invocation, in group order."""
        results, invocations = [], []
        for message in messages:
            result, invocation = self.invoke(function, message)
            results.append(result)
            invocations.append(invocation)
        return results, invocations


def _config_in(config: RunConfig, mode: str) -> RunConfig:
    return parse_config(json.loads(config.to_json()) | {"mode": mode})


def dry_run(
    config: RunConfig,
    dataset: DatasetInput,
    *,
    modes: Sequence[str] = workflow.MODES,
    inline_limit: int = INLINE_LIMIT_BYTES,
    bucket: str = DRY_RUN_BUCKET,
    history_event_budget: int = HISTORY_EVENT_BUDGET,
) -> DryRun:
    """Run ``config``'s handlers on a :class:`ShapeStore` (see the module docstring): Initialize
    on ``dataset``, Plan epoch 1, per mode in ``modes`` the epoch's first and last steps, then
    Evaluate and Finalize. ``inline_limit``: the tensor store's spill threshold; ``bucket``: the
    bucket name the model's URI carries; ``history_event_budget``: for the cursors only."""
    account = _Account()
    store = ShapeStore.create(
        account, inline_limit=inline_limit, bucket=bucket, files=dataset.objects
    )
    driver = _Driver(store, account)
    run_id = config.run_id
    document = json.loads(config.to_json())
    document["dataset"]["source"] = dataset.source
    if not dataset.csv_label:
        document["dataset"].pop("label", None)
    ordered = sorted(modes, key=lambda mode: mode != config.mode)  # the config's own first
    with _quiet_handlers():
        request = InitializeRequest(config=document, execution_name=run_id)
        plan_result, initialize = driver.invoke("Initialize", request)
        assert isinstance(plan_result, RunPlan)
        common = {"run_id": run_id, "config": plan_result.config}
        checks, check_shards = driver.groups(
            "CheckShards", [ShardGroupTask(**common, group=g) for g in plan_result.groups]
        )
        _, prepare_shards = driver.groups(
            "PrepareShards",
            [PrepareTask(**common, group=g, checks=checks) for g in plan_result.groups],
        )
        progress, start_invocation = driver.invoke(
            "Start", StartRequest(run_id=run_id, checks=checks)
        )
        assert isinstance(progress, RunProgress)
        item = store.runs.record(run_id, runs.DATASET_RECORD)
        assert item is not None
        info = runs.dataset_info_of(item)
        layout = step_layout(int(info["n_train"]), config.batch_size, config.workers)
        schedule = layout_sizes(layout, config.workers)
        start = EpochStart(run_id=run_id, epoch=progress.epoch, version=progress.version)
        planned, plan = driver.invoke("Plan", start)
        assert isinstance(planned, Cursor)
        steps: dict[str, tuple[Step, ...]] = {}
        version, loss_sum = start.version, 0.0
        for mode in ordered:
            cursor = planned
            if mode != planned.mode:
                cursor = first_cursor(
                    _config_in(config, mode), start.epoch, start.version, schedule,
                    groups=len(planned.groups), budget=history_event_budget,
                    step_seconds=step_seconds(_config_in(config, mode), int(info["n_features"])),
                )  # fmt: skip
            first, after = driver.train_step(cursor, schedule)
            trained: tuple[Step, ...] = (first,)
            if not after.done:
                last = after
                while last.step < last.steps - 1:
                    last = next_cursor(last, schedule)
                # the weights the first step wrote: a version's keys are those of any other
                last = last.model_copy(update={"version": after.version})
                final, after = driver.train_step(last, schedule)
                trained = (first, final)
            steps[mode] = trained
            if mode == config.mode:
                version, loss_sum = after.version, after.loss_sum
        _, evaluate_shards = driver.groups(
            "EvaluateShards",
            [
                EvaluationTask(run_id=run_id, epoch=start.epoch, version=version, group=g)
                for g in planned.groups
            ],
        )
        end = EpochEnd(run_id=run_id, epoch=start.epoch, version=version, loss_sum=loss_sum)
        evaluated, evaluate = driver.invoke("Evaluate", end)
        assert isinstance(evaluated, RunProgress)
        _record_other_epochs(store, account, config, evaluated, n_steps=schedule.shape[0])
        account.usage = StoreUsage()  # the segments' count reads the dataset, charged to nobody
        row_segments, representative = _segments(store, config, layout, start.epoch)
        _, finalize = driver.invoke("Finalize", FinalizeRequest(run_id=run_id, version=version))
        registered, register = driver.invoke(
            "Register", RegisterRequest(run_id=run_id, version=version)
        )
        assert isinstance(registered, ModelRegistered)
        _, promote = driver.invoke(
            "Promote", PromoteRequest(pipeline=registered.pipeline, run_id=run_id)
        )
    return DryRun(
        config=config,
        info=info,
        layout=layout,
        initialize=initialize,
        check_shards=tuple(check_shards),
        prepare_shards=tuple(prepare_shards),
        start=start_invocation,
        plan=plan,
        evaluate_shards=tuple(evaluate_shards),
        evaluate=evaluate,
        finalize=finalize,
        steps=steps,
        register=register,
        promote=promote,
        row_segments=row_segments,
        representative_segments=representative,
    )


def _segments(
    store: ShapeStore, config: RunConfig, layout: StepLayout, epoch: int
) -> tuple[tuple[int, ...], tuple[int, int]]:
    """How many segments of shards the micro-batches read their rows in: per epoch of the run
    (each epoch's order differs, so do its segments), and epoch ``epoch``'s first and last
    micro-batch."""
    split = dal.load_dataset(store, config.run_id).split(
        config.dataset.validation_fraction, config.seed
    )
    batches = [(s, m) for s, step in enumerate(layout.steps) for m in range(len(step))]

    def count(e: int, step: int, microbatch: int) -> int:
        return len(microbatch_segments(split, config.seed, e, layout, step, microbatch))

    per_epoch = tuple(sum(count(e, s, m) for s, m in batches) for e in range(1, config.epochs + 1))
    return per_epoch, (count(epoch, *batches[0]), count(epoch, *batches[-1]))


def _record_other_epochs(
    store: ShapeStore, account: _Account, config: RunConfig, evaluated: RunProgress, n_steps: int
) -> None:
    """The metrics records of epochs 2.. (what their Evaluate writes), uncharged: Finalize
    reads every epoch's back. Epoch 1's values, each epoch's own number and final version."""
    account.usage = StoreUsage()  # charged to nobody
    row = dict(evaluated.metrics or {})
    for epoch in range(2, config.epochs + 1):
        metrics = EpochMetrics.model_validate(row | {"epoch": epoch, "version": epoch * n_steps})
        dal.save_epoch_metrics(store, config.run_id, metrics)
