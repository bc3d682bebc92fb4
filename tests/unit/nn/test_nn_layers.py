"""Dense layer: Z = A_prev @ W + b and its backward pass against finite differences."""

import numpy as np
import numpy.typing as npt
import pytest
from support.gradcheck import numerical_gradient, relative_error

from trainer.nn import dense_backward, dense_forward


def _layer(
    rng: np.random.Generator,
    n: int = 5,
    n_in: int = 4,
    n_out: int = 3,
    dtype: npt.DTypeLike = np.float64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A_prev (n, n_in), W (n_in, n_out), b (n_out,) drawn from rng, cast to dtype."""
    A_prev = rng.standard_normal((n, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    return A_prev, W, b


def test_dense_forward_is_affine() -> None:
    # Given
    A_prev, W, b = _layer(np.random.default_rng(20))

    # When
    Z = dense_forward(A_prev, W, b)

    # Then Z_ij = Σ_k A_prev_ik W_kj + b_j
    expected = np.einsum("ik,kj->ij", A_prev, W) + b[None, :]
    assert Z.shape == (5, 3)
    np.testing.assert_allclose(Z, expected, rtol=1e-12)


def test_dense_backward_matches_central_differences() -> None:
    # Given L = Σ C ⊙ Z, so dZ = C
    rng = np.random.default_rng(21)
    A_prev, W, b = _layer(rng)
    C = rng.standard_normal((5, 3))

    # When
    dW, db, dA_prev = dense_backward(C, A_prev, W)

    # Then
    def loss(a: np.ndarray, w: np.ndarray, bias: np.ndarray) -> float:
        return float(np.sum(C * dense_forward(a, w, bias)))

    assert dW.shape == W.shape and db.shape == b.shape and dA_prev.shape == A_prev.shape
    assert relative_error(dW, numerical_gradient(lambda w: loss(A_prev, w, b), W)) < 1e-8
    assert relative_error(db, numerical_gradient(lambda v: loss(A_prev, W, v), b)) < 1e-8
    assert relative_error(dA_prev, numerical_gradient(lambda a: loss(a, W, b), A_prev)) < 1e-8


def test_dense_backward_formulas() -> None:
    # Given
    rng = np.random.default_rng(22)
    A_prev, W, _ = _layer(rng)
    dZ = rng.standard_normal((5, 3))

    # When
    dW, db, dA_prev = dense_backward(dZ, A_prev, W)

    # Then
    assert np.array_equal(dW, A_prev.T @ dZ)
    assert np.array_equal(db, dZ.sum(axis=0))
    assert np.array_equal(dA_prev, dZ @ W.T)


def test_float32_stays_float32_and_w_sets_the_dtype() -> None:
    # Given float32 weights, and an input that arrives as float64
    rng = np.random.default_rng(23)
    A_prev, W, b = _layer(rng, dtype=np.float32)
    A64 = A_prev.astype(np.float64)

    # When
    Z = dense_forward(A_prev, W, b)
    Z_from_64 = dense_forward(A64, W, b)
    grads = dense_backward(Z, A_prev, W)

    # Then
    assert Z.dtype == np.float32
    assert np.array_equal(Z_from_64, Z)
    assert all(g.dtype == np.float32 for g in grads)


def test_results_do_not_depend_on_memory_layout() -> None:
    # Given the same values as C-ordered arrays and as strided / Fortran-ordered views
    rng = np.random.default_rng(24)
    A_prev, W, b = _layer(rng, n=8, n_in=6, n_out=5, dtype=np.float32)
    dZ = rng.standard_normal((8, 5)).astype(np.float32)
    big = np.zeros((16, 6), dtype=np.float32)
    big[::2] = A_prev
    A_strided = big[::2]
    W_fortran = np.asfortranarray(W)
    dZ_fortran = np.asfortranarray(dZ)

    # When
    Z_c = dense_forward(A_prev, W, b)
    Z_v = dense_forward(A_strided, W_fortran, b)
    back_c = dense_backward(dZ, A_prev, W)
    back_v = dense_backward(dZ_fortran, A_strided, W_fortran)

    # Then the bits are identical
    assert np.array_equal(Z_c, Z_v)
    assert all(np.array_equal(c, v) for c, v in zip(back_c, back_v, strict=True))


def test_shape_errors() -> None:
    # Given
    A_prev, W, b = _layer(np.random.default_rng(25))

    # When / Then
    with pytest.raises(ValueError, match="W"):
        dense_forward(A_prev, W.T, b)
    with pytest.raises(ValueError, match="b"):
        dense_forward(A_prev, W, b[:2])
    with pytest.raises(ValueError, match="dZ"):
        dense_backward(np.zeros((4, 3)), A_prev, W)
