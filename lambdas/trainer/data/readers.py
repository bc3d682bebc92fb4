"""Dataset readers: a .npz or .csv file's bytes to checked arrays ``X`` and ``y``.

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
from collections.abc import Callable

import numpy as np

from trainer.data.errors import count, fail, preview

# --- checks ------------------------------------------------------------------------------------


def _check_numeric(name: str, a: np.ndarray) -> None:
    if a.dtype == object:
        raise fail(f"{name} is an object array; store a numeric (int or float) array")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise fail(
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
    raise fail(
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
        raise fail(
            f"X must be 2-D (n_samples, n_features) but has shape {X.shape}; for one feature "
            "use X.reshape(-1, 1), for images flatten with X.reshape(len(X), -1)"
        )
    if y.ndim not in (1, 2):
        raise fail(
            f"y must be 1-D (n_samples,) labels or 2-D (n_samples, n_targets) targets "
            f"but has shape {y.shape}"
        )
    if X.shape[0] == 0:
        raise fail("X has no rows (0 samples); the dataset needs at least 2 samples")
    if X.shape[1] == 0:
        raise fail("X has no columns (0 features); the dataset needs at least 1 feature")
    if y.shape[0] != X.shape[0]:
        raise fail(
            f"X has {X.shape[0]} rows but y has {y.shape[0]}; they need one label per sample"
        )
    if y.ndim == 2 and y.shape[1] == 0:
        raise fail("y has shape (n, 0): no targets; give y at least one column")
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
        raise fail(f"the file is a single .npy array, not an .npz archive; {_NPZ_HINT}")
    if not data.startswith(_ZIP_MAGIC):
        what = "empty" if not data else "not an .npz (zip) archive"
        raise fail(f"the .npz file is {what}; {_NPZ_HINT}")
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise fail(f"the .npz file is corrupt ({error}); {_NPZ_HINT}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise fail(f"the file is not an .npz archive; {_NPZ_HINT}")
    with loaded:
        names = sorted(loaded.files)
        missing = [key for key in ("X", "y") if key not in loaded.files]
        if missing:
            raise fail(
                f"the .npz file has no array {' or '.join(map(repr, missing))} "
                f"(it has {names}); {_NPZ_HINT}"
            )
        arrays = []
        for key in ("X", "y"):
            try:
                arrays.append(loaded[key])
            except ValueError as error:
                if "object arrays" in str(error).lower():
                    raise fail(
                        f"{key} is an object array (it would need pickle); "
                        "store a numeric (int or float) array"
                    ) from None
                raise fail(f"array {key!r} could not be read ({error}); {_NPZ_HINT}") from None
            except (
                OSError,
                EOFError,
                zipfile.BadZipFile,
                zlib.error,
                RuntimeError,  # a member marked encrypted
                NotImplementedError,  # a compression method zipfile does not read
            ) as error:
                raise fail(
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
        raise fail(f"the CSV file is not UTF-8 text ({error}); save it as UTF-8") from None
    stripped = text.lstrip()
    if not stripped:
        raise fail("the CSV file is empty; it needs a header row and at least one data row")
    header_line, _, body = stripped.partition("\n")
    header_line_number = text[: len(text) - len(stripped)].count("\n") + 1
    try:
        columns = [name.strip() for name in next(csv.reader([header_line]))]
    except csv.Error as error:  # e.g. a lone carriage return (old Mac line ends)
        raise fail(
            f"the CSV header (line {header_line_number}) could not be read ({error}); "
            "end every line with \\n or \\r\\n"
        ) from None
    _check_header(columns)
    if not body.strip():
        raise fail(
            f"the CSV file has a header ({preview(columns)}) but no data rows; add data rows"
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
        raise fail(f"the CSV file could not be parsed ({error})") from None
    if table.shape[1] != len(columns):
        raise fail(
            f"the data rows have {count(table.shape[1], 'value')} but the header has "
            f"{count(len(columns), 'column')}; give every row one value per header column"
        )
    if label is None:
        label_index = len(columns) - 1
    elif label in columns:
        label_index = columns.index(label)
    else:
        raise fail(
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
        raise fail(
            f"the CSV header has {len(columns)} column ({preview(columns)}); it needs at least "
            "one feature column and a label column, separated by commas"
        )
    for position, name in enumerate(columns, start=1):
        if not name:
            raise fail(f"column {position} of the CSV header has no name; name every column")
        if name.isdigit():  # integer names such as pandas' default columns 0, 1, 2, ...
            continue
        try:
            float(name)
        except ValueError:
            continue
        raise fail(
            f"the CSV header looks like data (column {position} is named {name!r}); "
            "add a header row naming the columns as the first line"
        )
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise fail(
            f"the CSV header repeats column names {preview(duplicates)}; make each name unique "
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
            raise fail(
                f"{where} has {count(len(row), 'value')} but the header has "
                f"{count(len(columns), 'column')}; "
                "give every row one value per header column"
            )
        for name, cell in zip(columns, row, strict=True):
            try:
                if "_" in cell:  # float() takes 1_000, np.loadtxt does not
                    raise ValueError(cell)
                float(cell)
            except ValueError:
                if not cell.strip():
                    raise fail(
                        f"{where}, column {name!r} is empty (a missing value); "
                        "fill or drop missing values before training"
                    ) from None
                raise fail(
                    f"{where}, column {name!r}: {cell.strip()!r} is not a number; CSV datasets "
                    "must be all-numeric (encode categories as integers first)"
                ) from None


def read_dataset(data: bytes, name: str, label: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a dataset file by its name's extension (.npz or .csv); see :func:`read_npz`,
    :func:`read_csv`. Returns ``X`` (n, d) and ``y`` (n,) or (n, k)."""
    lowered = name.lower()
    if lowered.endswith(".npz"):
        if label is not None:
            raise fail(
                f"dataset.label ({label!r}) applies to CSV files only; remove it for {name!r} "
                "(an .npz file holds the labels in its array 'y')"
            )
        return read_npz(data)
    if lowered.endswith(".csv"):
        return read_csv(data, label)
    raise fail(f"cannot tell the format of {name!r}; use a file ending in .npz or .csv")
