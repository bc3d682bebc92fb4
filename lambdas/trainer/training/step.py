"""Training arithmetic shared by the pipeline's handlers and the reference trainer.

Pure functions over numpy arrays and the run config: what the initial state is, how a step's
micro-batch gradients become the next weights, and how an epoch is evaluated. Both ways of training
call exactly these functions, so their weights agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainer.config import RunConfig
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


def evaluate(
    config: RunConfig,
    params: Sequence[LayerParams],
    X: np.ndarray,
    Y: np.ndarray,
    batch_rows: int = 8192,
) -> tuple[float, float | None]:
    """Data loss (no L2) of ``params`` on (X, Y) and, for classification, the accuracy.

    X: (n, d) float32, Y: (n, k) one-hot or targets. Computed in row blocks of ``batch_rows`` to
    bound memory; the loss is the example-weighted mean of the blocks' mean losses.
    """
    n = X.shape[0]
    total_loss = 0.0
    correct = 0
    for start in range(0, n, batch_rows):
        A = predict(list(params), activations(config), X[start : start + batch_rows])
        Yb = Y[start : start + batch_rows]
        total_loss += loss_value(config.loss, A, Yb) * Yb.shape[0]
        if config.is_classification:
            correct += int(np.sum(np.argmax(A, axis=1) == np.argmax(Yb, axis=1)))
    accuracy = correct / n if config.is_classification else None
    return total_loss / n, accuracy
