"""The finite-difference helper the other nn tests rely on."""

import numpy as np
import pytest
from support.gradcheck import numerical_gradient, relative_error


def test_numerical_gradient_matches_a_known_derivative() -> None:
    # Given f(x) = Σ sin(x) · x², whose gradient is cos(x) x² + 2 x sin(x)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    x_before = x.copy()

    # When
    numeric = numerical_gradient(lambda z: float(np.sum(np.sin(z) * z**2)), x)

    # Then
    analytic = np.cos(x) * x**2 + 2 * x * np.sin(x)
    assert numeric.shape == x.shape
    assert relative_error(analytic, numeric) < 1e-9
    assert np.array_equal(x, x_before)


def test_numerical_gradient_refuses_float32() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="float64"):
        numerical_gradient(lambda z: float(z.sum()), np.ones(3, dtype=np.float32))


def test_relative_error_is_zero_for_equal_arrays_and_one_for_opposite() -> None:
    # Given
    a = np.array([1.0, -2.0, 3.0])

    # When / Then
    assert relative_error(a, a) == 0.0
    assert relative_error(a, -a) == pytest.approx(1.0)
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0
