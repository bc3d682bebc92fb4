"""Dataset preparation: standardize and encode labels (pure numpy, no I/O).

The pipeline and the reference prepare a dataset shard by shard (``trainer.data.dataset``):
its split is of whole blocks (``trainer.data.blocks``) and its statistics are merged
(``trainer.data.stats``); they use :func:`split_sizes`, :func:`standardize`,
:func:`encode_labels` and :func:`class_labels` from here. :func:`prepare` and
:func:`split_indices` prepare one in-memory array with a row-level split: tests of the labels'
rules and the shipped datasets use them; training does not.

Shapes use ``n`` samples, ``d`` features and ``k`` outputs (classes, or regression targets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.data.errors import count, fail, preview
from trainer.data.readers import check_arrays

MIN_STD = 1e-12
"""A feature whose training standard deviation is below this is constant: its std becomes 1."""


@dataclass(frozen=True, eq=False)
class PreparedData:
    """A split, standardized dataset ready for training.

    ``X_train`` (n_train, d) and ``X_val`` (n_val, d) float32, standardized with the training
    part's ``mean`` (d,) and ``std`` (d,) float64. ``Y_train`` (n_train, k) and ``Y_val``
    (n_val, k) float32: one-hot for classification, targets for regression. ``classes`` lists
    the original labels in output order (sorted), or is None for regression.
    """

    X_train: np.ndarray
    Y_train: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    classes: list[Any] | None

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.Y_train.shape[1])


def split_sizes(n: int, validation_fraction: float) -> tuple[int, int]:
    """``(n_train, n_val)`` of ``n`` samples: ``n_val = max(1, round(n * validation_fraction))``.

    Raises DatasetError if the fraction is not in (0, 1) or leaves no training samples.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise fail(
            f"dataset.validation_fraction must be between 0 and 1 (exclusive), "
            f"got {validation_fraction}"
        )
    n_val = max(1, round(n * validation_fraction))
    if n - n_val < 1:
        raise fail(
            f"with {n} samples and dataset.validation_fraction {validation_fraction} the "
            f"validation split takes {n_val} and leaves no training samples; lower "
            "dataset.validation_fraction or add data"
        )
    return n - n_val, n_val


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The train/validation split of ``n`` samples: ``(train, val)`` index arrays.

    ``perm = np.random.default_rng(seed).permutation(n)``; ``n_val`` from :func:`split_sizes`;
    ``val = perm[:n_val]``, ``train = perm[n_val:]``.
    """
    _, n_val = split_sizes(n, validation_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    return perm[n_val:], perm[:n_val]


def standardize(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(X - mean) / std`` as float32: X (n, d), mean (d,), std (d,) -> (n, d).

    Use the training statistics (``PreparedData.mean``/``std``, saved with a model) on new data.
    A std below ``MIN_STD`` counts as 1 (a constant feature).
    """
    X = np.asarray(X)
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if X.ndim != 2 or mean.shape != (X.shape[1],) or std.shape != mean.shape:
        raise fail(
            f"cannot standardize X of shape {X.shape} with mean {mean.shape} and std "
            f"{std.shape}; X needs shape (n, {mean.shape[0] if mean.ndim == 1 else 'd'}), "
            "the number of features the model was trained on"
        )
    std = np.where(std < MIN_STD, 1.0, std)
    standardized: np.ndarray = ((X - mean) / std).astype(np.float32)
    return standardized


