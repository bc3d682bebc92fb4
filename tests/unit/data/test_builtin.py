"""The builtin datasets shipped in the Lambda package (``trainer.data.sources.read_builtin``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits  # the dev extra has scikit-learn; the CLI does not

from trainer.config import parse_config
from trainer.data.prepare import prepare
from trainer.data.readers import read_dataset, read_npz
from trainer.data.sources import read_builtin

REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_digits_are_scikit_learns() -> None:
    # Given the file the package ships, and scikit-learn's bundled copy (no download)
    data, name = read_builtin("builtin:digits")
    expected_X, expected_y = load_digits(return_X_y=True)

    # When
    X, y = read_npz(data)

    # Then: the same 1797 8×8 images (stored as uint8 to stay small: 0..16 is exact in any
    # dtype) and labels; as float32 features and int64 labels they equal scikit-learn's
    assert name == "digits.npz"
    assert X.shape == (1797, 64) and X.dtype == np.uint8
    assert y.shape == (1797,) and y.dtype == np.int64
    np.testing.assert_array_equal(X.astype(np.float32), expected_X.astype(np.float32))
    np.testing.assert_array_equal(y, expected_y.astype(np.int64))


def test_digits_fit_the_example_config() -> None:
    # Given
    config = parse_config((REPO / "examples" / "digits.json").read_text())
    data, name = read_builtin(config.dataset.source)
    X, y = read_dataset(data, name, config.dataset.label)

    # When
    prepared = prepare(
        X,
        y,
        classification=config.is_classification,
        n_outputs=config.model.layers[-1].units,
        validation_fraction=config.dataset.validation_fraction,
        seed=config.seed,
    )

    # Then
    assert prepared.classes == list(range(10))
    assert prepared.X_val.shape == (359, 64) and prepared.X_train.shape == (1438, 64)
