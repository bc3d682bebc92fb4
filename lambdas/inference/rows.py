"""The rows to predict, from what a caller sends: JSON rows, a CSV file or an ``.npz`` file.

Formats (d = the model's ``n_features``):

* **JSON** (online): ``{"rows": [[x_11, …, x_1d], …]}``, a list of rows, each a list of d JSON
  numbers. Other keys are an error (so a typo such as ``"row"`` or ``"instances"`` is named).
* **CSV** (batch, ``stepnet predict``): a header line naming the d feature columns (the names are
  not checked, the count is), then one line per row of d numbers, comma-separated; fields may be
  double-quoted; blank lines are skipped. No label column.
* **.npz** (batch, ``stepnet predict``): an array ``X`` of shape (n, d), integer or float (other
  arrays, such as a ``y``, are ignored), as ``numpy.savez(path, X=X)`` writes it.

Every problem raises :class:`~inference.errors.InputError` whose message names the row and
column and says how to fix it: wrong column count, a non-numeric or empty field, NaN or ±Inf,
no rows, or more than one invocation takes (:class:`Limits`).

Rows come back as an (n, d) array of the input's numbers: float64 from JSON and CSV (every
decimal is parsed to the nearest double, as training's CSV reader does), the stored dtype from
``.npz``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.errors import InputError

MiB = 1024 * 1024

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * MiB
"""Lambda's limit on a synchronous invocation's request and on its response (API Gateway's
own 10 MB limit is higher, so Lambda's is the one that binds)."""

JSON_NUMBER_BYTES = 26
"""The most a response spends on one number: ``json.dumps`` writes a float32 value as the
float64 that equals it, at most 24 characters (``-0.00012345678437687457``), plus ``", "``."""

ONLINE_MAX_OUTPUT_CELLS = 200_000
"""rows × (outputs + 1) of one online response: 200,000 × 26 B = 5.0 MiB, under the 6 MB
response limit with room for the rest of the document. 18,181 rows for 10 classes."""

DEFAULT_MEMORY_MB = 1769
"""The batch function's memory when ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` (set by Lambda) is not:
one full vCPU, the size of the training functions."""

BATCH_BYTES_PER_CELL = 32
"""What one input number costs a batch invocation at its peak, with 2× headroom: the file's
text (~8 B per CSV number), the parsed float64 (8 B) and the standardized float32 (4 B)."""


@dataclass(frozen=True)
class Limits:
    """How much one invocation accepts.

    Attributes:
        max_input_bytes: the request body or input file, in bytes.
        max_cells: rows × d of the parsed input.
        max_output_cells: rows × (outputs + 1) of the result.
        fix: how to split work that is too large, e.g. ``"send {at_most} rows per request"``
            (``{at_most}`` becomes "at most 4,012", or "fewer" when only the bytes are known).
    """

    max_input_bytes: int
    max_cells: int
    max_output_cells: int
    fix: str

    def max_rows(self, n_features: int, n_outputs: int) -> int:
        """The most rows of ``n_features`` numbers whose result has ``n_outputs`` columns."""
        return min(self.max_cells // max(1, n_features), self.max_output_cells // (n_outputs + 1))

    def check_rows(self, n_rows: int, n_features: int, n_outputs: int) -> None:
        """InputError if ``n_rows`` rows are more than one invocation takes."""
        most = self.max_rows(n_features, n_outputs)
        if n_rows > most:
            raise InputError(
                f"too large for one invocation: {n_rows:,} rows of {n_features} features "
                f"(at most {most:,} rows for this model); "
                + self.fix.format(at_most=f"at most {most:,}")
            )

    def check_bytes(self, n_bytes: int, what: str) -> None:
        """InputError if an input of ``n_bytes`` is more than one invocation takes."""
        if n_bytes > self.max_input_bytes:
            raise InputError(
                f"too large for one invocation: the {what} has {n_bytes:,} bytes, more than "
                f"{self.max_input_bytes:,}; " + self.fix.format(at_most="fewer")
            )


def online_limits() -> Limits:
    """One synchronous request: a body of at most 6 MB (Lambda's limit, checked here too so the
    reason is ours) and a response under 6 MB (``ONLINE_MAX_OUTPUT_CELLS``). A JSON number takes
    at least 2 bytes (``0,``), so 6 MB of body is at most ~3.1 M cells."""
    return Limits(
        max_input_bytes=LAMBDA_SYNC_PAYLOAD_BYTES,
        max_cells=LAMBDA_SYNC_PAYLOAD_BYTES // 2,
        max_output_cells=ONLINE_MAX_OUTPUT_CELLS,
        fix="send {at_most} rows per request, or put them in a file under "
        "inference/<pipeline>/in/ for batch predictions",
    )


def batch_limits(memory_mb: int = DEFAULT_MEMORY_MB) -> Limits:
    """One batch file in a function of ``memory_mb``: at most memory / ``BATCH_BYTES_PER_CELL``
    input numbers (1769 MB: 58 M, 73,936 rows of 784 features) and a file of at most a quarter
    of the memory (1769 MB: 442 MiB). The output (k + 1 short strings a row) is bounded by the
    same count."""
    memory = memory_mb * MiB
    cells = memory // BATCH_BYTES_PER_CELL
    return Limits(
        max_input_bytes=memory // 4,
        max_cells=cells,
        max_output_cells=cells,
        fix="split it into files of {at_most} rows (the limit follows the "
        f"function's memory, {memory_mb} MB)",
    )


# --- JSON ----------------------------------------------------------------------------------------


def parse_json_rows(
    body: bytes | str, n_features: int, n_outputs: int, limits: Limits
) -> np.ndarray:
    """Rows from a JSON request body ``{"rows": [[…], …]}``: float64 (n, d)."""
    size = len(body.encode() if isinstance(body, str) else body)
    limits.check_bytes(size, "request body")
    if size == 0:
        raise InputError('the request body is empty; send {"rows": [[x1, …, xd], …]}')
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(
            f'the request body is not valid JSON ({error}); send {{"rows": [[x1, …, xd], …]}}'
        ) from None
    if not isinstance(document, dict) or set(document) != {"rows"}:
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise InputError(
            f'the request body must be a JSON object with the one key "rows" (a list of rows of '
            f"{n_features} numbers); got {found}"
        )
    rows = document["rows"]
    if not isinstance(rows, list) or not rows:
        raise InputError(
            f'"rows" must be a non-empty list of rows, each a list of {n_features} numbers'
        )
    limits.check_rows(len(rows), n_features, n_outputs)
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n_features:
            got = f"{len(row)} values" if isinstance(row, list) else f"a {type(row).__name__}"
            raise InputError(
                f"rows[{index}] has {got}; the model takes {n_features} features per row, "
                "a list of numbers in the training data's column order"
            )
        kinds = set(map(type, row))
        if not kinds <= {int, float}:
            column = next(i for i, v in enumerate(row) if type(v) not in (int, float))
            raise InputError(
                f"rows[{index}][{column}] is {json.dumps(row[column])}, not a number; "
                "send every feature as a JSON number"
            )
    try:
        X = np.array(rows, dtype=np.float64)
    except OverflowError:
        raise InputError("a value is too large for a float64; send finite numbers") from None
    _check_finite(X, lambda r, c: f"rows[{r}][{c}]")
    return X


# --- CSV -----------------------------------------------------------------------------------------


def parse_csv(data: bytes, n_features: int, n_outputs: int, limits: Limits) -> np.ndarray:
    """Rows from a CSV file's bytes (a header of d column names, then rows): float64 (n, d)."""
    limits.check_bytes(len(data), "file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"the CSV file is not UTF-8 text ({error})") from None
    header_line, _, body = text.partition("\n")
    header_line = header_line.rstrip("\r")
    if not header_line.strip():
        raise InputError(
            "the CSV file is empty or starts with a blank line; its first line must name the "
            f"{n_features} feature columns"
        )
    header = next(csv.reader([header_line]))
    if len(header) != n_features:
        raise InputError(_header_problem(header, n_features))
    if _all_numbers(header):
        raise InputError(
            "the CSV file's first line is numbers, not column names; add a header line naming "
            f"the {n_features} feature columns"
        )
    if not body.strip():
        raise InputError("the CSV file has a header but no rows; add at least one row")
    # Lines bound the rows from above (blank ones count too): stop before parsing what cannot fit.
    limits.check_rows(body.count("\n") + (not body.endswith("\n")), n_features, n_outputs)
    try:
        X = np.loadtxt(
            io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2, comments=None,
            quotechar='"',
        )  # fmt: skip
    except ValueError:
        raise InputError(_locate_csv_problem(body, header)) from None
    if X.shape[1] != n_features:  # loadtxt took every line but they have another width
        raise InputError(_locate_csv_problem(body, header))
    _check_finite(
        X, lambda r, c: f"row {r + 1} (blank lines not counted), column {c + 1} ({header[c]!r})"
    )
    return X


def _all_numbers(fields: list[str]) -> bool:
    try:
        [float(field) for field in fields]
    except ValueError:
        return False
    return True


def _header_problem(header: list[str], n_features: int) -> str:
    message = (
        f"the CSV header has {len(header)} columns but the model takes {n_features} features; "
        f"the first line must name exactly the {n_features} feature columns"
    )
    if len(header) == n_features + 1:
        message += f" (is the last column, {header[-1]!r}, the label? drop it)"
    return message


def _locate_csv_problem(body: str, header: list[str]) -> str:
    """The first bad field of a CSV body that ``np.loadtxt`` rejected, as a message."""
    row = 0
    for line_number, fields in enumerate(csv.reader(io.StringIO(body)), start=2):
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line
        row += 1
        where = f"row {row} (line {line_number})"
        if len(fields) != len(header):
            return (
                f"{where} has {len(fields)} fields but the header names {len(header)} columns; "
                f"every row needs {len(header)} comma-separated numbers"
            )
        for column, field in enumerate(fields):
            try:
                float(field)
            except ValueError:
                shown = repr(field) if field.strip() else "empty"
                return (
                    f"{where}, column {column + 1} ({header[column]!r}) is {shown}, not a "
                    "number; every field must be a number (no empty fields)"
                )
    return "the CSV rows could not be read as numbers; check the delimiter (a comma) and quoting"


# --- .npz ----------------------------------------------------------------------------------------


def parse_npz(data: bytes, n_features: int, n_outputs: int, limits: Limits) -> np.ndarray:
    """Rows from an ``.npz`` file's bytes: its array ``X`` (n, d), in its stored dtype."""
    limits.check_bytes(len(data), "file")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InputError(
            "the .npz file is not a zip archive; write it with numpy.savez(path, X=X)"
        ) from None
    with archive:
        if "X.npy" not in archive.namelist():
            members = sorted(name.removesuffix(".npy") for name in archive.namelist())
            raise InputError(
                f"the .npz file has no array X (it has {members}); save the rows as X: "
                "numpy.savez(path, X=X)"
            )
        try:
            with archive.open("X.npy") as member:  # the header first: refuse before loading
                shape, dtype = _read_header(member)
            _check_npz_shape(shape, dtype, n_features, n_outputs, limits)
            with archive.open("X.npy") as member:
                X = np.lib.format.read_array(member, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            if isinstance(error, InputError):
                raise
            raise InputError(f"X in the .npz file cannot be read: {error}") from None
    _check_finite(X, lambda r, c: f"X[{r}, {c}]")
    return X


def _read_header(member: Any) -> tuple[tuple[int, ...], np.dtype[Any]]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _check_npz_shape(
    shape: tuple[int, ...], dtype: np.dtype[Any], n_features: int, n_outputs: int, limits: Limits
) -> None:
    if len(shape) != 2 or shape[1] != n_features:
        raise InputError(
            f"X has shape {shape}; the model takes rows of {n_features} features: X must have "
            f"shape (n, {n_features})"
        )
    if dtype.kind not in "iuf":
        raise InputError(f"X has dtype {dtype}; it must hold integers or floats (X.astype(float))")
    if shape[0] == 0:
        raise InputError("X has no rows; save at least one row")
    limits.check_rows(shape[0], n_features, n_outputs)


# --- any file ------------------------------------------------------------------------------------

SUFFIXES = (".csv", ".npz")


def parse_file(
    name: str, data: bytes, n_features: int, n_outputs: int, limits: Limits
) -> np.ndarray:
    """Rows from a file named ``name`` (its suffix says the format: ``.csv`` or ``.npz``)."""
    lower = name.lower()
    if lower.endswith(".csv"):
        return parse_csv(data, n_features, n_outputs, limits)
    if lower.endswith(".npz"):
        return parse_npz(data, n_features, n_outputs, limits)
    raise InputError(
        f"{name!r} is neither a .csv nor an .npz file; name the input <name>.csv (a header of "
        "feature columns, then rows) or <name>.npz (an array X)"
    )


def _check_finite(X: np.ndarray, where: Any) -> None:
    if X.dtype.kind != "f":
        return
    finite = np.isfinite(X)
    if not finite.all():
        r, c = (int(i) for i in np.argwhere(~finite)[0])
        value = float(X[r, c])
        shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        bad = int((~finite).sum())
        raise InputError(
            f"{where(r, c)} is {shown} ({bad} non-finite value{'s' * (bad != 1)} in all); the "
            "model needs finite numbers: fill in or drop those rows"
        )