def encode_labels(y: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """One-hot encode labels ``y`` (n,) against ``classes`` (k,): (n, k) float32.

    Column j is ``classes[j]``. A label not in ``classes`` raises DatasetError.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise fail(f"labels must be 1-D (n_samples,), got shape {y.shape}")
    known = np.asarray(list(classes))
    if known.ndim != 1 or known.size == 0:
        raise fail("classes must be a non-empty list of labels")
    if np.unique(known).size != known.size:
        raise fail(f"classes {preview(list(classes))} repeat a label; list each class once")
    order = np.argsort(known, kind="stable")
    ordered = known[order]
    position = np.clip(np.searchsorted(ordered, y), 0, known.size - 1)
    found = ordered[position] == y
    if not found.all():
        row = int(np.argmin(found))
        unknown = y[~found]
        raise fail(
            f"label {_python_scalar(y[row])!r} (row {row}) is not one of the classes "
            f"{preview([_python_scalar(c) for c in known])} "
            f"({count(unknown.size, 'label')} unknown); "
            "train on data that has every class, or drop those rows"
        )
    onehot = np.zeros((y.shape[0], known.size), dtype=np.float32)
    onehot[np.arange(y.shape[0]), order[position]] = 1.0
    return onehot


def _python_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


_INT64_BOUND = 2**63  # a whole |label| below this casts to int64 exactly


def class_labels(y: np.ndarray) -> np.ndarray:
    """Classification labels as int64 (n,); whole-number floats are accepted."""
    if y.ndim != 1:
        raise fail(
            f"classification needs y as 1-D integer labels (n_samples,), got shape {y.shape}; "
            "for one-hot y store y.argmax(axis=1), for (n, 1) store y.ravel()"
        )
    if np.issubdtype(y.dtype, np.unsignedinteger) and y.size and int(y.max()) >= _INT64_BOUND:
        row = int(np.argmax(y))
        raise fail(
            f"classification labels must fit a 64-bit integer, but y[{row}] is {int(y[row])}; "
            "number the classes 0, 1, 2, ..."
        )
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64, copy=False)
    fractional = y != np.round(y)
    if fractional.any():
        row = int(np.argmax(fractional))
        raise fail(
            f"classification labels must be integers, but y[{row}] is {float(y[row])!r}; "
            "round the labels, or for continuous targets use loss 'mse' with a linear last layer"
        )
    too_large = np.abs(y) >= _INT64_BOUND  # they would all cast to one int64: classes merged
    if too_large.any():
        row = int(np.argmax(too_large))
        raise fail(
            f"classification labels must fit a 64-bit integer, but y[{row}] is "
            f"{float(y[row])!r}; number the classes 0, 1, 2, ..."
        )
    return y.astype(np.int64)


def prepare(
    X: np.ndarray,
    y: np.ndarray,
    *,
    classification: bool,
    n_outputs: int,
    validation_fraction: float,
    seed: int,
) -> PreparedData:
    """Check, split (see :func:`split_indices`) and standardize ``X`` (n, d) and ``y``.

    Classification: ``y`` (n,) integer labels; ``classes`` are the sorted unique labels of all of
    ``y`` and their number must equal ``n_outputs`` (``model.layers[-1].units``).
    Regression: ``y`` (n,) or (n, k) with ``k == n_outputs``; a 1-D y becomes (n, 1).
    Standardization uses the training part's mean and std only.
    """
    X, y = np.asarray(X), np.asarray(y)
    check_arrays(X, y)
    classes: list[Any] | None
    if classification:
        labels = class_labels(y)
        unique = np.unique(labels)
        classes = [int(c) for c in unique]
        if len(classes) < 2:
            raise fail(
                f"y has a single class ({classes[0]}); classification needs at least 2 classes. "
                "Check the label column, or use loss 'mse' for regression"
            )
        if len(classes) != n_outputs:
            raise fail(
                f"the data has {len(classes)} classes {preview(classes)} but "
                f"model.layers[-1].units is {n_outputs}; set model.layers[-1].units to "
                f"{len(classes)} (one softmax output per class)"
            )
        Y = encode_labels(labels, classes)
    else:
        classes = None
        k = 1 if y.ndim == 1 else int(y.shape[1])
        if k != n_outputs:
            hint = (
                " (if y holds class labels, use loss 'cross_entropy' with a softmax last layer)"
                if k == 1
                else ""
            )
            raise fail(
                f"the data has {k} regression target{'s' if k != 1 else ''} but "
                f"model.layers[-1].units is {n_outputs}; set model.layers[-1].units to {k} "
                f"(one output per target){hint}"
            )
        Y = y.reshape(y.shape[0], k).astype(np.float32)

    train, val = split_indices(X.shape[0], validation_fraction, seed)
    X_train = X[train]
    mean = X_train.mean(axis=0, dtype=np.float64)
    std = X_train.std(axis=0, dtype=np.float64)
    std[std < MIN_STD] = 1.0
    return PreparedData(
        X_train=standardize(X_train, mean, std),
        Y_train=Y[train],
        X_val=standardize(X[val], mean, std),
        Y_val=Y[val],
        mean=mean,
        std=std,
        classes=classes,
    )
