"""inference.model: loading model.npz + model.json, standardizing as training does, predicting."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import model as inference_model
from inference.errors import InputError, ModelError
from inference.model import Model
from trainer.data import prepare

Forward = Any  # conftest's forward fixture: (model folder, X) -> the model's own forward pass


def files(folder: Path) -> tuple[bytes, dict[str, Any]]:
    return (folder / "model.npz").read_bytes(), json.loads((folder / "model.json").read_text())


def test_a_classifier_predicts_exactly_its_own_forward_pass(
    classifier_dir: Path, digits_rows: np.ndarray, forward: Forward
) -> None:
    # Given
    model = Model.from_dir(classifier_dir)
    X = digits_rows

    # When
    prediction = model.predict(X)

    # Then
    expected = forward(classifier_dir, X)
    assert prediction.outputs.dtype == np.float32
    assert np.array_equal(prediction.outputs, expected)
    assert prediction.classes == tuple(range(10))
    assert prediction.labels() == np.argmax(expected, axis=1).tolist()
    assert (model.run_id, model.n_features, model.n_outputs) == ("infer-digits", 64, 10)


def test_a_regressor_predicts_exactly_its_own_forward_pass(
    regressor_dir: Path, regression_rows: tuple[np.ndarray, np.ndarray], forward: Forward
) -> None:
    # Given
    model = Model.from_dir(regressor_dir)
    X, _ = regression_rows

    # When
    prediction = model.predict(X)

    # Then
    assert np.array_equal(prediction.outputs, forward(regressor_dir, X))
    assert prediction.classes is None and not model.is_classification
    with pytest.raises(ValueError, match="regression"):
        prediction.labels()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.uint8])
def test_standardize_is_training_s_standardize(dtype: type[np.generic]) -> None:
    # Given a model whose std has a constant feature (0), a tiny one and ordinary ones, and more
    # rows than one standardization block
    rng = np.random.default_rng(5)
    mean = rng.normal(size=4) * 10
    std = np.array([0.0, 1e-13, 0.5, 3.0])
    model = Model(
        params=[], activations=[], mean=mean, std=np.where(std < 1e-12, 1.0, std),
        classes=None, run_id="r", version=0,
    )  # fmt: skip
    n = inference_model.STANDARDIZE_ROWS + 7
    X = (rng.normal(size=(n, 4)) * 50).astype(dtype)

    # When
    ours = model.standardize(X)

    # Then
    assert ours.dtype == np.float32
    assert np.array_equal(ours, prepare.standardize(X, mean, std))


def test_the_constant_feature_threshold_is_training_s() -> None:
    # Then
    assert inference_model.MIN_STD == prepare.MIN_STD


def test_rows_of_the_wrong_width_or_none_are_input_errors(classifier_dir: Path) -> None:
    # Given
    model = Model.from_dir(classifier_dir)

    # When / Then
    with pytest.raises(InputError, match="64 feature columns"):
        model.predict(np.zeros((2, 63)))
    with pytest.raises(InputError, match="no rows"):
        model.predict(np.zeros((0, 64)))


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda npz, meta: (npz, b"{not json"), "not valid JSON"),
        (lambda npz, meta: (b"not a zip", meta), "not a readable .npz"),
        (lambda npz, meta: (npz, meta | {"layers": []}), "non-empty 'layers'"),
        (
            lambda npz, meta: (npz, meta | {"layers": [{"units": 32, "activation": "gelu"}]}),
            "activation",
        ),
        (lambda npz, meta: (npz, meta | {"n_features": 63}), "n_features = 63"),
        (lambda npz, meta: (npz, meta | {"classes": [0, 1]}), "one label per output"),
        (lambda npz, meta: (npz, meta | {"loss": "hinge"}), "unknown loss"),
        (lambda npz, meta: (npz, meta | {"version": -1}), "version"),
        (lambda npz, meta: (_drop(npz, "W2"), meta), "no W2/b2"),
        (lambda npz, meta: (_swap(npz, "b1", np.zeros(31, np.float32)), meta), "layer 1 must have"),
    ],
)
def test_inconsistent_model_files_are_model_errors(
    classifier_dir: Path, change: Any, message: str
) -> None:
    # Given
    npz, meta = files(classifier_dir)
    npz, meta = change(npz, meta)
    document = meta if isinstance(meta, bytes) else json.dumps(meta).encode()

    # When / Then
    with pytest.raises(ModelError, match=message):
        Model.from_bytes(npz, document)


def _arrays(npz: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(npz)) as archive:
        return dict(archive)


def _drop(npz: bytes, name: str) -> bytes:
    arrays = _arrays(npz)
    del arrays[name]
    return _npz(arrays)


def _swap(npz: bytes, name: str, array: np.ndarray) -> bytes:
    return _npz(_arrays(npz) | {name: array})


def test_a_folder_without_model_files_is_a_model_error(tmp_path: Path) -> None:
    # When / Then
    with pytest.raises(ModelError, match=r"no readable model\.npz and model\.json"):
        Model.from_dir(tmp_path)
