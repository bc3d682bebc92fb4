"""stepnet.datasets: deterministic .npz bytes and synthetic generators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stepnet.datasets import (
    npz_bytes,
    synthetic_classification,
    synthetic_regression,
    write_npz,
)
from trainer.data.errors import DatasetError
from trainer.data.prepare import prepare
from trainer.data.readers import read_npz

# --- npz writing ------------------------------------------------------------------------------


def test_write_npz_writes_a_file_read_npz_reads(tmp_path: Path) -> None:
    # Given
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = np.arange(8, dtype=np.float32).reshape(4, 2)

    # When
    path = write_npz(tmp_path / "train.npz", X, y)

    # Then
    got_X, got_y = read_npz(path.read_bytes())
    np.testing.assert_array_equal(got_X, X)
    np.testing.assert_array_equal(got_y, y)
    assert path.read_bytes() == npz_bytes(X, y)


def test_npz_bytes_are_deterministic() -> None:
    # Given
    X, y = synthetic_classification(n=50, d=4, k=3, seed=2)

    # When
    first, again = npz_bytes(X, y), npz_bytes(X.copy(), y.copy())

    # Then
    assert first == again


def test_write_npz_refuses_arrays_read_npz_would_reject(tmp_path: Path) -> None:
    # Given
    X = np.ones((3, 2))
    X[1, 0] = np.nan

    # When
    with pytest.raises(DatasetError) as caught:
        write_npz(tmp_path / "bad.npz", X, np.zeros(3))

    # Then
    assert "X has 1 NaN value (first at row 1, column 0)" in str(caught.value)
    assert not (tmp_path / "bad.npz").exists()


# --- synthetic_regression ---------------------------------------------------------------------


def test_synthetic_regression_defaults_and_shapes() -> None:
    # When
    X, y = synthetic_regression()
    _, y3 = synthetic_regression(n=50, d=4, k=3, seed=1)

    # Then
    assert X.shape == (600, 8) and y.shape == (600,)
    assert y3.shape == (50, 3)
    assert np.isfinite(X).all() and np.isfinite(y).all()
    assert 0.9 < y.std() < 1.1


def test_synthetic_regression_is_deterministic_by_seed() -> None:
    # When
    first = synthetic_regression(n=100, seed=3)
    again = synthetic_regression(n=100, seed=3)
    other = synthetic_regression(n=100, seed=4)

    # Then
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_synthetic_regression_noise_is_the_only_difference() -> None:
    # When: same seed, so the same X and the same function; only the noise level differs
    X0, clean = synthetic_regression(n=400, noise=0.0, seed=2)
    X1, noisy = synthetic_regression(n=400, noise=0.1, seed=2)

    # Then
    np.testing.assert_array_equal(X0, X1)
    assert 0.05 < np.std(noisy - clean) < 0.15
    assert np.abs(np.corrcoef(X0 @ np.ones(8), clean)[0, 1]) < 0.9  # not just linear


def test_synthetic_regression_fits_prepare() -> None:
    # Given
    X, y = synthetic_regression(n=100, d=3, k=2)

    # When
    data = prepare(X, y, classification=False, n_outputs=2, validation_fraction=0.2, seed=0)

    # Then
    assert data.Y_train.shape == (80, 2)


# --- synthetic_classification -----------------------------------------------------------------


def test_synthetic_classification_shapes_and_balance() -> None:
    # When
    X, y = synthetic_classification(n=1003, d=7, k=4, seed=0)

    # Then
    assert X.shape == (1003, 7) and X.dtype == np.float32
    assert y.shape == (1003,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [251, 251, 251, 250]


def test_synthetic_classification_is_deterministic_by_seed() -> None:
    # When
    first = synthetic_classification(n=200, d=5, k=3, seed=8)
    again = synthetic_classification(n=200, d=5, k=3, seed=8)
    other = synthetic_classification(n=200, d=5, k=3, seed=9)

    # Then
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_synthetic_classification_is_learnable_but_not_trivial() -> None:
    # Given
    X, y = synthetic_classification(n=3000, d=20, k=5, seed=0)
    data = prepare(X, y, classification=True, n_outputs=5, validation_fraction=0.2, seed=0)

    # When: classify by the nearest training class mean
    means = np.stack([data.X_train[data.Y_train[:, c] == 1].mean(0) for c in range(5)])
    distances = ((data.X_val[:, None, :] - means[None]) ** 2).sum(-1)
    accuracy = (distances.argmin(1) == data.Y_val.argmax(1)).mean()

    # Then
    assert 0.85 < accuracy < 1.0


def test_synthetic_classification_mnist_sized_is_float32() -> None:
    # When
    X, y = synthetic_classification(n=60_000, d=784, k=10, seed=0)

    # Then
    assert X.shape == (60_000, 784) and X.dtype == np.float32
    assert X.nbytes == 60_000 * 784 * 4
    assert np.bincount(y).tolist() == [6000] * 10


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({"n": 3, "d": 2, "k": 4}, "at least k"), ({"n": 10, "d": 2, "k": 1}, "k >= 2")],
)
def test_synthetic_classification_rejects_impossible_sizes(
    kwargs: dict[str, int], expected: str
) -> None:
    # When
    with pytest.raises(ValueError, match=expected):
        synthetic_classification(**kwargs)
