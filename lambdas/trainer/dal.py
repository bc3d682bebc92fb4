"""The training's data in the store, by key: weights, optimizer state, the dataset, scratch.

The data access layer: every store call a handler makes goes through here, typed, so handlers
read like the algorithm. Weights, optimizer state and the prepared dataset are immutable
(written once, conditionally); activations, gradients, per-layer micro-batches and evaluation
sums are scratch (TTL). The dataset's rows are read from its shards by byte ranges, never copied
whole (docs/data.md).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from inference.pointer import pointer_key
from trainer.config import ConfigError, RunConfig, parse_config
from trainer.contract.names import S3_RUNS_PREFIX
from trainer.data.blocks import Split
from trainer.data.dataset import Dataset, PreparedShard
from trainer.data.errors import DatasetError
from trainer.data.rows import READ_THREADS, Fetch, RangeShard, read_segments
from trainer.data.sources import (
    BUILTIN_FILES,
    Listing,
    ShardObject,
    check_remote,
    is_prefix,
    prefix_shards,
    read_builtin,
)
from trainer.messages import Cursor, EpochMetrics, EvaluationTask, MicroBatchTask
from trainer.nn.params import LayerParams, flatten, unflatten
from trainer.registry.records import Decision, ModelVersion, Production
from trainer.store import (
    ObjectNotFoundError,
    RunNotFoundError,
    Store,
    TensorNotFoundError,
    keys,
    registry,
)
from trainer.store.runs import FAILED, RUNNING, SUCCEEDED, canonical_json, trimmed_cause
from trainer.training import exports
from trainer.training.cursor import training_attempt
from trainer.training.divergence import DIVERGENCE_ERROR, Divergence
from trainer.training.schedule import microbatch_segments, step_layout
from trainer.training.step import OptState, Params

LOSS_SUM = "loss_sum"  # in an optimizer bundle, beside the layers' l<k>_ arrays
GRADIENT_PREFIX = "d"  # gradient bundles name their arrays dW, db (fused: dW1, db1, …)


def run_config(store: Store, run_id: str) -> RunConfig:
    """The run's validated config (the store caches the immutable record)."""
    return parse_config(store.runs.get_config_json(run_id))


def dataset_info(store: Store, run_id: str) -> dict[str, Any]:
    return store.runs.get_dataset_info(run_id)


def load_params(store: Store, run_id: str, version: int, layers: int) -> Params:
    """Weights ``version``: every layer's, one bundle (``W1``, ``b1``, …)."""
    return unflatten(store.tensors.get(keys.weights_key(run_id, version)), layers)


def load_layer(store: Store, run_id: str, version: int, layer: int) -> LayerParams:
    """Layer ``layer`` of weights ``version`` (read with the others: one bundle)."""
    bundle = store.tensors.get(keys.weights_key(run_id, version))
    return LayerParams(bundle[f"W{layer}"], bundle[f"b{layer}"])


def save_params(store: Store, run_id: str, version: int, params: Params) -> None:
    """Weights ``version``, every layer in one bundle: one write per version."""
    store.tensors.put(keys.weights_key(run_id, version), flatten(params))


def _layer_prefix(layer: int) -> str:
    return f"l{layer}_"


def load_optimizer(store: Store, run_id: str, version: int, layers: int) -> list[OptState]:
    """The optimizer state that goes with weights ``version``, per layer (``m_W``, …), read
    from its one bundle (``l1_m_W``, …)."""
    bundle = store.tensors.get(keys.optimizer_key(run_id, version))
    states: list[OptState] = []
    for layer in range(1, layers + 1):
        prefix = _layer_prefix(layer)
        states.append(
            {k.removeprefix(prefix): a for k, a in bundle.items() if k.startswith(prefix)}
        )
    return states


def save_optimizer(
    store: Store, run_id: str, version: int, moments: list[OptState], loss_sum: float = 0.0
) -> None:
    """Every layer's optimizer state in one bundle (an optimizer without state, sgd, still
    gets one, so every version is complete): one write per version, the last of a step's. It
    also keeps ``loss_sum``, the epoch's ``Σ loss × examples`` up to this version, from which a
    resumed run continues the epoch (:func:`load_loss_sum`)."""
    bundle = {
        f"{_layer_prefix(layer)}{name}": array
        for layer, moment in enumerate(moments, start=1)
        for name, array in moment.items()
    }
    bundle[LOSS_SUM] = np.asarray(loss_sum, dtype=np.float64)
    store.tensors.put(keys.optimizer_key(run_id, version), bundle)


