"""Hostile dataset files (hypothesis): .npz and .csv bytes with wrong shapes and dtypes, NaN/Inf,
huge values, mixed labels, quotes, formulas and unicode, truncated or empty, under right and
wrong extensions. Every one is read into checked arrays or refused with a DatasetError that
says what is wrong; never another exception — by the Lambdas' reader and shard check and by the
CLI's header reader alike."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stepnet.sources import shape_of
from trainer.data.errors import DatasetError
from trainer.data.prepare import class_labels
from trainer.data.readers import read_dataset
from trainer.data.shards import check_shard

DTYPES = st.sampled_from(
    ["float64", "float32", "float16", "int64", "int8", "uint8", "bool", "complex64", "U3", "S2",
     "datetime64[s]", "timedelta64[s]"]
)  # fmt: skip
HOSTILE_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from(
    [1e308, -1e308, 2.0**63, 1e30, -0.0]
)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    if dtype.kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=8 * dtype.itemsize)
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    """An .npz archive of hostile arrays under X, y or other names, maybe compressed, maybe
    truncated or with a byte changed."""
    n = draw(st.integers(min_value=0, max_value=8))
    if draw(st.booleans()):  # plausible: n rows of X and n labels, hostile values
        X = draw(hnp.arrays(np.float64, (n, draw(st.integers(0, 4))), elements=HOSTILE_FLOATS))
        y = draw(
            hnp.arrays(np.int64, (n,), elements=st.integers(-(2**63), 2**63 - 1))
            | hnp.arrays(np.float64, (n,), elements=HOSTILE_FLOATS)
            | hnp.arrays(np.float32, (n, draw(st.integers(0, 3))))
        )
        content: dict[str, Any] = {"X": X, "y": y}
    else:
        content = {"X": draw(arrays()), "y": draw(arrays())}
    for key in draw(st.sets(st.sampled_from(["X", "y", "x", "Y", "labels"]), max_size=2)):
        if key in content:
            del content[key]
        else:
            content[key] = draw(arrays())
    buffer = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, **content)
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    return data


CELLS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    HOSTILE_FLOATS.map(repr),
    st.sampled_from(
        [
            "",
            " ",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e999",
            "1_000",
            "0x1F",
            "=1+2",
            '=HYPERLINK("x")',
            "+SUM(A1:A2)",
            "@cmd",
            '"1"',
            '"1,5"',
            "1,5",
            "é",
            "中文",
            "١٢",
            "\u00a0",
            "true",
            "cat",
        ]
    ),
    st.text(max_size=6),
)
HEADERS = st.lists(
    st.sampled_from(["a", "b", "label", "target", "0", "1.5", "", "é", "=A1", '"q"', "a"])
    | st.text(min_size=1, max_size=5),
    min_size=0,
    max_size=5,
)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A CSV file: a header and rows of hostile cells, written by the csv module (quotes as
    needed), maybe with a BOM, CRLF line ends, a ragged row or a cut end."""
    header = draw(HEADERS)
    width = max(len(header), 1)
    rows = draw(
        st.lists(
            st.lists(CELLS, min_size=width, max_size=width)
            | st.lists(CELLS, min_size=0, max_size=width + 2),
            max_size=6,
        )
    )
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])),
    )
    for row in [header, *rows]:
        writer.writerow(row)
    text = draw(st.sampled_from(["", "\ufeff"])) + buffer.getvalue()
    data = text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"])), "replace")
    if draw(st.booleans()) and data:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def npz_bytes(*, compress: bool = False, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


NAMES = st.sampled_from(
    ["data.npz", "DATA.NPZ", "data.csv", "Data.CSV", "data.txt", "data.npy", "data", "data.csv.gz",
     "data.npz.csv", ".csv"]
)  # fmt: skip
FILES = st.one_of(npz_files(), csv_files(), st.binary(max_size=64))
LABELS = st.sampled_from([None, None, "label", "target", "a", "é"])


def _assert_checked(X: np.ndarray, y: np.ndarray) -> None:
    """What a reader promises: X (n, d) numeric and finite, y (n,) or (n, k), n ≥ 1, d ≥ 1."""
    assert X.ndim == 2 and X.shape[0] >= 1 and X.shape[1] >= 1
    assert y.ndim in (1, 2) and y.shape[0] == X.shape[0]
    for a in (X, y):
        assert np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
        assert not np.issubdtype(a.dtype, np.floating) or np.isfinite(a).all()


def _assert_refusal(error: DatasetError) -> None:
    message = str(error)
    assert message.startswith("dataset: ") and len(message) > len("dataset: ") + 10, message
    assert "Traceback" not in message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=FILES, name=NAMES, label=LABELS)
