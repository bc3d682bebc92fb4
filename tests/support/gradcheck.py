"""Central finite differences, to check analytic gradients (used by the unit tests).

For a scalar function f of an array x, ``∂f/∂x_i ≈ (f(x + h e_i) - f(x - h e_i)) / (2h)``, whose
truncation error is O(h²). Run it in float64: in float32 the rounding error ~ eps32 / h swamps
the result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trainer.nn._types import Array


def numerical_gradient(f: Callable[[Array], float], x: Array, h: float = 1e-6) -> Array:
    """Central-difference gradient of the scalar function ``f`` at ``x``.

    Args:
        f: scalar function of an array shaped like ``x``; it receives a fresh float64 copy
            each call.
        x: float64 ndarray of any shape (not modified).
        h: the step.

    Returns:
        float64 ndarray shaped like ``x``: ``g_i = (f(x + h e_i) - f(x - h e_i)) / (2h)``.
    """
    if x.dtype != np.float64:
        raise ValueError(f"finite differences need float64 input; got {x.dtype}")
    point = x.astype(np.float64, copy=True)
    flat = point.reshape(-1)  # a view: writing flat[i] moves point
    grad = np.empty(flat.size, dtype=np.float64)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + h
        f_plus = f(point.copy())
        flat[i] = original - h
        f_minus = f(point.copy())
        flat[i] = original
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad.reshape(x.shape)


def relative_error(analytic: Array, numeric: Array) -> float:
    """``||analytic - numeric|| / max(||analytic|| + ||numeric||, 1e-300)`` (Frobenius norms)."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    denominator = max(float(np.linalg.norm(a) + np.linalg.norm(n)), 1e-300)
    return float(np.linalg.norm(a - n)) / denominator