def load_loss_sum(store: Store, run_id: str, version: int) -> float:
    """The epoch's ``Σ loss × examples`` when weights ``version`` was written."""
    return float(store.tensors.get(keys.optimizer_key(run_id, version))[LOSS_SUM])


def has_version(store: Store, run_id: str, version: int) -> bool:
    """Whether weights ``version`` is complete: its optimizer bundle, written after the
    weights, is stored."""
    try:
        store.tensors.get(keys.optimizer_key(run_id, version))
    except TensorNotFoundError:
        return False
    return True


# --- the dataset: its source, its shards, the prepared dataset -----------------------------------


def list_source(store: Store, source: str) -> Listing:
    """The shards of ``dataset.source``: the builtin file, one S3 object, or every shard under
    an S3 prefix (``trainer.data.sources``)."""
    check_remote(source)
    if source in BUILTIN_FILES:
        data, _ = read_builtin(source)
        return Listing(source, (ShardObject(source, len(data)),), single_file=True)
    try:
        if is_prefix(source):
            shards = prefix_shards(source, store.objects.list_prefix(source))
            return Listing(source, shards, single_file=False)
        return Listing(source, (ShardObject(source, store.objects.size(source)),), True)
    except ObjectNotFoundError as error:
        raise DatasetError(f"dataset.source: cannot read {source}: {error}") from None


def read_shard(store: Store, shard: ShardObject) -> bytes:
    """A shard's bytes, whole."""
    if shard.uri in BUILTIN_FILES:
        return read_builtin(shard.uri)[0]
    try:
        return store.objects.get_bytes(shard.uri)
    except ObjectNotFoundError as error:  # a readable cause for the Step Functions console
        raise DatasetError(f"dataset: shard {shard.uri}: cannot read it: {error}") from None


def save_shard_file(store: Store, run_id: str, shard: int, data: bytes) -> str:
    """A converted shard (read layout), under the run's prefix; returns its URI. Deterministic
    bytes, so a retried write leaves the same object."""
    return store.objects.put_bytes(f"{S3_RUNS_PREFIX}{run_id}/data/shard-{shard:05d}.npz", data)


def save_prepared_shard(store: Store, run_id: str, shard: int, prepared: PreparedShard) -> None:
    store.tensors.put(keys.shard_key(run_id, shard), prepared.as_bundle())


def load_prepared_shards(store: Store, run_id: str, shards: int) -> list[PreparedShard]:
    bundles = store.tensors.get_many([keys.shard_key(run_id, s) for s in range(shards)])
    return [PreparedShard.from_bundle(bundle) for bundle in bundles]


def load_dataset(store: Store, run_id: str) -> Dataset:
    """The prepared dataset (immutable: the store caches its bundle)."""
    return Dataset.from_bundle(store.tensors.get(keys.dataset_key(run_id)))


def shard_readers(store: Store, dataset: Dataset) -> list[RangeShard]:
    """Each shard's rows, read by byte ranges of its object."""
    schema = dataset.schema

    def fetcher(uri: str) -> Fetch:
        return lambda start, stop: store.objects.get_range(uri, start, stop)

    return [
        RangeShard(
            fetch=fetcher(shard.uri),
            x_offset=shard.x_offset,
            y_offset=shard.y_offset,
            n_features=schema.n_features,
            x_dtype=schema.x_dtype,
            y_dtype=schema.y_dtype,
            y_columns=schema.y_columns,
        )
        for shard in dataset.shards
    ]


def load_microbatch(
    store: Store, config: RunConfig, dataset: Dataset, task: MicroBatchTask
) -> tuple[np.ndarray, np.ndarray]:
    """The micro-batch's ``X`` (standardized) and ``Y``, read straight from the shards: its rows
    follow from the seed, the epoch, the step and the micro-batch (no schedule is stored)."""
    split = dataset.split(config.dataset.validation_fraction, config.seed)
    layout = step_layout(split.n_train, config.batch_size, config.workers)
    segments = microbatch_segments(
        split, config.seed, task.epoch, layout, task.step, task.microbatch
    )
    X, y = read_segments(shard_readers(store, dataset), segments, threads=READ_THREADS)
    return dataset.batch(X, y, config.model.layers[-1].units)


