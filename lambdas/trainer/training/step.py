"""Training arithmetic shared by the pipeline's handlers and the reference trainer.

Pure functions over numpy arrays and the run config: what the initial state is, how a step's
micro-batch gradients become the next weights, and how an epoch is evaluated, shard by shard. Both ways of training
call exactly these functions, so their weights agree bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainer.config import RunConfig
from trainer.data.blocks import CHUNK_ROWS, Split, cut_segments, shard_part
from trainer.data.dataset import Dataset
from trainer.data.rows import READ_THREADS, ShardAccess, read_segments
from trainer.nn import (
    LayerParams,
    OptimizerSpec,
    add_l2,
    aggregate_gradients,
    apply_update,
    init_network,
    init_state,
    loss_value,
    predict,
)
from trainer.training.schedule import init_rng

Params = list[LayerParams]
OptState = dict[str, np.ndarray]


def activations(config: RunConfig) -> list[str]:
    return [layer.activation for layer in config.model.layers]


def layer_sizes(config: RunConfig, n_features: int) -> list[int]:
    """``[n_features, units_1, …, units_L]``."""
    return [n_features, *(layer.units for layer in config.model.layers)]


def optimizer_spec(config: RunConfig) -> OptimizerSpec:
    o = config.optimizer
    return OptimizerSpec(
        name=o.name,
        learning_rate=o.learning_rate,
        momentum=o.momentum,
        beta1=o.beta1,
        beta2=o.beta2,
        epsilon=o.epsilon,
    )


def initial_state(config: RunConfig, n_features: int) -> tuple[Params, list[OptState]]:
    """Weights and optimizer state of version 0, drawn from ``init_rng(seed)``."""
    params = init_network(config.model.init, layer_sizes(config, n_features), init_rng(config.seed))
    spec = optimizer_spec(config)
    states = [init_state(spec, layer.as_dict()) for layer in params]
    return params, states


def apply_step(
    config: RunConfig,
    params: Sequence[LayerParams],
    states: Sequence[OptState],
    per_worker: Sequence[Sequence[LayerParams]],
    sizes: Sequence[int],
    version: int,
) -> tuple[Params, list[OptState]]:
    """One optimizer step from the step's micro-batch gradients.

    g = Σ_w (n_w / N) g_w (worker order) + l2·W, then the optimizer's rule with ``version``
    updates already applied. Returns the weights and optimizer state of ``version + 1``.
    """
    grads = add_l2(
        aggregate_gradients([list(g) for g in per_worker], sizes), list(params), config.l2
    )
    spec = optimizer_spec(config)
    new_params: Params = []
    new_states: list[OptState] = []
    for layer, grad, state in zip(params, grads, states, strict=True):
        p, s = apply_update(spec, LayerParams(*layer).as_dict(), grad.as_dict(), state, version)
        new_params.append(LayerParams.from_dict(p))
        new_states.append(s)
    return new_params, new_states


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardEvaluation:
    """One shard's sums for an epoch's metrics: ``Σ loss × rows`` over its chunks of the training
    part (when the train loss is ``final``) and of the validation part, their rows, and the
    validation rows classified right."""

    train_loss: float = 0.0
    train_rows: int = 0
    val_loss: float = 0.0
    val_rows: int = 0
    val_correct: int = 0


def evaluate_shard(
    config: RunConfig,
    dataset: Dataset,
    access: ShardAccess,
    split: Split,
    shard: int,
    params: Sequence[LayerParams],
) -> ShardEvaluation:
    """Evaluate ``params`` on one shard: its rows of each part in row order, in chunks of
    ``CHUNK_ROWS`` rows (the same chunks in the pipeline and the reference, so the same sums).
    The training part is skipped when ``evaluation.train_loss`` is ``running``."""
    parts = ("train", "val") if config.evaluation.train_loss == "final" else ("val",)
    sums: dict[str, list[float]] = {"train": [], "val": []}
    rows = {"train": 0, "val": 0}
    correct = 0
    n_outputs = config.model.layers[-1].units
    acts = activations(config)
    for part in parts:
        for chunk in cut_segments(shard_part(split, part, shard), CHUNK_ROWS):
            # the chunk's byte ranges in flight at once, in order (one shard: shard 0 here)
            X_raw, y_raw = read_segments(
                [access], [(0, lo, hi) for _, lo, hi in chunk], threads=READ_THREADS
            )
            X, Y = dataset.batch(X_raw, y_raw, n_outputs)
            A = predict(list(params), acts, X)
            n = int(X.shape[0])
            sums[part].append(loss_value(config.loss, A, Y) * n)
            rows[part] += n
            if part == "val" and config.is_classification:
                correct += int(np.sum(np.argmax(A, axis=1) == np.argmax(Y, axis=1)))
    return ShardEvaluation(
        train_loss=math.fsum(sums["train"]),
        train_rows=rows["train"],
        val_loss=math.fsum(sums["val"]),
        val_rows=rows["val"],
        val_correct=correct,
    )


def step_loss_sum(loss_sum: float, losses: Sequence[float], sizes: Sequence[int]) -> float:
    """The running ``Σ loss × examples`` after one step's micro-batches (worker order)."""
    if len(losses) != len(sizes):
        raise ValueError(f"{len(losses)} losses for {len(sizes)} micro-batches")
    return loss_sum + math.fsum(loss * n for loss, n in zip(losses, sizes, strict=True))


def epoch_evaluation(
    config: RunConfig, shards: Sequence[ShardEvaluation], split: Split, loss_sum: float
) -> tuple[float, float, float | None]:
    """``(train_loss, val_loss, val_accuracy)`` from every shard's sums (exactly summed, so the
    order of the shards does not matter) and, for a ``running`` train loss, the epoch's
    ``Σ loss × examples``."""
    n_train, n_val = split.n_train, split.n_val
    if sum(s.val_rows for s in shards) != n_val:
        raise ValueError("the shards' validation rows do not add up to the validation part")
    val_loss = math.fsum(s.val_loss for s in shards) / n_val
    if config.evaluation.train_loss == "final":
        if sum(s.train_rows for s in shards) != n_train:
            raise ValueError("the shards' training rows do not add up to the training part")
        train_loss = math.fsum(s.train_loss for s in shards) / n_train
    else:
        train_loss = loss_sum / n_train
    accuracy = sum(s.val_correct for s in shards) / n_val if config.is_classification else None
    return train_loss, val_loss, accuracy
