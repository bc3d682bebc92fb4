"""Elementwise (and row-wise softmax) activation functions and their derivatives.

A layer computes ``A = g(Z)`` from its pre-activation ``Z = A_prev @ W + b``. Every function here
takes and returns ndarrays of shape (n_ex, n_units) and keeps the input dtype (float32 stays
float32).

The backward pass needs ``dA/dZ``; for the elementwise activations it is expressed through the
layer's OUTPUT ``A`` (which the forward pass already stored), so ``Z`` never has to be kept:

=========  ======================================  ===========================
name       A = g(Z)                                dA/dZ through A
=========  ======================================  ===========================
relu       max(Z, 0)                               1[A > 0]
tanh       tanh(Z)                                 1 - A²
sigmoid    1 / (1 + exp(-Z))                       A (1 - A)
softmax    exp(Z_ik) / Σ_j exp(Z_ij)  (row-wise)   not elementwise (see below)
linear     Z                                       1
=========  ======================================  ===========================

The softmax Jacobian is not elementwise; it is only ever used fused with cross-entropy, where
``dL/dZ = (A - Y) / n_ex`` (see :func:`trainer.nn.losses.output_gradient`).
"""

from __future__ import annotations

import numpy as np

from trainer.nn._types import Array

ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "sigmoid", "softmax", "linear")


def _check_name(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def _sigmoid(Z: Array) -> Array:
    # exp of a non-positive number never overflows: for Z >= 0 use 1 / (1 + e^-Z), for Z < 0
    # the equal e^Z / (1 + e^Z); both are computed from e = exp(-|Z|) in [0, 1].
    e = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def _softmax(Z: Array) -> Array:
    # Subtracting the row max leaves softmax unchanged and keeps exp() <= 1 (no overflow).
    E: Array = np.exp(Z - Z.max(axis=-1, keepdims=True))
    row_sums: Array = E.sum(axis=-1, keepdims=True)
    return E / row_sums


def activate(name: str, Z: Array) -> Array:
    """Apply the activation ``name`` to the pre-activation ``Z``: ``A = g(Z)``.

    Args:
        name: one of :data:`ACTIVATIONS`.
        Z: ndarray of shape (n_ex, n_units), the layer's pre-activation ``A_prev @ W + b``.

    Returns:
        A: ndarray of shape (n_ex, n_units), same dtype as ``Z``. softmax is taken row-wise
        (over the units of each example) after subtracting the row max; sigmoid is evaluated in
        a form that never overflows, so it saturates cleanly to 0 / 1 for large ``|Z|``.

    Raises:
        ValueError: unknown activation name.
    """
    _check_name(name)
    if name == "relu":
        return np.maximum(Z, 0)
    if name == "tanh":
        return np.tanh(Z)
    if name == "sigmoid":
        return _sigmoid(Z)
    if name == "softmax":
        return _softmax(Z)
    return Z.copy()  # linear


def derivative_from_output(name: str, A: Array) -> Array:
    """Elementwise derivative ``dA/dZ`` of activation ``name``, written through its output ``A``.

    Args:
        name: one of :data:`ACTIVATIONS` except ``"softmax"``.
        A: ndarray of shape (n_ex, n_units), the activation's output ``g(Z)``.

    Returns:
        ndarray of shape (n_ex, n_units), same dtype as ``A``:
        relu ``1[A > 0]``, tanh ``1 - A²``, sigmoid ``A (1 - A)``, linear ``1``.
        In backprop, ``dZ = dA * derivative_from_output(name, A)``.

    Raises:
        ValueError: for ``"softmax"`` (its Jacobian is not elementwise; it is only handled fused
            with cross-entropy) and for unknown names.
    """
    _check_name(name)
    if name == "relu":
        return (A > 0).astype(A.dtype)
    if name == "tanh":
        return 1 - A * A
    if name == "sigmoid":
        return A * (1 - A)
    if name == "linear":
        return np.ones_like(A)
    raise ValueError(
        "softmax has no elementwise derivative; it is only supported as the last layer, "
        "fused with the cross_entropy loss (dZ = (A - Y) / n_ex)"
    )
