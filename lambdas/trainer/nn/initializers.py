"""Weight initialization: He and Xavier (Glorot) normal, zero biases.

``W ~ N(0, σ²)`` of shape (n_in, n_out) with

* he:     ``σ = sqrt(2 / n_in)``          (for relu layers)
* xavier: ``σ = sqrt(2 / (n_in + n_out))`` (Glorot normal; tanh / sigmoid / softmax layers)

and ``b = 0`` of shape (n_out,). Draws use ``rng.standard_normal((n_in, n_out))`` in float64,
then scale, then cast, so a seed gives the same weights for every dtype and platform.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from trainer.nn._types import Array
from trainer.nn.params import LayerParams

INIT_SCHEMES: tuple[str, ...] = ("he", "xavier")


def init_layer(
    scheme: str,
    n_in: int,
    n_out: int,
    rng: np.random.Generator,
    dtype: npt.DTypeLike = np.float32,
) -> LayerParams:
    """Initialize one dense layer.

    Args:
        scheme: ``"he"`` (σ = sqrt(2/n_in)) or ``"xavier"`` (σ = sqrt(2/(n_in+n_out))).
        n_in: number of inputs (units of the previous layer, or features), >= 1.
        n_out: number of units of this layer, >= 1.
        rng: the generator to draw from (advanced by n_in * n_out standard normals).
        dtype: dtype of the returned arrays.

    Returns:
        ``(W, b)``: W ndarray of shape (n_in, n_out) ~ N(0, σ²), b zeros of shape (n_out,).
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {INIT_SCHEMES}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"n_in and n_out must be >= 1; got n_in={n_in}, n_out={n_out}")
    std = math.sqrt(2.0 / n_in) if scheme == "he" else math.sqrt(2.0 / (n_in + n_out))
    W: Array = (rng.standard_normal((n_in, n_out)) * std).astype(dtype)
    b: Array = np.zeros(n_out, dtype=dtype)
    return LayerParams(W, b)


def init_network(
    scheme: str,
    sizes: Sequence[int],
    rng: np.random.Generator,
    dtype: npt.DTypeLike = np.float32,
) -> list[LayerParams]:
    """Initialize every layer of a dense network, layer 1 first, all from the one ``rng``.

    Args:
        scheme: see :func:`init_layer`.
        sizes: ``(n_features, units_1, ..., units_L)``, at least two entries.
        rng: the generator; layer l's weights are drawn after layer l-1's.
        dtype: dtype of the returned arrays.

    Returns:
        ``[(W_1, b_1), ..., (W_L, b_L)]`` with W_l of shape (sizes[l-1], sizes[l]).
    """
    if len(sizes) < 2:
        raise ValueError(f"sizes must be (n_features, units_1, ..., units_L); got {sizes}")
    return [
        init_layer(scheme, n_in, n_out, rng, dtype) for n_in, n_out in itertools.pairwise(sizes)
    ]
