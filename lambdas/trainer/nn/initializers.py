"""Weight initialization: Glorot (Xavier) uniform with uniform biases, He and Glorot normal.

For a layer of shape (n_in, n_out):

* xavier_uniform (the config's default): ``W ~ U(-a, a)`` and ``b ~ U(-a, a)`` of shape
  (n_out,), with ``a = sqrt(6 / (n_in + n_out))``, so ``Var W = 2 / (n_in + n_out)``: Glorot &
  Bengio (2010), biases included, exactly as scikit-learn's ``MLPClassifier`` draws them;
* he:     ``W ~ N(0, σ²)``, ``σ = sqrt(2 / n_in)``, ``b = 0`` (He et al. 2015, for relu layers);
* xavier: ``W ~ N(0, σ²)``, ``σ = sqrt(2 / (n_in + n_out))``, ``b = 0`` (Glorot normal).

Why the default is xavier_uniform: at equal work (same data, network, optimizer, epochs and
examples per update) stepnet with ``he`` trailed scikit-learn's MLP by 0.4 (digits), 1.3 (iris)
and 2.7 (make_classification) points of validation accuracy, mean over 10 seeds
(``docs/benchmarks/quality.md``). The cause is the initial scale: He gives ``Var Z_1 = 2`` for
standardized inputs, 2× Glorot's for a square layer and 4.2× for 20 → 64, and the sharper start
ends, on these small sets, with a higher validation loss (0.119 vs 0.093 on digits); zero biases
add a little (every relu hyperplane starts through the data's mean; random biases spread them:
``xavier`` → ``xavier_uniform`` lowers the validation loss on every set but iris). With
``xavier_uniform`` the gap is within the seeds' noise (+0.1, -0.4, +0.2 points). ``he`` and
``xavier`` stay available, unchanged.

Draws are float64 (``rng.standard_normal`` or ``rng.uniform``, W first, then b), then scaled,
then cast, so a seed gives the same weights for every dtype and platform.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from trainer.nn._types import Array
from trainer.nn.params import LayerParams

INIT_SCHEMES: tuple[str, ...] = ("xavier_uniform", "he", "xavier")


def init_layer(
    scheme: str,
    n_in: int,
    n_out: int,
    rng: np.random.Generator,
    dtype: npt.DTypeLike = np.float32,
) -> LayerParams:
    """Initialize one dense layer.

    Args:
        scheme: ``"xavier_uniform"`` (W, b ~ U(±sqrt(6/(n_in+n_out)))), ``"he"``
            (W ~ N(0, 2/n_in), b = 0) or ``"xavier"`` (W ~ N(0, 2/(n_in+n_out)), b = 0).
        n_in: number of inputs (units of the previous layer, or features), >= 1.
        n_out: number of units of this layer, >= 1.
        rng: the generator to draw from (advanced by n_in * n_out standard normals, or by
            n_in * n_out + n_out uniforms for xavier_uniform).
        dtype: dtype of the returned arrays.

    Returns:
        ``(W, b)``: W ndarray of shape (n_in, n_out), b of shape (n_out,).
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {INIT_SCHEMES}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"n_in and n_out must be >= 1; got n_in={n_in}, n_out={n_out}")
    if scheme == "xavier_uniform":
        bound = math.sqrt(6.0 / (n_in + n_out))
        W_uniform: Array = rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype)
        b_uniform: Array = rng.uniform(-bound, bound, n_out).astype(dtype)
        return LayerParams(W_uniform, b_uniform)
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
