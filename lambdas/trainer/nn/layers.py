"""The dense (fully connected) layer: ``Z = A_prev @ W + b`` and its backward pass.

Shapes: ``A_prev`` (n_ex, n_in), ``W`` (n_in, n_out), ``b`` (n_out,), ``Z`` / ``dZ``
(n_ex, n_out). The computation runs in ``W``'s dtype: other operands are cast to it (a no-op
when they already match), so float64 inputs never silently upcast float32 weights. Operands
are made C-contiguous first so that the BLAS call, and therefore the bits of the result, do not
depend on how an array was sliced or deserialized.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from trainer.nn._types import Array


def _as(x: Array, dtype: npt.DTypeLike) -> Array:
    return np.ascontiguousarray(x, dtype=dtype)


def _check_shapes(A_prev: Array, W: Array, n_out_name: str, n_out: int) -> None:
    if A_prev.ndim != 2 or W.ndim != 2 or A_prev.shape[1] != W.shape[0]:
        raise ValueError(
            f"A_prev must be (n_ex, n_in) and W (n_in, n_out); got A_prev {A_prev.shape}, "
            f"W {W.shape}"
        )
    if n_out != W.shape[1]:
        raise ValueError(f"{n_out_name} has {n_out} units but W has {W.shape[1]} columns")


def dense_forward(A_prev: Array, W: Array, b: Array) -> Array:
    """Forward pass of a dense layer: ``Z = A_prev @ W + b``.

    Args:
        A_prev: ndarray of shape (n_ex, n_in), the previous layer's activation (or the input X).
        W: ndarray of shape (n_in, n_out).
        b: ndarray of shape (n_out,), broadcast over the examples.

    Returns:
        Z: ndarray of shape (n_ex, n_out), dtype of ``W``.
    """
    if b.ndim != 1:
        raise ValueError(f"b must have shape (n_out,); got {b.shape}")
    _check_shapes(A_prev, W, "b", b.shape[0])
    dtype = W.dtype
    return _as(A_prev, dtype) @ _as(W, dtype) + _as(b, dtype)


def dense_backward(dZ: Array, A_prev: Array, W: Array) -> tuple[Array, Array, Array]:
    """Backward pass of a dense layer, given ``dZ = dL/dZ``.

    Args:
        dZ: ndarray of shape (n_ex, n_out), gradient of the loss w.r.t. ``Z``.
        A_prev: ndarray of shape (n_ex, n_in), the input of the forward pass.
        W: ndarray of shape (n_in, n_out).

    Returns:
        ``(dW, db, dA_prev)``, dtype of ``W``:
        ``dLdW = A_prev.T @ dZ`` of shape (n_in, n_out),
        ``dLdb = Σ_i dZ_i`` (``dZ.sum(axis=0)``) of shape (n_out,),
        ``dLdA_prev = dZ @ W.T`` of shape (n_ex, n_in).
    """
    if dZ.ndim != 2 or dZ.shape[0] != A_prev.shape[0]:
        raise ValueError(
            f"dZ must be (n_ex, n_out) with A_prev's n_ex; got dZ {dZ.shape}, A_prev {A_prev.shape}"
        )
    _check_shapes(A_prev, W, "dZ", dZ.shape[1])
    dtype = W.dtype
    dZ, A_prev, W = _as(dZ, dtype), _as(A_prev, dtype), _as(W, dtype)
    dW = A_prev.T @ dZ
    db = dZ.sum(axis=0)
    dA_prev = dZ @ W.T
    return dW, db, dA_prev
