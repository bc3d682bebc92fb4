"""A trained model, loaded from ``model.npz`` + ``model.json``, and its forward pass.

The files are what every training writes (``trainer.training.exports``): ``model.npz`` holds
``W1, b1, …, WL, bL`` with ``W_l`` of shape (n_{l-1}, n_l) and ``b_l`` (n_l,); ``model.json``
holds ``layers`` (units and activation each), ``loss``, ``n_features``, ``standardize``
(``mean``, ``std``: the training part's per-feature statistics), ``classes`` (classification),
``run_id`` and ``version``.

A prediction for rows ``X`` of shape (n, d) is exactly what training computes on its own data:

* standardize as ``trainer.data.prepare.standardize`` does: ``(X - mean) / std`` in float64
  (``std < 1e-12`` counts as 1, a constant feature), cast to float32;
* then ``trainer.nn.predict``: ``A_l = g_l(A_{l-1} @ W_l + b_l)`` for l = 1..L, one call over all
  n rows, so the output equals the model's own forward pass on those rows bit for bit.

A row's last bits may depend on which other rows share its matrix (BLAS blocks and threads the
product by shape, ~1e-7 relative): that is true of any numpy forward pass, and why the rows of a
request or file are never cut into pieces here.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import InputError, ModelError
from trainer.nn import ACTIVATIONS, LayerParams, predict

MODEL_NPZ = "model.npz"
MODEL_JSON = "model.json"

MIN_STD = 1e-12
"""A feature whose training std is below this is constant and divided by 1 instead
(``trainer.data.prepare.MIN_STD``; a test checks that they agree)."""

STANDARDIZE_ROWS = 4096
"""Rows standardized at a time: bounds the float64 temporary to 4096 × d × 8 bytes. The
operation is elementwise, so the pieces are bit-identical to one pass."""


@dataclass(frozen=True, eq=False)
class Prediction:
    """The model's outputs for n rows.

    Attributes:
        outputs: float32 (n, k), the last layer's activations ``A_L``: class probabilities
            (softmax, summing to 1 per row) for classification, the k regression outputs else.
        classes: the class labels in output order (column j of ``outputs`` is ``classes[j]``),
            or None for regression.
    """

    outputs: np.ndarray
    classes: tuple[Any, ...] | None

    @property
    def is_classification(self) -> bool:
        return self.classes is not None

    @property
    def n_rows(self) -> int:
        return int(self.outputs.shape[0])

    def labels(self) -> list[Any]:
        """Each row's class label: ``classes[argmax_j outputs[i, j]]`` (the first on a tie)."""
        if self.classes is None:
            raise ValueError("a regression model predicts outputs, not class labels")
        classes = self.classes
        return [classes[j] for j in np.argmax(self.outputs, axis=1).tolist()]


