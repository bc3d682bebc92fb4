"""The single-process reference trainer: the pipeline's schedule and math, in memory, no AWS.

``stepnet reference CONFIG --out DIR`` runs it. It calls the very functions the handlers call
(``trainer.training``, ``trainer.nn``, ``trainer.training.schedule``), so the pipeline's weights
must equal its weights step for step; tests assert it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepnet.sources import read_local
from trainer.config import RunConfig
from trainer.data.prepare import PreparedData, prepare
from trainer.data.readers import read_dataset
from trainer.nn import microbatch_gradients
from trainer.training import exports
from trainer.training.schedule import epoch_order, step_layout
from trainer.training.step import Params, activations, apply_step, evaluate, initial_state

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainedModel:
    """What a training produced: final weights, the model document and per-epoch metrics."""

    params: Params
    model: dict[str, Any]
    metrics: list[dict[str, Any]]
    version: int


def prepare_dataset(config: RunConfig) -> PreparedData:
    """Read (builtin or local file), check, split and standardize the config's dataset."""
    data, name = read_local(config.dataset.source)
    X, y = read_dataset(data, name, config.dataset.label)
    return prepare(
        X,
        y,
        classification=config.is_classification,
        n_outputs=config.model.layers[-1].units,
        validation_fraction=config.dataset.validation_fraction,
        seed=config.seed,
    )


def train(
    config: RunConfig,
    data: PreparedData | None = None,
    on_epoch: EpochCallback | None = None,
    epochs: int | None = None,
) -> TrainedModel:
    """Train ``config`` in memory on the pipeline's schedule; ``epochs`` may stop early."""
    data = data if data is not None else prepare_dataset(config)
    X, Y = data.X_train, data.Y_train
    params, states = initial_state(config, X.shape[1])
    acts = activations(config)
    layout = step_layout(len(X), config.batch_size, config.workers)
    version = 0
    metrics: list[dict[str, Any]] = []
    for epoch in range(1, (epochs or config.epochs) + 1):
        order = epoch_order(len(X), config.seed, epoch)
        for slices in layout.steps:
            per_worker, sizes = [], []
            for start, stop in slices:
                rows = order[start:stop]
                _, grads = microbatch_gradients(params, acts, config.loss, X[rows], Y[rows])
                per_worker.append(grads)
                sizes.append(stop - start)
            params, states = apply_step(config, params, states, per_worker, sizes, version)
            version += 1
        train_loss, _ = evaluate(config, params, X, Y)
        val_loss, val_accuracy = evaluate(config, params, data.X_val, data.Y_val)
        row = exports.epoch_metrics(epoch, train_loss, val_loss, val_accuracy)
        metrics.append(row)
        if on_epoch is not None:
            on_epoch(row)
    model = exports.model_document(
        config,
        mean=data.mean.tolist(),  # (d,) float64 as Python floats: the same JSON numbers
        std=data.std.tolist(),
        classes=data.classes,
        version=version,
    )
    return TrainedModel(params=params, model=model, metrics=metrics, version=version)


def write_outputs(out_dir: Path, trained: TrainedModel, run_id: str) -> None:
    """``model.npz``, ``model.json`` and ``metrics.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / exports.MODEL_NPZ).write_bytes(exports.model_npz_bytes(trained.params))
    (out_dir / exports.MODEL_JSON).write_bytes(exports.json_bytes(trained.model))
    document = exports.metrics_document(run_id, trained.metrics)
    (out_dir / exports.METRICS_JSON).write_bytes(exports.json_bytes(document))