def save_batch(store: Store, task: MicroBatchTask, X: np.ndarray, Y: np.ndarray) -> None:
    """Per-layer mode: the micro-batch, as read by Forward (layer 1), for Loss and Backward."""
    key = keys.batch_key(task.run_id, task.epoch, task.step, task.microbatch)
    store.tensors.put(key, {"X": X, "Y": Y}, immutable=False)


def load_batch(store: Store, task: MicroBatchTask) -> dict[str, np.ndarray]:
    return store.tensors.get(keys.batch_key(task.run_id, task.epoch, task.step, task.microbatch))


def save_evaluation(store: Store, task: EvaluationTask, bundle: dict[str, np.ndarray]) -> str:
    key = keys.evaluation_key(task.run_id, task.epoch, task.group)
    store.tensors.put(key, bundle, immutable=False)
    return key


def load_evaluations(
    store: Store, run_id: str, epoch: int, groups: int
) -> list[dict[str, np.ndarray]]:
    return store.tensors.get_many([keys.evaluation_key(run_id, epoch, g) for g in range(groups)])


def epoch_metrics(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's evaluated epochs, in order (rows of ``metrics.json``)."""
    return store.runs.list_epoch_metrics(run_id)


def save_epoch_metrics(store: Store, run_id: str, metrics: EpochMetrics) -> None:
    store.runs.put_epoch_metrics(run_id, metrics.epoch, metrics.row())


def create_run(store: Store, config: RunConfig) -> None:
    """Record the run's config (idempotent; another config under the same id is refused)."""
    store.runs.create_run(config.run_id, config.to_json())


def start_run(store: Store, config: RunConfig, dataset: Dataset, split: Split) -> None:
    """Record the prepared dataset and its facts and mark the run RUNNING (idempotent)."""
    store.tensors.put(keys.dataset_key(config.run_id), dataset.as_bundle())
    store.runs.put_dataset_info(config.run_id, dataset.facts(split, config.model.layers[-1].units))
    store.runs.set_status(config.run_id, RUNNING)


def resume_run(store: Store, run_id: str, attempt: int, version: int) -> None:
    """Mark the run RUNNING again: its ``attempt``-th resume, from weights ``version``."""
    store.runs.set_status(run_id, RUNNING, attempt=attempt, resumed_from=version)


def finish_run(
    store: Store, run_id: str, model_uri: str, diverged: Divergence | None = None
) -> None:
    """SUCCEEDED with the model's folder; a diverged run's last good model leaves it FAILED, with
    the divergence (the same fields :func:`fail_run` wrote) and the model's folder."""
    if diverged is None:
        store.runs.set_status(run_id, SUCCEEDED, model_uri=model_uri)
    else:
        fields = _resume_fields(store, run_id) | divergence_fields(diverged)
        store.runs.set_status(run_id, FAILED, **fields, model_uri=model_uri)


def divergence_fields(diverged: Divergence) -> dict[str, Any]:
    """The status fields of a diverged run: the error Lambda reported, its readable cause and
    where it diverged."""
    return {
        "error": DIVERGENCE_ERROR,
        "cause": trimmed_cause(f"{DIVERGENCE_ERROR}: {diverged.message()}"),
        "diverged": diverged.document(),
    }


# The status fields a resume wrote (resume_run) that a failure keeps: which execution is the
# run's latest (stepnet.client.latest_execution reads ``attempt``).
RESUME_FIELDS = ("attempt", "resumed_from")


def _resume_fields(store: Store, run_id: str) -> dict[str, Any]:
    try:
        status = store.runs.get_status(run_id)
    except RunNotFoundError:
        return {}
    return {name: status[name] for name in RESUME_FIELDS if name in status}


def failed_run(store: Store, execution_name: str, execution_input: object) -> str | None:
    """The run a failed Training execution trained, if it recorded one: a resume's run
    (``{"resume": {"run_id", "attempt"}}``, an execution named by ``resume_name``), or the run
    the execution is named after whose config record is the one its input (the run config)
    makes, as PrepareShards would have written it. None for a run refused before anything of
    it was written, and for another run of the same id (a different config, which
    PrepareShards refuses): neither is this execution's."""
    document = execution_input if isinstance(execution_input, dict) else {}
    resume = document.get("resume")
    run_id = resume.get("run_id") if isinstance(resume, dict) else execution_name
    if not isinstance(run_id, str) or training_attempt(run_id, execution_name) is None:
        return None
    try:
        stored = store.runs.get_config_json(run_id)
    except RunNotFoundError:
        return None
    if resume is not None:
        return run_id
    try:
        config = parse_config({"run_id": run_id} | document)
    except ConfigError:
        return None
    if canonical_json(json.loads(stored)) != canonical_json(json.loads(config.to_json())):
        return None
    return run_id


def fail_run(
    store: Store, run_id: str, error: str, cause: str, diverged: Divergence | None = None
) -> None:
    """Mark the run FAILED with ``error`` (the Step Functions error name) and ``cause``
    (readable, trimmed to ``MAX_CAUSE_CHARS``), or with its divergence, keeping the fields of
    its latest resume. Safe to run twice (the same record again)."""
    fields = _resume_fields(store, run_id)
    if diverged is not None:
        fields |= divergence_fields(diverged)
    else:
        fields |= {"error": error, "cause": trimmed_cause(cause)}
    store.runs.set_status(run_id, FAILED, **fields)


def load_activation(store: Store, task: MicroBatchTask, layer: int) -> np.ndarray:
    return store.tensors.get(
        keys.activation_key(task.run_id, task.version, task.microbatch, layer)
    )["A"]


def load_layer_input(store: Store, task: MicroBatchTask, layer: int) -> np.ndarray:
    """A_{layer-1}: the micro-batch's X for layer 1 (as Forward stored it), else the layer
    below's activation."""
    if layer == 1:
        return load_batch(store, task)["X"]
    return load_activation(store, task, layer - 1)


def save_activation(store: Store, task: MicroBatchTask, layer: int, A: np.ndarray) -> str:
    key = keys.activation_key(task.run_id, task.version, task.microbatch, layer)
    store.tensors.put(key, {"A": A}, immutable=False)
    return key


def save_output_gradient(store: Store, task: MicroBatchTask, layer: int, dZ: np.ndarray) -> str:
    key = keys.output_grad_key(task.run_id, task.version, task.microbatch, layer)
    store.tensors.put(key, {"dZ": dZ}, immutable=False)
    return key


def load_output_gradient(store: Store, task: MicroBatchTask, layer: int) -> np.ndarray:
    return store.tensors.get(
        keys.output_grad_key(task.run_id, task.version, task.microbatch, layer)
    )["dZ"]


def save_gradient(store: Store, task: MicroBatchTask, layer: int, grad: LayerParams) -> str:
    key = keys.gradient_key(task.run_id, task.version, task.microbatch, layer)
    store.tensors.put(key, grad.as_dict(GRADIENT_PREFIX), immutable=False)
    return key


def save_network_gradients(store: Store, task: MicroBatchTask, grads: list[LayerParams]) -> str:
    """Fused mode: every layer's gradients of one micro-batch in one bundle (one write)."""
    key = keys.gradients_key(task.run_id, task.version, task.microbatch)
    store.tensors.put(key, flatten(grads, GRADIENT_PREFIX), immutable=False)
    return key


def load_gradients(store: Store, cursor: Cursor, n_microbatches: int) -> list[list[LayerParams]]:
    """The step's gradients, ``[micro-batch][layer] -> (dW, db)``, in worker order: one bundle
    per micro-batch in fused mode, one per layer and micro-batch in per-layer mode."""
    if cursor.mode == "fused":
        bundles = store.tensors.get_many(
            [keys.gradients_key(cursor.run_id, cursor.version, m) for m in range(n_microbatches)]
        )
        return [unflatten(bundle, cursor.layers, GRADIENT_PREFIX) for bundle in bundles]
    wanted = [
        keys.gradient_key(cursor.run_id, cursor.version, microbatch, layer)
        for microbatch in range(n_microbatches)
        for layer in range(1, cursor.layers + 1)
    ]
    grads = [LayerParams.from_dict(b, GRADIENT_PREFIX) for b in store.tensors.get_many(wanted)]
    return [grads[m * cursor.layers : (m + 1) * cursor.layers] for m in range(n_microbatches)]


def export_model(
    store: Store, config: RunConfig, version: int, diverged: Divergence | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Write model.npz, model.json and metrics.json under ``runs/<run_id>/model/`` (a diverged
    run's last good ``version``, marked in model.json).

    Returns the folder's s3:// URI and the per-epoch metrics.
    """
    dataset = load_dataset(store, config.run_id)
    params = load_params(store, config.run_id, version, config.n_layers)
    metrics = epoch_metrics(store, config.run_id)
    prefix = model_prefix(config.run_id)
    store.objects.put_bytes(prefix + exports.MODEL_NPZ, exports.model_npz_bytes(params))
    document = exports.model_document(
        config,
        mean=dataset.mean.tolist(),
        std=dataset.std.tolist(),
        classes=dataset.classes,
        version=version,
        diverged=None if diverged is None else diverged.document(),
    )
    store.objects.put_bytes(prefix + exports.MODEL_JSON, exports.json_bytes(document))
    document = exports.metrics_document(config.run_id, metrics)
    store.objects.put_bytes(prefix + exports.METRICS_JSON, exports.json_bytes(document))
    return store.objects.uri(prefix), metrics


def model_prefix(run_id: str) -> str:
    return f"{S3_RUNS_PREFIX}{run_id}/model/"


# --- the model registry (trainer.registry; records: trainer.store.registry) -------------------


def model_version(store: Store, pipeline: str, run_id: str) -> ModelVersion | None:
    document = store.runs.get_model_version(pipeline, run_id)
    return None if document is None else ModelVersion.from_document(document)


def save_model_version(store: Store, model: ModelVersion) -> ModelVersion:
    """Register ``model`` in its pipeline (write-once) and the pipeline in the index (once)."""
    store.runs.put_model_version(model.pipeline, model.run_id, model.document())
    store.runs.add_pipeline(model.pipeline)
    return model


def production(store: Store, pipeline: str) -> Production | None:
    document = store.runs.get_production(pipeline)
    return None if document is None else Production.from_document(document)


def save_production(store: Store, production: Production) -> None:
    """Write ``production`` if the record is still at the revision before it, else
    ``trainer.store.registry.ProductionChangedError``."""
    store.runs.put_production(production.pipeline, production.document(), production.revision)


def decision(store: Store, pipeline: str, run_id: str) -> Decision | None:
    document = store.runs.get_decision(pipeline, run_id)
    return None if document is None else Decision.from_document(document)


def save_decision(store: Store, decision: Decision) -> Decision:
    """Record ``decision`` (write-once): returns the one recorded first."""
    stored = store.runs.put_decision(decision.pipeline, decision.run_id, decision.document())
    return Decision.from_document(stored)


def write_pointer(store: Store, production: Production) -> str:
    """``models/<pipeline>/production.json`` (``inference.pointer``) for ``production``."""
    key = pointer_key(production.pipeline)
    store.objects.put_bytes(key, production.pointer_json(), "application/json")
    return key


def registry_records(
    store: Store, pipeline: str
) -> tuple[list[ModelVersion], dict[str, Decision], Production | None]:
    """A pipeline's model versions (oldest first), decisions by run id, and production."""
    records = store.runs.list_registry(pipeline)
    models = [
        ModelVersion.from_document(document)
        for record, document in records.items()
        if record.startswith(registry.MODEL_RECORD_PREFIX)
    ]
    decisions = {
        record.removeprefix(registry.DECISION_RECORD_PREFIX): Decision.from_document(document)
        for record, document in records.items()
        if record.startswith(registry.DECISION_RECORD_PREFIX)
    }
    document = records.get(registry.PRODUCTION_RECORD)
    served = None if document is None else Production.from_document(document)
    return sorted(models, key=lambda m: (m.created_at, m.run_id)), decisions, served


def pipelines(store: Store) -> list[str]:
    return store.runs.list_pipelines()
