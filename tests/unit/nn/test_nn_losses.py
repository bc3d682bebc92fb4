"""Losses: values, dtype, errors, and output_gradient (dL/dZ_L) against finite differences."""

import math

import numpy as np
import pytest
from support.gradcheck import numerical_gradient, relative_error

from trainer.nn import LOSSES, activate, loss_value, output_gradient


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    one_hot: np.ndarray = np.eye(k)[labels]
    return one_hot


def test_losses_lists_every_name() -> None:
    # Given / When / Then
    assert LOSSES == ("cross_entropy", "mse")


def test_cross_entropy_value_by_hand() -> None:
    # Given two examples whose true classes get probabilities 0.7 and 0.8
    A = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], dtype=np.float32)
    Y = _one_hot(np.array([0, 1]), 3).astype(np.float32)

    # When
    value = loss_value("cross_entropy", A, Y)

    # Then -(log 0.7 + log 0.8) / 2, computed in float64 from the float32 inputs
    expected = -(math.log(float(np.float32(0.7))) + math.log(float(np.float32(0.8)))) / 2
    assert type(value) is float
    assert value == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_clips_zero_probabilities() -> None:
    # Given the true class gets probability exactly 0
    A = np.array([[0.0, 1.0]])
    Y = np.array([[1.0, 0.0]])

    # When
    value = loss_value("cross_entropy", A, Y)

    # Then the log is taken of eps = 1e-12, not 0
    assert value == pytest.approx(-math.log(1e-12))


def test_mse_value_by_hand() -> None:
    # Given squared errors 0, 4, 4, 9 over n*k = 4 elements
    A = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    Y = np.array([[1.0, 0.0], [1.0, 1.0]], dtype=np.float32)

    # When
    value = loss_value("mse", A, Y)

    # Then
    assert type(value) is float
    assert value == 4.25


@pytest.mark.parametrize(
    ("loss", "activation"),
    [
        ("cross_entropy", "softmax"),
        ("mse", "linear"),
        ("mse", "tanh"),
        ("mse", "sigmoid"),
        ("mse", "relu"),
    ],
)
def test_output_gradient_matches_central_differences(loss: str, activation: str) -> None:
    # Given L(Z_L) = loss(g(Z_L), Y) for a micro-batch of 7 examples and 4 outputs
    rng = np.random.default_rng(10)
    Z = rng.standard_normal((7, 4))
    Z = np.sign(Z) * (0.1 + np.abs(Z))  # away from relu's kink
    if loss == "cross_entropy":
        Y = _one_hot(rng.integers(0, 4, size=7), 4)
    else:
        Y = rng.standard_normal(Z.shape)

    # When
    analytic = output_gradient(loss, activation, activate(activation, Z), Y)
    numeric = numerical_gradient(lambda z: loss_value(loss, activate(activation, z), Y), Z)

    # Then
    assert analytic.shape == Z.shape
    assert relative_error(analytic, numeric) < 1e-7


def test_cross_entropy_gradient_is_a_minus_y_over_n() -> None:
    # Given
    A = activate("softmax", np.random.default_rng(11).standard_normal((5, 3)))
    Y = _one_hot(np.array([0, 1, 2, 1, 0]), 3)

    # When
    dZ = output_gradient("cross_entropy", "softmax", A, Y)

    # Then
    assert np.array_equal(dZ, (A - Y) / 5)


def test_output_gradient_keeps_the_dtype_of_a() -> None:
    # Given float32 activations and float64 targets
    rng = np.random.default_rng(12)
    A = activate("softmax", rng.standard_normal((4, 3)).astype(np.float32))
    Y = _one_hot(np.array([0, 1, 2, 0]), 3)

    # When
    dZ_ce = output_gradient("cross_entropy", "softmax", A, Y)
    dZ_mse = output_gradient("mse", "sigmoid", A, Y)

    # Then
    assert dZ_ce.dtype == np.float32
    assert dZ_mse.dtype == np.float32


@pytest.mark.parametrize(
    ("loss", "activation", "message"),
    [
        ("cross_entropy", "tanh", "softmax last layer"),
        ("cross_entropy", "linear", "softmax last layer"),
        ("mse", "softmax", "cross_entropy"),
        ("hinge", "linear", "unknown loss 'hinge'"),
    ],
)
def test_output_gradient_rejects_mismatched_loss_and_activation(
    loss: str, activation: str, message: str
) -> None:
    # Given
    A = np.full((2, 3), 1 / 3)
    Y = _one_hot(np.array([0, 2]), 3)

    # When / Then
    with pytest.raises(ValueError, match=message):
        output_gradient(loss, activation, A, Y)


def test_shape_mismatch_is_an_error() -> None:
    # Given
    A = np.zeros((2, 3))
    Y = np.zeros((2, 4))

    # When / Then
    with pytest.raises(ValueError, match="shape"):
        loss_value("mse", A, Y)
    with pytest.raises(ValueError, match="shape"):
        output_gradient("mse", "linear", A, Y)
