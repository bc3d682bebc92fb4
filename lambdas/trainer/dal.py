"""The training's data in the store, by key: weights, optimizer state, data, schedules, scratch.

The data access layer: every store call a handler makes goes through here, typed, so handlers
read like the algorithm. Weights, optimizer state, prepared data and schedules are immutable
(written once, conditionally); activations, gradients and micro-batches are scratch (TTL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from inference.pointer import pointer_key
from trainer.config import RunConfig, parse_config
from trainer.contract.names import S3_RUNS_PREFIX
from trainer.data.prepare import PreparedData
from trainer.messages import Cursor, EpochMetrics, MicroBatchTask
from trainer.nn.params import LayerParams, flatten, unflatten
from trainer.registry.records import Decision, ModelVersion, Production
from trainer.store import Store, keys, registry
from trainer.training import exports
from trainer.training.schedule import StepLayout
from trainer.training.step import OptState, Params

GRADIENT_PREFIX = "d"  # gradient bundles name their arrays dW, db (fused: dW1, db1, …)


def run_config(store: Store, run_id: str) -> RunConfig:
    """The run's validated config (the store caches the immutable record)."""
    return parse_config(store.runs.get_config_json(run_id))


def dataset_info(store: Store, run_id: str) -> dict[str, Any]:
    return store.runs.get_dataset_info(run_id)


def load_params(store: Store, run_id: str, version: int, layers: int) -> Params:
    bundles = store.tensors.get_many(
        [keys.weights_key(run_id, version, layer) for layer in range(1, layers + 1)]
    )
    return [LayerParams.from_dict(bundle) for bundle in bundles]


def load_layer(store: Store, run_id: str, version: int, layer: int) -> LayerParams:
    return LayerParams.from_dict(store.tensors.get(keys.weights_key(run_id, version, layer)))


def save_params(store: Store, run_id: str, version: int, params: Params) -> None:
    for layer, weights in enumerate(params, start=1):
        store.tensors.put(keys.weights_key(run_id, version, layer), weights.as_dict())


def load_optimizer(store: Store, run_id: str, version: int, layers: int) -> list[OptState]:
    return store.tensors.get_many(
        [keys.optimizer_key(run_id, version, layer) for layer in range(1, layers + 1)]
    )


def save_optimizer(store: Store, run_id: str, version: int, moments: list[OptState]) -> None:
    for layer, moment in enumerate(moments, start=1):
        # an optimizer without state (sgd) still gets an item, so every version is complete
        store.tensors.put(keys.optimizer_key(run_id, version, layer), moment)


def save_schedule(store: Store, run_id: str, epoch: int, sizes: np.ndarray) -> None:
    """``sizes``: int64 (steps, workers), examples per micro-batch (0 where a short last step has
    fewer micro-batches)."""
    store.tensors.put(keys.schedule_key(run_id, epoch), {"sizes": sizes})


def load_schedule(store: Store, run_id: str, epoch: int) -> np.ndarray:
    return store.tensors.get(keys.schedule_key(run_id, epoch))["sizes"]


def microbatch_sizes(schedule: np.ndarray, step: int) -> list[int]:
    return [int(n) for n in schedule[step] if n > 0]


def save_data(store: Store, run_id: str, part: str, X: np.ndarray, Y: np.ndarray) -> None:
    store.tensors.put(keys.data_key(run_id, part), {"X": X, "Y": Y})


def load_data(store: Store, run_id: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    bundle = store.tensors.get(keys.data_key(run_id, part))
    return bundle["X"], bundle["Y"]


def epoch_metrics(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The run's evaluated epochs, in order (rows of ``metrics.json``)."""
    return store.runs.list_epoch_metrics(run_id)


def save_epoch_metrics(store: Store, run_id: str, metrics: EpochMetrics) -> None:
    store.runs.put_epoch_metrics(run_id, metrics.epoch, metrics.row())


def create_run(store: Store, config: RunConfig, prepared: PreparedData) -> None:
    """Record the run, its prepared data and dataset facts (each write is idempotent)."""
    store.runs.create_run(config.run_id, config.to_json())
    save_data(store, config.run_id, "train", prepared.X_train, prepared.Y_train)
    save_data(store, config.run_id, "val", prepared.X_val, prepared.Y_val)
    store.runs.put_dataset_info(
        config.run_id,
        {
            "n_train": int(prepared.X_train.shape[0]),
            "n_val": int(prepared.X_val.shape[0]),
            "n_features": int(prepared.X_train.shape[1]),
            "n_outputs": int(prepared.Y_train.shape[1]),
            "classes": prepared.classes,
            "mean": [float(m) for m in prepared.mean],
            "std": [float(s) for s in prepared.std],
        },
    )
    store.runs.set_status(config.run_id, "RUNNING")


def finish_run(store: Store, run_id: str, model_uri: str) -> None:
    store.runs.set_status(run_id, "SUCCEEDED", model_uri=model_uri)


def save_microbatches(
    store: Store,
    run_id: str,
    epoch: int,
    X: np.ndarray,
    Y: np.ndarray,
    order: np.ndarray,
    layout: StepLayout,
) -> np.ndarray:
    """Store every micro-batch of the epoch (scratch) and its schedule; return the schedule,
    int64 (steps, workers) examples per micro-batch."""
    workers = max(len(step) for step in layout.steps)
    schedule = np.zeros((layout.n_steps, workers), dtype=np.int64)
    items = []
    for step, slices in enumerate(layout.steps):
        for microbatch, (start, stop) in enumerate(slices):
            rows = order[start:stop]
            schedule[step, microbatch] = stop - start
            items.append(
                (keys.batch_key(run_id, epoch, step, microbatch), {"X": X[rows], "Y": Y[rows]})
            )
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda item: store.tensors.put(item[0], item[1], immutable=False), items))
    save_schedule(store, run_id, epoch, schedule)
    return schedule


def load_microbatch(store: Store, task: MicroBatchTask) -> dict[str, np.ndarray]:
    return store.tensors.get(keys.batch_key(task.run_id, task.epoch, task.step, task.microbatch))


def load_activation(store: Store, task: MicroBatchTask, layer: int) -> np.ndarray:
    return store.tensors.get(
        keys.activation_key(task.run_id, task.version, task.microbatch, layer)
    )["A"]


def load_layer_input(store: Store, task: MicroBatchTask, layer: int) -> np.ndarray:
    """A_{layer-1}: the micro-batch's X for layer 1, else the layer below's activation."""
    if layer == 1:
        return load_microbatch(store, task)["X"]
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


def export_model(store: Store, config: RunConfig, version: int) -> tuple[str, list[dict[str, Any]]]:
    """Write model.npz, model.json and metrics.json under ``runs/<run_id>/model/``.

    Returns the folder's s3:// URI and the per-epoch metrics.
    """
    info = dataset_info(store, config.run_id)
    params = load_params(store, config.run_id, version, config.n_layers)
    metrics = epoch_metrics(store, config.run_id)
    prefix = model_prefix(config.run_id)
    store.objects.put_bytes(prefix + exports.MODEL_NPZ, exports.model_npz_bytes(params))
    document = exports.model_document(
        config, mean=info["mean"], std=info["std"], classes=info["classes"], version=version
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
