"""Datasets: read a .npz or .csv file, check it, split it and standardize it.

Ships to AWS Lambda, so numpy only: pure functions over bytes and arrays, no I/O of their own.
Shapes use ``n`` samples, ``d`` features and ``k`` outputs (classes, or regression targets).

The file formats:

* ``.npz`` (``numpy.savez(path, X=X, y=y)``): ``X`` is ``(n, d)`` numeric; ``y`` is ``(n,)``
  integer class labels, or ``(n,)`` / ``(n, k)`` float regression targets.
* ``.csv``: numeric, with a header row naming the columns; the label column is named by
  ``dataset.label`` (default: the last column), every other column is a feature.

Every problem raises :class:`DatasetError`, whose message names the problem and the fix.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_STD = 1e-12
"""A feature whose training standard deviation is below this is constant: its std becomes 1."""

_PREVIEW = 10  # how many classes / columns a message lists before "..."


class DatasetError(ValueError):
    """A dataset that cannot be used; the message says what is wrong and how to fix it."""


def _fail(message: str) -> DatasetError:
    return DatasetError(f"dataset: {message}")


def _count(number: int, noun: str) -> str:
    """``1 value``, ``3 values``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _preview(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in values[:_PREVIEW])
    return f"[{shown}{', ...' if len(values) > _PREVIEW else ''}]"


# --- checks ------------------------------------------------------------------------------------


def _check_numeric(name: str, a: np.ndarray) -> None:
    if a.dtype == object:
        raise _fail(f"{name} is an object array; store a numeric (int or float) array")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise _fail(
            f"{name} has dtype {a.dtype}, which is not numeric; "
            f"store it as int or float (e.g. {name}.astype('float32'))"
        )


def _check_finite(name: str, a: np.ndarray, locate: Callable[[tuple[int, ...]], str]) -> None:
    """Raise if a float array holds NaN or ±inf; ``locate`` describes an index for the message."""
    if not np.issubdtype(a.dtype, np.floating):
        return
    bad = ~np.isfinite(a)
    if not bad.any():
        return
    n_nan = int(np.isnan(a).sum())
    n_inf = int(bad.sum()) - n_nan
    kinds = " and ".join(
        f"{count} {kind}" for count, kind in ((n_nan, "NaN"), (n_inf, "infinite")) if count
    )
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise _fail(
        f"{name} has {kinds} value{'' if n_nan + n_inf == 1 else 's'} "
        f"(first at {locate(first)}); "
        "clean or impute them before training"
    )


def _array_position(index: tuple[int, ...]) -> str:
    if len(index) == 1:
        return f"row {index[0]}"
    return f"row {index[0]}, column {index[1]}"


def check_arrays(X: np.ndarray, y: np.ndarray) -> None:
    """Check ``X`` (n, d) and ``y`` (n,) or (n, k): numeric, non-empty, matching n, finite.

    The checks :func:`read_npz` applies; raises DatasetError. Row/column numbers are 0-based.
    """
    X, y = np.asarray(X), np.asarray(y)
    _check_numeric("X", X)
    _check_numeric("y", y)
    if X.ndim != 2:
        raise _fail(
            f"X must be 2-D (n_samples, n_features) but has shape {X.shape}; for one feature "
            "use X.reshape(-1, 1), for images flatten with X.reshape(len(X), -1)"
        )
    if y.ndim not in (1, 2):
        raise _fail(
            f"y must be 1-D (n_samples,) labels or 2-D (n_samples, n_targets) targets "
            f"but has shape {y.shape}"
        )
    if X.shape[0] == 0:
        raise _fail("X has no rows (0 samples); the dataset needs at least 2 samples")
    if X.shape[1] == 0:
        raise _fail("X has no columns (0 features); the dataset needs at least 1 feature")
    if y.shape[0] != X.shape[0]:
        raise _fail(
            f"X has {X.shape[0]} rows but y has {y.shape[0]}; they need one label per sample"
        )
    if y.ndim == 2 and y.shape[1] == 0:
        raise _fail("y has shape (n, 0): no targets; give y at least one column")
    _check_finite("X", X, _array_position)
    _check_finite("y", y, _array_position)


# --- readers -----------------------------------------------------------------------------------

_NPZ_HINT = "write it with numpy.savez(path, X=X, y=y)"
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip


