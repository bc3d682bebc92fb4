"""Hypothesis strategies for hostile dataset files: .npz archives of wrong shapes and dtypes,
NaN/Inf and huge values, missing or extra arrays, compressed, truncated or with a byte changed;
CSV files with quoted, formula, unicode, empty and non-numeric cells, ragged rows, BOMs, CRLF,
other encodings and cut ends; arbitrary bytes; names with right and wrong extensions."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

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
