"""Loss functions (mean over the micro-batch) and their gradient w.r.t. the last pre-activation.

With ``A = A_L`` the network output and ``Y`` the targets, both ndarrays of shape (n, k):

* ``cross_entropy``: ``L = -(1/n) Σ_i Σ_k Y_ik log(max(A_ik, eps))`` with ``Y`` one-hot (float).
  Used with a softmax last layer only; fused with the softmax Jacobian the gradient w.r.t. the
  last pre-activation ``Z_L`` is simply ``dZ = (A - Y) / n``.
* ``mse``: ``L = (1/(n k)) Σ_i Σ_k (A_ik - Y_ik)²``, so
  ``dA = 2 (A - Y) / (n k)`` and ``dZ = dA * g'(Z_L)`` with ``g'`` taken from the output ``A``
  (see :func:`trainer.nn.activations.derivative_from_output`). Not allowed with softmax.
"""

from __future__ import annotations

import numpy as np

from trainer.nn._types import Array
from trainer.nn.activations import derivative_from_output

LOSSES: tuple[str, ...] = ("cross_entropy", "mse")

#: Probabilities are clipped to at least EPS before the log, so log(0) never occurs.
EPS = 1e-12


def _check(name: str, A: Array, Y: Array) -> None:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")
    if A.ndim != 2 or A.shape != Y.shape:
        raise ValueError(
            f"A and Y must both have shape (n_ex, n_out); got A {A.shape} and Y {Y.shape}"
        )
    if A.shape[0] == 0:
        raise ValueError("the micro-batch is empty (n_ex == 0)")


def loss_value(name: str, A: Array, Y: Array) -> float:
    """Mean loss of the micro-batch, computed in float64 and returned as a Python float.

    Args:
        name: one of :data:`LOSSES`.
        A: ndarray of shape (n, k), the network output ``A_L``.
        Y: ndarray of shape (n, k), the targets (one-hot float rows for cross_entropy).

    Returns:
        cross_entropy ``-(1/n) Σ_i Σ_k Y_ik log(max(A_ik, EPS))`` or
        mse ``(1/(n k)) Σ_i Σ_k (A_ik - Y_ik)²``.

    Raises:
        ValueError: unknown loss, or A and Y shapes differ / are not 2-D.
    """
    _check(name, A, Y)
    A64 = np.asarray(A, dtype=np.float64)
    Y64 = np.asarray(Y, dtype=np.float64)
    if name == "cross_entropy":
        n = A64.shape[0]
        return float(-np.sum(Y64 * np.log(np.maximum(A64, EPS))) / n)
    return float(np.mean((A64 - Y64) ** 2))


def output_gradient(name: str, activation: str, A: Array, Y: Array) -> Array:
    """Gradient ``dZ = dL/dZ_L`` of the mean loss w.r.t. the last layer's pre-activation.

    Args:
        name: one of :data:`LOSSES`.
        activation: the last layer's activation (see :data:`trainer.nn.ACTIVATIONS`).
        A: ndarray of shape (n, k), the network output ``A_L = g(Z_L)``.
        Y: ndarray of shape (n, k), the targets; cast to ``A.dtype``.

    Returns:
        dZ: ndarray of shape (n, k), dtype of ``A``:
        cross_entropy (softmax) ``(A - Y) / n``;
        mse ``2 (A - Y) / (n k) * derivative_from_output(activation, A)``.

    Raises:
        ValueError: cross_entropy with an activation other than softmax, mse with softmax,
            unknown names, or mismatched shapes.
    """
    _check(name, A, Y)
    diff: Array = A - np.asarray(Y, dtype=A.dtype)  # A - Y in A's dtype
    n, k = int(A.shape[0]), int(A.shape[1])
    if name == "cross_entropy":
        if activation != "softmax":
            raise ValueError(f"loss 'cross_entropy' needs a softmax last layer, got {activation!r}")
        return diff / n
    if activation == "softmax":
        raise ValueError("loss 'mse' cannot be used with a softmax last layer; use cross_entropy")
    dA = 2 * diff / (n * k)
    return dA * derivative_from_output(activation, A)