@dataclass(frozen=True, eq=False)
class Model:
    """A trained network ready to predict.

    Attributes:
        params: ``[(W_1, b_1), …, (W_L, b_L)]`` as stored (float32).
        activations: ``[g_1, …, g_L]``.
        mean: float64 (d,), the training part's feature means.
        std: float64 (d,), its feature standard deviations, those below ``MIN_STD`` set to 1.
        classes: class labels in output order, or None (regression).
        run_id: the run that trained it.
        version: the optimizer steps behind its weights.
    """

    params: list[LayerParams]
    activations: list[str]
    mean: np.ndarray
    std: np.ndarray
    classes: tuple[Any, ...] | None
    run_id: str
    version: int

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.params[-1].b.shape[0])

    @property
    def is_classification(self) -> bool:
        return self.classes is not None

    def standardize(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean) / std`` as float32 (n, d), from X (n, d) of any real dtype.

        Computed in float64 (X's values converted exactly, as numpy's promotion does) and cast
        once, ``STANDARDIZE_ROWS`` rows at a time.
        """
        self._check_shape(X)
        out = np.empty(X.shape, dtype=np.float32)
        block = np.empty((min(STANDARDIZE_ROWS, X.shape[0]), X.shape[1]), dtype=np.float64)
        for start in range(0, X.shape[0], STANDARDIZE_ROWS):
            rows = X[start : start + STANDARDIZE_ROWS]
            scratch = block[: rows.shape[0]]
            np.subtract(rows, self.mean, out=scratch)  # X converted to float64 exactly
            np.divide(scratch, self.std, out=scratch)
            out[start : start + rows.shape[0]] = scratch  # the float32 cast, as astype does
        return out

    def predict(self, X: np.ndarray) -> Prediction:
        """The network's outputs for rows X (n, d): standardize, then ``trainer.nn.predict``
        over all n rows at once. Raises InputError when X is not (n ≥ 1, n_features)."""
        self._check_shape(X)
        if X.shape[0] == 0:
            raise InputError("no rows to predict; send at least one row")
        outputs = predict(self.params, self.activations, self.standardize(X))
        return Prediction(outputs=outputs, classes=self.classes)

    def _check_shape(self, X: np.ndarray) -> None:
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InputError(
                f"rows must have {self.n_features} feature columns (the model's n_features); "
                f"got an array of shape {X.shape}"
            )

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, npz: bytes, document: bytes | str) -> Model:
        """A model from the bytes of ``model.npz`` and ``model.json``; ModelError if they are
        unreadable or disagree (shapes, feature count, classes)."""
        try:
            meta = json.loads(document)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelError(f"{MODEL_JSON} is not valid JSON: {error}") from None
        if not isinstance(meta, dict):
            raise ModelError(f"{MODEL_JSON} must be a JSON object")
        activations, units = _layers(meta)
        arrays = _arrays(npz)
        mean, std = _statistics(meta)
        params = _params(arrays, units, n_features=mean.shape[0])
        classes = _classes(meta, units[-1])
        run_id, version = meta.get("run_id"), meta.get("version")
        if not isinstance(run_id, str) or not isinstance(version, int) or not _is_count(version):
            raise ModelError(f"{MODEL_JSON} needs a string run_id and an integer version >= 0")
        return cls(
            params=params,
            activations=activations,
            mean=mean,
            std=np.where(std < MIN_STD, 1.0, std),
            classes=classes,
            run_id=run_id,
            version=version,
        )

    @classmethod
    def from_dir(cls, folder: str | Path) -> Model:
        """A model from a folder holding ``model.npz`` and ``model.json`` (``stepnet reference
        --out``, ``stepnet local``, ``stepnet fetch``)."""
        folder = Path(folder)
        try:
            npz = (folder / MODEL_NPZ).read_bytes()
            document = (folder / MODEL_JSON).read_bytes()
        except OSError as error:
            raise ModelError(
                f"{folder} has no readable {MODEL_NPZ} and {MODEL_JSON} ({error.strerror}); "
                "pass a folder written by stepnet reference/local/fetch"
            ) from None
        return cls.from_bytes(npz, document)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _layers(meta: dict[str, Any]) -> tuple[list[str], list[int]]:
    layers = meta.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelError(f"{MODEL_JSON} needs a non-empty 'layers' list")
    activations, units = [], []
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict) or layer.get("activation") not in ACTIVATIONS:
            raise ModelError(f"{MODEL_JSON}: layers[{index}] needs an activation in {ACTIVATIONS}")
        if not _is_count(layer.get("units")) or layer["units"] < 1:
            raise ModelError(f"{MODEL_JSON}: layers[{index}] needs integer units >= 1")
        activations.append(str(layer["activation"]))
        units.append(int(layer["units"]))
    return activations, units


def _arrays(npz: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ModelError(f"{MODEL_NPZ} is not a readable .npz archive: {error}") from None


def _statistics(meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    block = meta.get("standardize")
    n_features = meta.get("n_features")
    if not isinstance(block, dict) or not _is_count(n_features):
        raise ModelError(f"{MODEL_JSON} needs 'n_features' and 'standardize': {{mean, std}}")
    try:
        mean = np.asarray(block["mean"], dtype=np.float64)
        std = np.asarray(block["std"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ModelError(
            f"{MODEL_JSON}: standardize needs numeric 'mean' and 'std' lists"
        ) from None
    if mean.shape != (n_features,) or std.shape != (n_features,):
        raise ModelError(
            f"{MODEL_JSON}: standardize.mean and .std must each have n_features = {n_features} "
            f"values; got {mean.shape} and {std.shape}"
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std >= 0)):
        raise ModelError(f"{MODEL_JSON}: standardize.mean/std must be finite, std >= 0")
    return mean, std


def _params(
    arrays: dict[str, np.ndarray], units: Sequence[int], n_features: int
) -> list[LayerParams]:
    params = []
    n_in = n_features
    for layer, n_out in enumerate(units, start=1):
        W, b = arrays.get(f"W{layer}"), arrays.get(f"b{layer}")
        if W is None or b is None:
            raise ModelError(
                f"{MODEL_NPZ} has no W{layer}/b{layer} for layer {layer} of {len(units)}"
            )
        if W.shape != (n_in, n_out) or b.shape != (n_out,):
            raise ModelError(
                f"{MODEL_NPZ}: layer {layer} must have W{layer} {(n_in, n_out)} and b{layer} "
                f"({n_out},) (from {MODEL_JSON}'s layers and n_features); got {W.shape} and "
                f"{b.shape}"
            )
        if W.dtype.kind != "f" or b.dtype.kind != "f":
            raise ModelError(f"{MODEL_NPZ}: W{layer}/b{layer} must be floating-point arrays")
        params.append(LayerParams(W, b))
        n_in = n_out
    return params


def _classes(meta: dict[str, Any], n_outputs: int) -> tuple[Any, ...] | None:
    loss, classes = meta.get("loss"), meta.get("classes")
    if loss == "mse":
        return None
    if loss != "cross_entropy":
        raise ModelError(f"{MODEL_JSON}: unknown loss {loss!r} (cross_entropy or mse)")
    if not isinstance(classes, list) or len(classes) != n_outputs:
        raise ModelError(
            f"{MODEL_JSON}: a classifier needs 'classes', one label per output ({n_outputs})"
        )
    if any(not isinstance(c, int | str) or isinstance(c, bool) for c in classes):
        raise ModelError(f"{MODEL_JSON}: classes must be integers or strings")
    return tuple(classes)
