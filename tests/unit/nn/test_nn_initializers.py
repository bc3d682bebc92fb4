"""Glorot uniform / He / Xavier initialization: scale, reproducibility, dtype, layer order."""

import math
from collections.abc import Callable

import numpy as np
import pytest

from trainer.nn import init_layer, init_network


@pytest.mark.parametrize(
    ("scheme", "std"),
    [("he", math.sqrt(2 / 400)), ("xavier", math.sqrt(2 / (400 + 300)))],
)
def test_init_layer_draws_scaled_float64_normals_then_casts(scheme: str, std: float) -> None:
    # Given
    rng = np.random.default_rng(40)
    reference = np.random.default_rng(40).standard_normal((400, 300))

    # When
    W, b = init_layer(scheme, 400, 300, rng)

    # Then
    assert W.shape == (400, 300) and W.dtype == np.float32
    assert b.shape == (300,) and b.dtype == np.float32
    assert np.array_equal(W, (reference * std).astype(np.float32))
    assert not b.any()
    assert float(W.std()) == pytest.approx(std, rel=0.02)


def test_xavier_uniform_draws_weights_then_biases_in_the_glorot_range() -> None:
    # Given
    rng = np.random.default_rng(44)
    reference = np.random.default_rng(44)
    bound = math.sqrt(6 / (400 + 300))

    # When
    W, b = init_layer("xavier_uniform", 400, 300, rng)

    # Then: scikit-learn's MLP initialization, biases included
    assert W.dtype == np.float32 and b.dtype == np.float32
    assert np.array_equal(W, reference.uniform(-bound, bound, (400, 300)).astype(np.float32))
    assert np.array_equal(b, reference.uniform(-bound, bound, 300).astype(np.float32))
    assert float(np.abs(W).max()) <= bound and float(np.abs(b).max()) <= bound
    assert float(W.std()) == pytest.approx(math.sqrt(2 / (400 + 300)), rel=0.02)


def test_same_seed_same_bits_and_dtype_is_honoured() -> None:
    # Given / When
    W1, _ = init_layer("he", 8, 5, np.random.default_rng(41))
    W2, _ = init_layer("he", 8, 5, np.random.default_rng(41))
    W64, b64 = init_layer("he", 8, 5, np.random.default_rng(41), dtype=np.float64)

    # Then
    assert np.array_equal(W1, W2)
    assert W64.dtype == np.float64 and b64.dtype == np.float64
    assert np.array_equal(W64.astype(np.float32), W1)


def test_init_network_initializes_layers_in_order_from_one_rng() -> None:
    # Given sizes (n_features, units_1, units_2, units_3)
    sizes = [6, 5, 4, 3]

    # When
    params = init_network("xavier", sizes, np.random.default_rng(42))

    # Then
    rng = np.random.default_rng(42)
    expected = [init_layer("xavier", a, b, rng) for a, b in [(6, 5), (5, 4), (4, 3)]]
    assert [W.shape for W, _ in params] == [(6, 5), (5, 4), (4, 3)]
    assert [b.shape for _, b in params] == [(5,), (4,), (3,)]
    for (W, b), (W_e, b_e) in zip(params, expected, strict=True):
        assert np.array_equal(W, W_e) and np.array_equal(b, b_e)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda rng: init_layer("glorot", 2, 2, rng), "unknown init scheme"),
        (lambda rng: init_layer("he", 0, 2, rng), ">= 1"),
        (lambda rng: init_network("he", [4], rng), "sizes"),
    ],
)
def test_bad_arguments_are_errors(
    call: Callable[[np.random.Generator], object], message: str
) -> None:
    # Given
    rng = np.random.default_rng(43)

    # When / Then
    with pytest.raises(ValueError, match=message):
        call(rng)