def read_npz(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read an .npz holding ``X`` (n, d) numeric and ``y`` (n,) or (n, k); checked.

    Returns the arrays with their stored dtypes. Never unpickles (``allow_pickle=False``).
    """
    if data.startswith(_NPY_MAGIC):
        raise _fail(f"the file is a single .npy array, not an .npz archive; {_NPZ_HINT}")
    if not data.startswith(_ZIP_MAGIC):
        what = "empty" if not data else "not an .npz (zip) archive"
        raise _fail(f"the .npz file is {what}; {_NPZ_HINT}")
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise _fail(f"the .npz file is corrupt ({error}); {_NPZ_HINT}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise _fail(f"the file is not an .npz archive; {_NPZ_HINT}")
    with loaded:
        names = sorted(loaded.files)
        missing = [key for key in ("X", "y") if key not in loaded.files]
        if missing:
            raise _fail(
                f"the .npz file has no array {' or '.join(map(repr, missing))} "
                f"(it has {names}); {_NPZ_HINT}"
            )
        arrays = []
        for key in ("X", "y"):
            try:
                arrays.append(loaded[key])
            except ValueError as error:
                if "object arrays" in str(error).lower():
                    raise _fail(
                        f"{key} is an object array (it would need pickle); "
                        "store a numeric (int or float) array"
                    ) from None
                raise _fail(f"array {key!r} could not be read ({error}); {_NPZ_HINT}") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
                raise _fail(
                    f"the .npz file is corrupt: array {key!r} could not be read ({error}); "
                    f"{_NPZ_HINT}"
                ) from None
    X, y = arrays
    check_arrays(X, y)
    return X, y


def read_csv(data: bytes, label: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a numeric CSV with a header row; returns ``X`` (n, d) and ``y`` (n,), float64.

    ``label`` names the label column (default: the last column); all other columns are features.
    Messages number data rows from 1 (the first row after the header) and name the column.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _fail(f"the CSV file is not UTF-8 text ({error}); save it as UTF-8") from None
    stripped = text.lstrip()
    if not stripped:
        raise _fail("the CSV file is empty; it needs a header row and at least one data row")
    header_line, _, body = stripped.partition("\n")
    header_line_number = text[: len(text) - len(stripped)].count("\n") + 1
    columns = [name.strip() for name in next(csv.reader([header_line]))]
    _check_header(columns)
    if not body.strip():
        raise _fail(
            f"the CSV file has a header ({_preview(columns)}) but no data rows; add data rows"
        )
    try:
        table = np.loadtxt(
            io.StringIO(body),
            delimiter=",",
            dtype=np.float64,
            comments=None,
            quotechar='"',
            ndmin=2,
        )
    except ValueError as error:
        _diagnose_csv(body, columns, header_line_number)
        raise _fail(f"the CSV file could not be parsed ({error})") from None
    if table.shape[1] != len(columns):
        raise _fail(
            f"the data rows have {_count(table.shape[1], 'value')} but the header has "
            f"{_count(len(columns), 'column')}; give every row one value per header column"
        )
    if label is None:
        label_index = len(columns) - 1
    elif label in columns:
        label_index = columns.index(label)
    else:
        raise _fail(
            f"dataset.label {label!r} is not a column of the CSV file; "
            f"the columns are {columns} (default: the last one)"
        )

    def locate(index: tuple[int, ...]) -> str:
        return f"data row {index[0] + 1}, column {columns[index[1]]!r}"

    _check_finite("the CSV file", table, locate)
    y = table[:, label_index].copy()
    X = np.delete(table, label_index, axis=1)
    check_arrays(X, y)
    return X, y


def _check_header(columns: list[str]) -> None:
    if len(columns) < 2:
        raise _fail(
            f"the CSV header has {len(columns)} column ({_preview(columns)}); it needs at least "
            "one feature column and a label column, separated by commas"
        )
    for position, name in enumerate(columns, start=1):
        if not name:
            raise _fail(f"column {position} of the CSV header has no name; name every column")
        if name.isdigit():  # integer names such as pandas' default columns 0, 1, 2, ...
            continue
        try:
            float(name)
        except ValueError:
            continue
        raise _fail(
            f"the CSV header looks like data (column {position} is named {name!r}); "
            "add a header row naming the columns as the first line"
        )
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise _fail(
            f"the CSV header repeats column names {_preview(duplicates)}; make each name unique "
            "(if the first line is data, add a header row naming the columns)"
        )


def _diagnose_csv(body: str, columns: list[str], header_line_number: int) -> None:
    """Raise a DatasetError naming the first bad row or cell of ``body`` (after the header)."""
    reader = csv.reader(body.splitlines())
    data_row = 0
    for row in reader:
        line = header_line_number + reader.line_num
        if not row:  # an empty line, which np.loadtxt skips too
            continue
        data_row += 1
        where = f"line {line} (data row {data_row})"
        if len(row) != len(columns):
            raise _fail(
                f"{where} has {_count(len(row), 'value')} but the header has "
                f"{_count(len(columns), 'column')}; "
                "give every row one value per header column"
            )
        for name, cell in zip(columns, row, strict=True):
            try:
                if "_" in cell:  # float() takes 1_000, np.loadtxt does not
                    raise ValueError(cell)
                float(cell)
            except ValueError:
                if not cell.strip():
                    raise _fail(
                        f"{where}, column {name!r} is empty (a missing value); "
                        "fill or drop missing values before training"
                    ) from None
                raise _fail(
                    f"{where}, column {name!r}: {cell.strip()!r} is not a number; CSV datasets "
                    "must be all-numeric (encode categories as integers first)"
                ) from None


def read_dataset(data: bytes, name: str, label: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a dataset file by its name's extension (.npz or .csv); see :func:`read_npz`,
    :func:`read_csv`. Returns ``X`` (n, d) and ``y`` (n,) or (n, k)."""
    lowered = name.lower()
    if lowered.endswith(".npz"):
        if label is not None:
            raise _fail(
                f"dataset.label ({label!r}) applies to CSV files only; remove it for {name!r} "
                "(an .npz file holds the labels in its array 'y')"
            )
        return read_npz(data)
    if lowered.endswith(".csv"):
        return read_csv(data, label)
    raise _fail(f"cannot tell the format of {name!r}; use a file ending in .npz or .csv")


# --- preparation -------------------------------------------------------------------------------


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


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The train/validation split of ``n`` samples: ``(train, val)`` index arrays.

    ``perm = np.random.default_rng(seed).permutation(n)``; ``n_val = max(1, round(n *
    validation_fraction))``; ``val = perm[:n_val]``, ``train = perm[n_val:]``.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise _fail(
            f"dataset.validation_fraction must be between 0 and 1 (exclusive), "
            f"got {validation_fraction}"
        )
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * validation_fraction))
    if n - n_val < 1:
        raise _fail(
            f"with {n} samples and dataset.validation_fraction {validation_fraction} the "
            f"validation split takes {n_val} and leaves no training samples; lower "
            "dataset.validation_fraction or add data"
        )
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
        raise _fail(
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
        raise _fail(f"labels must be 1-D (n_samples,), got shape {y.shape}")
    known = np.asarray(list(classes))
    if known.ndim != 1 or known.size == 0:
        raise _fail("classes must be a non-empty list of labels")
    if np.unique(known).size != known.size:
        raise _fail(f"classes {_preview(list(classes))} repeat a label; list each class once")
    order = np.argsort(known, kind="stable")
    ordered = known[order]
    position = np.clip(np.searchsorted(ordered, y), 0, known.size - 1)
    found = ordered[position] == y
    if not found.all():
        row = int(np.argmin(found))
        unknown = y[~found]
        raise _fail(
            f"label {_python_scalar(y[row])!r} (row {row}) is not one of the classes "
            f"{_preview([_python_scalar(c) for c in known])} "
            f"({_count(unknown.size, 'label')} unknown); "
            "train on data that has every class, or drop those rows"
        )
    onehot = np.zeros((y.shape[0], known.size), dtype=np.float32)
    onehot[np.arange(y.shape[0]), order[position]] = 1.0
    return onehot


def _python_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _class_labels(y: np.ndarray) -> np.ndarray:
    """Classification labels as int64 (n,); whole-number floats are accepted."""
    if y.ndim != 1:
        raise _fail(
            f"classification needs y as 1-D integer labels (n_samples,), got shape {y.shape}; "
            "for one-hot y store y.argmax(axis=1), for (n, 1) store y.ravel()"
        )
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64, copy=False)
    fractional = y != np.round(y)
    if fractional.any():
        row = int(np.argmax(fractional))
        raise _fail(
            f"classification labels must be integers, but y[{row}] is {float(y[row])!r}; "
            "round the labels, or for continuous targets use loss 'mse' with a linear last layer"
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
        labels = _class_labels(y)
        unique = np.unique(labels)
        classes = [int(c) for c in unique]
        if len(classes) < 2:
            raise _fail(
                f"y has a single class ({classes[0]}); classification needs at least 2 classes. "
                "Check the label column, or use loss 'mse' for regression"
            )
        if len(classes) != n_outputs:
            raise _fail(
                f"the data has {len(classes)} classes {_preview(classes)} but "
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
            raise _fail(
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
