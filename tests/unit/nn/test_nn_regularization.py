"""L2 penalty (weights only) and its gradient λ W."""

import numpy as np
import pytest
from support.gradcheck import numerical_gradient, relative_error

from trainer.nn import l2_gradient, l2_penalty


def test_l2_penalty_by_hand() -> None:
    # Given ||W1||² = 1 + 4 + 9 + 16 = 30 and ||W2||² = 0.25
    W1 = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    W2 = np.array([[0.5]], dtype=np.float32)

    # When
    value = l2_penalty([W1, W2], 0.1)

    # Then λ/2 Σ ||W||² = 0.05 * 30.25
    assert type(value) is float
    assert value == pytest.approx(1.5125, rel=1e-12)


def test_l2_gradient_matches_central_differences() -> None:
    # Given a penalty over two weight matrices
    rng = np.random.default_rng(30)
    W = rng.standard_normal((4, 3))
    other = rng.standard_normal((3, 2))
    lam = 0.3

    # When
    analytic = l2_gradient(W, lam)
    numeric = numerical_gradient(lambda w: l2_penalty([w, other], lam), W)

    # Then
    assert relative_error(analytic, numeric) < 1e-8


def test_l2_gradient_keeps_float32() -> None:
    # Given
    W = np.random.default_rng(31).standard_normal((3, 3)).astype(np.float32)

    # When
    grad = l2_gradient(W, 1e-4)

    # Then
    assert grad.dtype == np.float32
    assert np.array_equal(grad, np.float32(1e-4) * W)


def test_zero_lambda_and_no_weights() -> None:
    # Given
    W = np.ones((2, 2))

    # When / Then
    assert l2_penalty([W], 0.0) == 0.0
    assert l2_penalty([], 0.5) == 0.0
    assert np.array_equal(l2_gradient(W, 0.0), np.zeros((2, 2)))


def test_negative_lambda_is_an_error() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match=">= 0"):
        l2_penalty([np.ones((1, 1))], -0.1)
    with pytest.raises(ValueError, match=">= 0"):
        l2_gradient(np.ones((1, 1)), -0.1)
