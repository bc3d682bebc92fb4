"""Activations: values, stability, dtype, and dA/dZ (through the output) against central FD."""

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from support.gradcheck import numerical_gradient, relative_error

from trainer.nn import ACTIVATIONS, activate, derivative_from_output

ELEMENTWISE = ("relu", "tanh", "sigmoid", "linear")


def _z(rng: np.random.Generator, shape: tuple[int, int], margin: float = 0.1) -> np.ndarray:
    """Standard-normal Z pushed at least ``margin`` away from 0 (relu's kink)."""
    z = rng.standard_normal(shape)
    return np.sign(z) * (margin + np.abs(z))


def test_activations_lists_every_name() -> None:
    # Given / When / Then
    assert ACTIVATIONS == ("relu", "tanh", "sigmoid", "softmax", "linear")


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("relu", lambda z: np.where(z > 0, z, 0.0)),
        ("tanh", np.tanh),
        ("sigmoid", lambda z: 1.0 / (1.0 + np.exp(-z))),
        ("softmax", lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)),
        ("linear", lambda z: z),
    ],
)
def test_activate_matches_the_textbook_formula(
    name: str, reference: Callable[[np.ndarray], np.ndarray]
) -> None:
    # Given
    Z = np.random.default_rng(1).standard_normal((5, 4))

    # When
    A = activate(name, Z)

    # Then
    assert A.shape == Z.shape
    np.testing.assert_allclose(A, reference(Z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_from_output_matches_central_differences(name: str) -> None:
    # Given a scalar function of the output, f(Z) = Σ C ⊙ g(Z), so df/dZ = C ⊙ g'(Z)
    rng = np.random.default_rng(2)
    Z = _z(rng, (6, 5))
    C = rng.standard_normal(Z.shape)

    def f(z: np.ndarray) -> float:
        return float(np.sum(C * activate(name, z)))

    # When
    analytic = C * derivative_from_output(name, activate(name, Z))
    numeric = numerical_gradient(f, Z)

    # Then
    assert relative_error(analytic, numeric) < 1e-8


def test_softmax_jacobian_vector_product_matches_central_differences() -> None:
    # Given f(Z) = Σ C ⊙ softmax(Z); per row, df/dZ = A ⊙ (C - Σ_k C_k A_k)
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((4, 6))
    C = rng.standard_normal(Z.shape)

    # When
    A = activate("softmax", Z)
    analytic = A * (C - np.sum(C * A, axis=1, keepdims=True))
    numeric = numerical_gradient(lambda z: float(np.sum(C * activate("softmax", z))), Z)

    # Then
    assert relative_error(analytic, numeric) < 1e-8


def test_derivative_from_output_rejects_softmax() -> None:
    # Given
    A = activate("softmax", np.zeros((2, 3)))

    # When / Then
    with pytest.raises(ValueError, match="cross_entropy"):
        derivative_from_output("softmax", A)


@pytest.mark.parametrize("fn", [activate, derivative_from_output])
def test_unknown_activation_is_an_error(fn: Callable[[str, np.ndarray], np.ndarray]) -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        fn("gelu", np.zeros((1, 1)))


def test_relu_derivative_is_zero_at_zero_output() -> None:
    # Given relu outputs including exact zeros (Z <= 0)
    A = activate("relu", np.array([[-1.0, 0.0, 2.0]]))

    # When
    d = derivative_from_output("relu", A)

    # Then
    assert np.array_equal(d, [[0.0, 0.0, 1.0]])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_float32_stays_float32(name: str) -> None:
    # Given
    Z = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)

    # When
    A = activate(name, Z)

    # Then
    assert A.dtype == np.float32
    if name != "softmax":
        assert derivative_from_output(name, A).dtype == np.float32


def test_linear_returns_a_copy() -> None:
    # Given
    Z = np.ones((2, 2), dtype=np.float32)

    # When
    A = activate("linear", Z)

    # Then
    assert np.array_equal(A, Z)
    assert not np.shares_memory(A, Z)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_large_inputs(dtype: type) -> None:
    # Given
    Z: np.ndarray = np.array([[-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4]], dtype=dtype)

    # When no overflow / invalid / division warning may occur (underflow to 0 is expected)
    with np.errstate(all="raise", under="ignore"):
        A = activate("sigmoid", Z)
        A_neg = activate("sigmoid", -Z)

    # Then
    assert np.all(np.isfinite(A))
    assert A[0, 0] == 0.0
    assert A[0, 3] == 0.5
    assert A[0, -1] == 1.0
    np.testing.assert_allclose(A + A_neg, 1.0, rtol=1e-6)


def test_softmax_is_stable_and_shift_invariant() -> None:
    # Given logits too large for a naive exp
    Z = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -1000.0]])

    # When
    with np.errstate(all="raise"):
        A = activate("softmax", Z)

    # Then
    np.testing.assert_allclose(A[0], activate("softmax", np.array([[0.0, 1.0, 2.0]]))[0])
    np.testing.assert_allclose(A[1], [1 / 3, 1 / 3, 1 / 3])


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.integers(1, 6)),
        elements=st.floats(-1e6, 1e6, allow_nan=False),
    )
)
def test_softmax_rows_are_probability_distributions(Z: np.ndarray) -> None:
    # Given any finite logits (from Hypothesis)
    # When
    with np.errstate(all="raise", under="ignore"):
        A = activate("softmax", Z)

    # Then
    assert np.all(A >= 0.0)
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-12)
    rows = np.arange(Z.shape[0])
    assert np.array_equal(A[rows, Z.argmax(axis=1)], A.max(axis=1))


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float32,
        st.integers(1, 20),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    ).map(lambda z: z.reshape(1, -1))
)
def test_sigmoid_is_a_float32_probability_and_monotone(Z: np.ndarray) -> None:
    # Given any finite float32 pre-activations (from Hypothesis)
    # When
    with np.errstate(all="raise", under="ignore"):
        A = activate("sigmoid", Z)

    # Then
    assert A.dtype == np.float32
    assert np.all((A >= 0.0) & (A <= 1.0))
    order = np.argsort(Z[0], kind="stable")
    assert np.all(np.diff(A[0, order]) >= 0.0)