@example(data=b"a,b\n1,2\n", name="data.csv", label=None)
def test_a_dataset_file_is_read_checked_or_refused_with_its_problem(
    data: bytes, name: str, label: str | None
) -> None:
    # Given any bytes under a dataset file name
    # When the Lambdas' reader reads them
    try:
        X, y = read_dataset(data, name, None if name.lower().endswith(".npz") else label)

    # Then it refuses them with a DatasetError that says what is wrong...
    except DatasetError as error:
        _assert_refusal(error)
        return

    # ...or returns checked arrays
    _assert_checked(X, y)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=FILES,
    name=NAMES,
    label=LABELS,
    classification=st.booleans(),
    n_outputs=st.integers(1, 4),
)
@example(
    data=npz_bytes(X=np.ones((3, 2)), y=np.array([1e30, 2.0**63, 0.0])),
    name="big-labels.npz",
    label=None,
    classification=True,
    n_outputs=3,
)
def test_a_shard_is_checked_or_refused_naming_the_shard(
    data: bytes, name: str, label: str | None, classification: bool, n_outputs: int
) -> None:
    # Given any bytes as a shard of a run (classification or regression)
    # When CheckShards' check reads them
    try:
        checked = check_shard(
            data, name, label=None if name.lower().endswith(".npz") else label,
            classification=classification, n_outputs=n_outputs,
        )  # fmt: skip

    # Then it refuses the shard by name, saying what is wrong...
    except DatasetError as error:
        _assert_refusal(error)
        assert f"shard {name}" in str(error), str(error)
        return

    # ...or the shard's arrays are checked and fit the model
    _assert_checked(checked.X, checked.y)
    if classification:  # whole labels, each class its own: none merged by a cast
        labels = class_labels(checked.y)
        assert np.array_equal(labels, checked.y) and len(np.unique(labels)) <= n_outputs
    else:
        assert (1 if checked.y.ndim == 1 else checked.y.shape[1]) == n_outputs


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=FILES, name=NAMES)
def test_the_cli_reads_a_local_files_shape_or_refuses_it(
    tmp_path: Path, data: bytes, name: str
) -> None:
    # Given any bytes in a local dataset file
    path = tmp_path / "hostile" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)

    # When the CLI reads its shape from its header (to size the run before uploading it)
    try:
        n, d = shape_of(str(path))

    # Then it refuses it with a DatasetError, or tells a shape
    except DatasetError as error:
        assert str(error).strip(), error
    else:
        assert n >= 0 and d >= -1
    finally:
        path.unlink()


def test_a_corrupt_compressed_npz_is_refused_by_the_cli_shape_reader(tmp_path: Path) -> None:
    # Given a compressed .npz whose deflate stream has a byte changed (a zlib error, not a
    # zip error, when X's header is read)
    data = bytearray(
        npz_bytes(compress=True, X=np.linspace(0, 1, 200).reshape(50, 4), y=np.arange(50))
    )
    data[62] ^= 0x55
    path = tmp_path / "corrupt.npz"
    path.write_bytes(bytes(data))

    # When / Then
    with pytest.raises(DatasetError, match=r"corrupt.npz: not a readable .npz archive"):
        shape_of(str(path))


@pytest.mark.parametrize("name", ["data.npz", "data.csv"])
def test_an_empty_file_is_refused_as_empty(name: str) -> None:
    # Given / When
    with pytest.raises(DatasetError) as raised:
        read_dataset(b"", name)

    # Then
    assert "empty" in str(raised.value)
