"""A dense network as a composition of layers: the forward / backward steps and their glue.

Layers are numbered 1..L. With ``A_0 = X`` of shape (n_ex, n_features):

* forward, layer l:  ``Z_l = A_{l-1} @ W_l + b_l``,  ``A_l = g_l(Z_l)``
* output:            ``dZ_L = dL/dZ_L``  (:func:`trainer.nn.losses.output_gradient`)
* backward, layer l: ``dLdW_l = A_{l-1}.T @ dZ_l``, ``dLdb_l = Σ_i dZ_l``,
  ``dZ_{l-1} = (dZ_l @ W_l.T) * g'_{l-1}(A_{l-1})``  (for l >= 2)

The distributed pipeline runs :func:`forward_layer`, ``output_gradient`` and
:func:`backward_layer` one at a time in separate Lambda invocations; the single-process
:func:`microbatch_gradients` calls exactly those functions in the same order, so both produce
bit-identical gradients (given the same inputs, dtypes and BLAS build).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

from trainer.nn._types import Array, LayerTuple
from trainer.nn.activations import activate, derivative_from_output
from trainer.nn.layers import dense_backward, dense_forward
from trainer.nn.losses import loss_value, output_gradient
from trainer.nn.params import LayerParams
from trainer.nn.regularization import l2_gradient


def forward_layer(A_prev: Array, W: Array, b: Array, activation: str) -> Array:
    """Forward one layer: ``A = g(A_prev @ W + b)``.

    Args:
        A_prev: ndarray of shape (n_ex, n_in), ``A_{l-1}`` (``X`` for layer 1).
        W: ndarray of shape (n_in, n_out).
        b: ndarray of shape (n_out,).
        activation: the layer's activation name ``g``.

    Returns:
        A: ndarray of shape (n_ex, n_out), dtype of ``W``.
    """
    return activate(activation, dense_forward(A_prev, W, b))


@overload
def backward_layer(
    dZ: Array, A_prev: Array, W: Array, prev_activation: str
) -> tuple[Array, Array, Array]: ...
@overload
def backward_layer(
    dZ: Array, A_prev: Array, W: Array, prev_activation: None
) -> tuple[Array, Array, None]: ...
def backward_layer(
    dZ: Array, A_prev: Array, W: Array, prev_activation: str | None
) -> tuple[Array, Array, Array | None]:
    """Backward one layer, given ``dZ = dL/dZ_l``.

    Args:
        dZ: ndarray of shape (n_ex, n_out), ``dZ_l``.
        A_prev: ndarray of shape (n_ex, n_in), ``A_{l-1}`` (the layer's forward input).
        W: ndarray of shape (n_in, n_out), ``W_l``.
        prev_activation: ``g_{l-1}``, the activation of the layer below, or None for layer 1
            (whose ``A_prev`` is the input X: no gradient is propagated further).

    Returns:
        ``(dW, db, dZ_prev)``: ``dLdW_l = A_prev.T @ dZ`` (n_in, n_out), ``dLdb_l = Σ_i dZ``
        (n_out,), and ``dZ_{l-1} = (dZ @ W.T) * g'_{l-1}(A_prev)`` (n_ex, n_in), or None when
        ``prev_activation`` is None.
    """
    dW, db, dA_prev = dense_backward(dZ, A_prev, W)
    if prev_activation is None:
        return dW, db, None
    return dW, db, dA_prev * derivative_from_output(prev_activation, A_prev)


def _check_layers(params: Sequence[LayerTuple], activations: Sequence[str]) -> None:
    if len(params) == 0 or len(params) != len(activations):
        raise ValueError(
            f"need one activation per layer and at least one layer; got {len(params)} "
            f"layers and {len(activations)} activations"
        )


def microbatch_gradients(
    params: Sequence[LayerTuple],
    activations: Sequence[str],
    loss: str,
    X: Array,
    Y: Array,
) -> tuple[float, list[LayerParams]]:
    """Mean data loss of one micro-batch and its gradient w.r.t. every layer's ``(W, b)``.

    Runs :func:`forward_layer` for l = 1..L (keeping ``A_0 = X, ..., A_L``), then
    ``loss_value(loss, A_L, Y)`` and ``dZ_L = output_gradient(loss, g_L, A_L, Y)``, then
    :func:`backward_layer` for l = L..1 with ``prev_activation = g_{l-1}`` (None for l = 1).
    No L2 term: it is added at update time (:func:`add_l2`).

    Args:
        params: ``[(W_1, b_1), ..., (W_L, b_L)]``, W_l of shape (n_{l-1}, n_l), b_l (n_l,).
        activations: ``[g_1, ..., g_L]``.
        loss: the loss name (``"cross_entropy"`` needs ``g_L == "softmax"``).
        X: ndarray of shape (n_ex, n_features).
        Y: ndarray of shape (n_ex, n_L), targets (one-hot rows for cross_entropy).

    Returns:
        ``(loss_value, [(dLdW_1, dLdb_1), ..., (dLdW_L, dLdb_L)])`` in layer order, each
        gradient shaped and typed like its parameter.
    """
    _check_layers(params, activations)
    A: list[Array] = [X]
    for (W, b), activation in zip(params, activations, strict=True):
        A.append(forward_layer(A[-1], W, b, activation))
    value = loss_value(loss, A[-1], Y)
    dZ = output_gradient(loss, activations[-1], A[-1], Y)
    grads: list[LayerParams] = []
    for layer in range(len(params), 1, -1):  # layers L..2: propagate dZ to the layer below
        dW, db, dZ = backward_layer(dZ, A[layer - 1], params[layer - 1][0], activations[layer - 2])
        grads.append(LayerParams(dW, db))
    dW, db, _ = backward_layer(dZ, A[0], params[0][0], None)  # layer 1: A_0 is X
    grads.append(LayerParams(dW, db))
    grads.reverse()
    return value, grads


def aggregate_gradients(
    per_worker: Sequence[Sequence[LayerTuple]], sizes: Sequence[int]
) -> list[LayerParams]:
    """Example-weighted mean of the workers' micro-batch gradients.

    ``g = Σ_w (n_w / N) g_w`` with ``N = Σ_w n_w``, for every layer's dW and db. The sum starts
    from worker 0's weighted term and adds the others in the given order; each weight
    ``n_w / N`` is computed as a Python float and cast to the gradient's dtype before
    multiplying, so the result is deterministic for a given order. Since each ``g_w`` is a mean
    over its ``n_w`` examples, ``g`` is the gradient of the mean loss over all N examples.

    Args:
        per_worker: for each worker, ``[(dW_1, db_1), ..., (dW_L, db_L)]``.
        sizes: ``n_w``, the number of examples behind each worker's gradients (all >= 1).

    Returns:
        ``[(dW_1, db_1), ..., (dW_L, db_L)]``.
    """
    if len(per_worker) == 0 or len(per_worker) != len(sizes):
        raise ValueError(
            f"need one size per worker and at least one worker; got {len(per_worker)} "
            f"gradient lists and {len(sizes)} sizes"
        )
    if any(n < 1 for n in sizes):
        raise ValueError(f"every worker size must be >= 1; got {list(sizes)}")
    n_layers = len(per_worker[0])
    if any(len(g) != n_layers for g in per_worker):
        raise ValueError("every worker must report gradients for the same number of layers")
    total = sum(sizes)
    weights = [n / total for n in sizes]

    def weighted_sum(arrays: list[Array]) -> Array:
        acc = arrays[0].dtype.type(weights[0]) * arrays[0]
        for weight, array in zip(weights[1:], arrays[1:], strict=True):
            acc = acc + array.dtype.type(weight) * array
        return acc

    return [
        LayerParams(
            weighted_sum([g[layer][0] for g in per_worker]),
            weighted_sum([g[layer][1] for g in per_worker]),
        )
        for layer in range(n_layers)
    ]


def add_l2(
    grads: Sequence[LayerTuple], params: Sequence[LayerTuple], lam: float
) -> list[LayerParams]:
    """Add the L2 gradient to every weight gradient: ``dLdW_l + λ W_l`` (biases untouched).

    Args:
        grads: ``[(dW_l, db_l)]`` of the data loss.
        params: ``[(W_l, b_l)]``, the same layers.
        lam: λ >= 0; when 0 the gradients are returned unchanged (same arrays).

    Returns:
        ``[(dW_l + λ W_l, db_l)]``, the gradient of data loss + ``l2_penalty(W, λ)``.
    """
    if len(grads) != len(params):
        raise ValueError(f"got gradients for {len(grads)} layers but {len(params)} layers")
    if lam == 0:
        return [LayerParams(dW, db) for dW, db in grads]
    return [
        LayerParams(dW + l2_gradient(W, lam), db)
        for (dW, db), (W, _) in zip(grads, params, strict=True)
    ]


def predict(params: Sequence[LayerTuple], activations: Sequence[str], X: Array) -> Array:
    """Network output ``A_L`` for the input X of shape (n_ex, n_features); shape (n_ex, n_L).

    Runs :func:`forward_layer` for l = 1..L, exactly as :func:`microbatch_gradients` does.
    """
    _check_layers(params, activations)
    A = X
    for (W, b), activation in zip(params, activations, strict=True):
        A = forward_layer(A, W, b, activation)
    return A
