"""inference.rows: JSON rows, CSV and .npz inputs, every bad input named, the invocation limits."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from inference.errors import InputError
from inference.rows import (
    Limits,
    batch_limits,
    online_limits,
    parse_csv,
    parse_file,
    parse_json_rows,
    parse_npz,
)

D, K = 3, 2  # features and outputs of the model the rows are for
ROWS = [[1.5, -2.0, 3.25], [0.0, 1e-3, 7.0]]
UNLIMITED = Limits(max_input_bytes=10**9, max_cells=10**9, max_output_cells=10**9, fix="")


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_json_rows_parse_to_float64() -> None:
    # When
    X = parse_json_rows(json.dumps({"rows": ROWS}), D, K, online_limits())

    # Then
    assert X.dtype == np.float64 and np.array_equal(X, np.array(ROWS))


@pytest.mark.parametrize(
    "text",
    [
        "a,b,c\n1.5,-2,3.25\n0,0.001,7\n",  # plain
        "a,b,c\r\n1.5,-2,3.25\r\n0,0.001,7\r\n",  # CRLF
        'a,"b",c\n"1.5",-2,3.25\n\n0,1e-3,7',  # quotes, a blank line, no final newline
        "\ufeffa,b,c\n1.5,-2,3.25\n0,0.001,7\n",  # a byte-order mark
    ],
)
def test_csv_rows_parse_to_float64(text: str) -> None:
    # When
    X = parse_csv(text.encode(), D, K, UNLIMITED)

    # Then
    assert X.dtype == np.float64 and np.array_equal(X, np.array(ROWS))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_npz_rows_keep_their_dtype_and_other_arrays_are_ignored(dtype: type[np.generic]) -> None:
    # Given
    X = np.array(ROWS).astype(dtype)

    # When
    parsed = parse_npz(npz(X=X, y=np.zeros(2)), D, K, UNLIMITED)

    # Then
    assert parsed.dtype == dtype and np.array_equal(parsed, X)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "body is empty"),
        ("{", "not valid JSON"),
        ("[[1, 2, 3]]", 'one key "rows"'),
        ('{"instances": [[1, 2, 3]]}', r"got \['instances'\]"),
        ('{"rows": []}', "non-empty list"),
        ('{"rows": [[1, 2, 3], [1, 2]]}', r"rows\[1\] has 2 values; the model takes 3 features"),
        ('{"rows": [1, 2, 3]}', r"rows\[0\] has a int"),
        ('{"rows": [[1, "2", 3]]}', r'rows\[0\]\[1\] is "2", not a number'),
        ('{"rows": [[1, 2, null]]}', r"rows\[0\]\[2\] is null, not a number"),
        ('{"rows": [[1, true, 3]]}', r"rows\[0\]\[1\] is true, not a number"),
        ('{"rows": [[1, 2, NaN]]}', r"rows\[0\]\[2\] is NaN"),
        ('{"rows": [[1, 2, 3], [1e999, 2, 3]]}', r"rows\[1\]\[0\] is Infinity"),
    ],
)
def test_bad_json_rows_are_named(body: str, message: str) -> None:
    # When / Then
    with pytest.raises(InputError, match=message):
        parse_json_rows(body, D, K, online_limits())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a,b\n1,2\n", "header has 2 columns but the model takes 3"),
        ("a,b,c,label\n1,2,3,0\n", "is the last column, 'label', the label"),
        ("1,2,3\n4,5,6\n", "first line is numbers, not column names"),
        ("a,b,c\n", "no rows"),
        ("a,b,c\n1,2,3\n4,5\n", r"row 2 \(line 3\) has 2 fields but the header names 3"),
        ("a,b,c\n1,2,3\n\n4,5,6,7\n", r"row 2 \(line 4\) has 4 fields"),
        ("a,b,c\n1,x,3\n", r"row 1 \(line 2\), column 2 \('b'\) is 'x', not a number"),
        ("a,b,c\n1,2,3\n1,,3\n", r"row 2 \(line 3\), column 2 \('b'\) is empty"),
        ("a,b,c\n1,2,3\n1,2,nan\n", r"row 2 .*column 3 \('c'\) is NaN"),
        ("a,b,c\n1,-inf,3\n", r"row 1 .*column 2 \('b'\) is -Infinity"),
        ("a;b;c\n1;2;3\n", "header has 1 columns"),
    ],
)
def test_bad_csv_files_are_named(text: str, message: str) -> None:
    # When / Then
    with pytest.raises(InputError, match=message):
        parse_csv(text.encode(), D, K, UNLIMITED)


def test_a_csv_that_is_not_utf8_is_named() -> None:
    # When / Then
    with pytest.raises(InputError, match="not UTF-8"):
        parse_csv(b"a,b,c\n\xff,2,3\n", D, K, UNLIMITED)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip", "not a zip archive"),
        (npz(x=np.zeros((2, 3))), r"no array X \(it has \['x'\]\)"),
        (npz(X=np.zeros((2, 4))), r"X has shape \(2, 4\); .* \(n, 3\)"),
        (npz(X=np.zeros(3)), r"X has shape \(3,\)"),
        (npz(X=np.zeros((0, 3))), "no rows"),
        (npz(X=np.array([["a", "b", "c"]])), "dtype <U1"),
        (npz(X=np.zeros((2, 3), dtype=bool)), "dtype bool"),
        (npz(X=np.array([[1.0, np.nan, 2.0]])), r"X\[0, 1\] is NaN"),
        (npz(X=np.array([[1.0, 2.0, 3.0], [0.0, 0.0, np.inf]], dtype=np.float32)), r"X\[1, 2\]"),
    ],
)
def test_bad_npz_files_are_named(data: bytes, message: str) -> None:
    # When / Then
    with pytest.raises(InputError, match=message):
        parse_npz(data, D, K, UNLIMITED)


def test_files_are_told_apart_by_suffix() -> None:
    # When
    from_csv = parse_file("rows.CSV", b"a,b,c\n1,2,3\n", D, K, UNLIMITED)
    from_npz = parse_file("rows.npz", npz(X=np.ones((1, 3))), D, K, UNLIMITED)

    # Then
    assert from_csv.shape == from_npz.shape == (1, 3)
    with pytest.raises(InputError, match=r"neither a \.csv nor an \.npz"):
        parse_file("rows.parquet", b"", D, K, UNLIMITED)


def test_online_limits_follow_the_6_mb_response() -> None:
    # Given
    limits = online_limits()

    # Then: 200,000 output cells (10 classes + a label = 11 a row), and at most 6 MB / 2 input
    # numbers (each takes at least "0,")
    assert limits.max_input_bytes == 6 * 1024 * 1024
    assert limits.max_rows(n_features=3, n_outputs=10) == 200_000 // 11
    assert limits.max_rows(n_features=784, n_outputs=10) == 3 * 1024 * 1024 // 784 == 4012
    body = json.dumps({"rows": [[0, 0, 0]] * (200_000 // 3 + 1)})
    with pytest.raises(
        InputError, match=r"too large for one invocation: 66,667 rows .* at most 66,666 rows"
    ):
        parse_json_rows(body, D, K, limits)


def test_batch_limits_follow_the_function_memory() -> None:
    # Given
    limits = batch_limits(1769)

    # Then: 32 bytes per input number, a file of a quarter of the memory
    assert limits.max_rows(n_features=784, n_outputs=10) == 1769 * 2**20 // 32 // 784 == 73_936
    assert limits.max_input_bytes == 1769 * 2**20 // 4
    assert batch_limits(3538).max_rows(784, 10) == 147_873


def test_too_many_rows_are_refused_before_parsing() -> None:
    # Given a limit of 2 rows
    limits = Limits(
        max_input_bytes=10**6, max_cells=2 * D, max_output_cells=10**6, fix="split: {at_most}"
    )

    # When / Then: CSV lines and the .npz header are counted before anything is parsed
    with pytest.raises(
        InputError,
        match=r"3 rows of 3 features \(at most 2 rows for this model\); split: at most 2$",
    ):
        parse_csv(b"a,b,c\n1,2,3\n1,2,3\nnot,even,numbers\n", D, K, limits)
    with pytest.raises(InputError, match="3 rows"):
        parse_npz(npz(X=np.zeros((3, 3))), D, K, limits)
    with pytest.raises(InputError, match=r"the file has 1,000,001 bytes.*; split: fewer$"):
        parse_csv(b"x" * (10**6 + 1), D, K, limits)
