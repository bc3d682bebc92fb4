"""L2 weight decay: penalty ``(λ/2) Σ_l ||W_l||_F²`` on the weights (never the biases).

Its gradient w.r.t. each weight matrix is ``λ W``; it is added to the data-loss gradient at
update time (see :func:`trainer.nn.network.add_l2`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainer.nn._types import Array


def _check_lam(lam: float) -> None:
    if not lam >= 0.0:
        raise ValueError(f"the L2 coefficient must be >= 0; got {lam}")


def l2_penalty(weights: Sequence[Array], lam: float) -> float:
    """L2 penalty ``(λ/2) Σ_l ||W_l||_F² = (λ/2) Σ_l Σ_ij W_l[i, j]²``, as a float64 Python float.

    Args:
        weights: the weight matrices ``W_l``, each of shape (n_in, n_out); pass weights only,
            never biases.
        lam: λ >= 0.
    """
    _check_lam(lam)
    total = sum(float(np.sum(np.square(np.asarray(W, dtype=np.float64)))) for W in weights)
    return lam / 2 * total


def l2_gradient(W: Array, lam: float) -> Array:
    """Gradient of the L2 penalty w.r.t. one weight matrix: ``λ W``.

    Args:
        W: ndarray of shape (n_in, n_out).
        lam: λ >= 0.

    Returns:
        ndarray of shape (n_in, n_out), same dtype as ``W``.
    """
    _check_lam(lam)
    return W.dtype.type(lam) * W
