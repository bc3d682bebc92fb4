"""Shards: the files a dataset is made of, checked one by one, and the layout rows are read in.

A dataset source is one file (``.npz`` or ``.csv``) or a folder / ``s3://`` prefix of such
files, its *shards*, in the order of their names (docs/data.md). Every shard is checked
(:func:`check_shard`) before anything is trained or written: readable, non-empty, numeric,
finite, labels that fit the model, and one schema (:class:`Schema`) across all shards. A problem
raises :class:`~trainer.data.errors.DatasetError` naming the shard.

Rows are read straight from a shard when it is an *uncompressed* ``.npz`` (what
``numpy.savez`` writes and what stepnet writes): :func:`npz_layout` finds where ``X`` and ``y``
start, so rows ``[lo, hi)`` are two byte ranges. Any other shard (a CSV, a compressed ``.npz``)
is converted once into that layout (:func:`encode_shard`). A single-file source is also
shuffled once, with a fixed seed, and may be cut into several shards (:func:`single_file_shards`):
its blocks of consecutive rows are then random samples even if the file is sorted.

Pure functions over bytes and arrays.
"""

from __future__ import annotations

import codecs
import csv
import io
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from trainer.data.errors import DatasetError, count, fail
from trainer.data.prepare import class_labels
from trainer.data.readers import check_arrays, read_dataset
from trainer.store import codec

Format = Literal["npz", "csv"]
FORMATS: Final[dict[str, Format]] = {".npz": "npz", ".csv": "csv"}

SHUFFLE_SEED: Final = 0
"""A single-file source's rows are put in the order ``default_rng(SHUFFLE_SEED).permutation(n)``
once, before they are cut into shards (the same for every run of the same file)."""

DEFAULT_SHARD_MB: Final = 64
"""``--shard-mb``: the size of the shards a large single file is cut into when it is uploaded."""


def shard_format(name: str) -> Format:
    """``npz`` or ``csv``, from the name's extension (any case)."""
    lowered = name.lower()
    for suffix, found in FORMATS.items():
        if lowered.endswith(suffix):
            return found
    raise fail(f"shard {name}: cannot tell its format; shards are .npz or .csv files")


class Schema(BaseModel):
    """What every shard of a dataset must share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format
    columns: list[str] | None = None  # CSV: the header's column names
    n_features: int
    x_dtype: str  # numpy's dtype string of X as stored, e.g. "<f4" ("<f8" for CSV)
    y_dtype: str
    y_columns: int | None = None  # None: y is 1-D (labels, or one regression target)

    def difference(self, other: Schema) -> str | None:
        """How ``other`` differs from this schema (first difference), or None."""
        if other.format != self.format:
            return f"is a .{other.format} file, not .{self.format}"
        if other.columns != self.columns:
            return f"has the columns {other.columns}, not {self.columns}"
        if other.n_features != self.n_features:
            return f"has {count(other.n_features, 'feature')} (columns of X), not {self.n_features}"
        if other.x_dtype != self.x_dtype:
            return f"stores X as {np.dtype(other.x_dtype)}, not {np.dtype(self.x_dtype)}"
        if other.y_dtype != self.y_dtype or other.y_columns != self.y_columns:
            return (
                f"stores y as {_y_shape(other)} {np.dtype(other.y_dtype)}, not "
                f"{_y_shape(self)} {np.dtype(self.y_dtype)}"
            )
        return None

    @property
    def row_bytes(self) -> int:
        """Bytes of one row (X and y) in the read layout."""
        y_width = 1 if self.y_columns is None else self.y_columns
        return int(
            self.n_features * np.dtype(self.x_dtype).itemsize
            + y_width * np.dtype(self.y_dtype).itemsize
        )


def _y_shape(schema: Schema) -> str:
    return "(n,)" if schema.y_columns is None else f"(n, {schema.y_columns})"


@dataclass(frozen=True, eq=False)
class CheckedShard:
    """A shard's arrays (as stored), its schema and, when its rows can be read in place, the byte
    offsets of ``X``'s and ``y``'s data in the file (:func:`npz_layout`)."""

    X: np.ndarray
    y: np.ndarray
    schema: Schema
    layout: tuple[NpzArray, NpzArray] | None


def shard_error(name: str, error: DatasetError) -> DatasetError:
    """``error`` as a problem of shard ``name``."""
    message = str(error).removeprefix("dataset: ")
    if message.startswith(f"shard {name}"):
        return error
    return DatasetError(f"dataset: shard {name}: {message}")


def check_shard(
    data: bytes,
    name: str,
    *,
    label: str | None,
    classification: bool,
    n_outputs: int,
) -> CheckedShard:
    """Read and check one shard's bytes; every problem names the shard.

    Checks what :func:`trainer.data.readers.read_dataset` checks (readable, numeric, non-empty,
    finite, one label per row), then that the labels fit the model: whole-number labels of at
    most ``n_outputs`` classes for classification, ``n_outputs`` targets for regression.
    """
    try:
        fmt = shard_format(name)
        layout = npz_layout(io.BytesIO(data)) if fmt == "npz" else None
        if layout is not None:
            X, y = _in_place(data, layout)
            check_arrays(X, y)
        else:
            X, y = read_dataset(data, name, label)
        columns = csv_columns(data) if fmt == "csv" else None
        if classification:
            labels = class_labels(y)
            found = np.unique(labels)
            if found.size > n_outputs:
                raise fail(
                    f"it holds {found.size} classes but model.layers[-1].units is {n_outputs}; "
                    "set it to the number of classes of the whole dataset"
                )
        else:
            k = 1 if y.ndim == 1 else int(y.shape[1])
            if k != n_outputs:
                raise fail(
                    f"it has {count(k, 'regression target')} but model.layers[-1].units is "
                    f"{n_outputs}; set model.layers[-1].units to {k}"
                )
    except DatasetError as error:
        raise shard_error(name, error) from None
    schema = Schema(
        format=fmt,
        columns=columns,
        n_features=int(X.shape[1]),
        x_dtype=X.dtype.str,
        y_dtype=y.dtype.str,
        y_columns=None if y.ndim == 1 else int(y.shape[1]),
    )
    return CheckedShard(X=X, y=y, schema=schema, layout=layout)


def check_schemas(named: Sequence[tuple[str, Schema]]) -> Schema:
    """The one schema of shards ``(name, schema)``; the first shard that differs from the first
    one raises DatasetError naming both."""
    if not named:
        raise fail("the source holds no shards; give it .npz or .csv files")
    first_name, first = named[0]
    for name, schema in named[1:]:
        difference = first.difference(schema)
        if difference is not None:
            raise fail(
                f"shard {name} {difference} (as shard {first_name}); every shard needs the same "
                "columns and dtypes"
            )
    return first


def csv_columns(data: bytes) -> list[str]:
    """A CSV file's header: its column names."""
    text = data[:65536].decode("utf-8", errors="replace")
    for line in text.removeprefix(codecs.BOM_UTF8.decode()).splitlines():
        if line.strip():
            return [name.strip() for name in next(csv.reader([line]))]
    return []


# --- the read layout -----------------------------------------------------------------------

_LOCAL_HEADER: Final = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length
_LOCAL_SIGNATURE: Final = b"PK\x03\x04"


@dataclass(frozen=True)
class NpzArray:
    """One array of an uncompressed ``.npz``: where its data start in the file, its shape and
    dtype."""

    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype


def npz_layout(file: BinaryIO) -> tuple[NpzArray, NpzArray] | None:
    """Where ``X``'s and ``y``'s data are in an ``.npz`` whose rows can be read in place: both
    arrays stored uncompressed, in C order, without Python objects. None otherwise (a
    compressed or unreadable archive, a missing member, Fortran order): such a shard is
    converted. ``file`` is seekable."""
    try:
        with zipfile.ZipFile(file) as archive:
            infos = [archive.getinfo(member) for member in ("X.npy", "y.npy")]
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError):
        return None
    arrays = []
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            return None
        file.seek(info.header_offset)
        header = file.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size:
            return None
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        if signature != _LOCAL_SIGNATURE:
            return None
        member_start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        file.seek(member_start)
        try:
            version = np.lib.format.read_magic(file)
            shape, fortran, dtype = (
                np.lib.format.read_array_header_1_0(file)
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0(file)
            )
        except ValueError:
            return None
        if dtype.hasobject or (fortran and len(shape) > 1):
            return None
        offset = file.tell()
        if offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > (
            member_start + info.compress_size
        ):
            return None  # the member is shorter than its array header says
        arrays.append(NpzArray(offset=offset, shape=tuple(shape), dtype=dtype))
    return arrays[0], arrays[1]


def _in_place(data: bytes, layout: tuple[NpzArray, NpzArray]) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``y`` as read-only views of an uncompressed ``.npz``'s bytes."""
    X, y = (
        np.frombuffer(
            data, dtype=a.dtype, count=int(np.prod(a.shape, dtype=np.int64)), offset=a.offset
        ).reshape(a.shape)
        for a in layout
    )
    return X, y


def encode_shard(X: np.ndarray, y: np.ndarray) -> bytes:
    """A shard in the read layout: an uncompressed ``.npz`` of ``X`` and ``y`` (deterministic
    bytes: the tensor codec's), which ``numpy.load`` reads too."""
    return codec.encode({"X": np.ascontiguousarray(X), "y": np.ascontiguousarray(y)})


# --- a single file's shards ------------------------------------------------------------------


def shard_row_counts(n: int, row_bytes: int, shard_bytes: int | None) -> list[int]:
    """How a single file of ``n`` rows is cut: shards of ``max(1, shard_bytes // row_bytes)``
    rows, the last one shorter; one shard when ``shard_bytes`` is None."""
    if n < 1:
        raise ValueError(f"a file to shard has rows, got {n}")
    per = n if shard_bytes is None else max(1, shard_bytes // max(1, row_bytes))
    return [min(per, n - start) for start in range(0, n, per)]


def single_file_shards(
    X: np.ndarray, y: np.ndarray, shard_bytes: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A single file's rows, shuffled with ``SHUFFLE_SEED`` and cut into shards of at most
    ``shard_bytes`` (:func:`shard_row_counts`; one shard when None)."""
    n = int(X.shape[0])
    perm = np.random.default_rng(SHUFFLE_SEED).permutation(n)
    row_bytes = int(X.dtype.itemsize * X.shape[1] + y.dtype.itemsize * int(np.prod(y.shape[1:])))
    shards = []
    start = 0
    for rows in shard_row_counts(n, row_bytes, shard_bytes):
        chosen = perm[start : start + rows]
        shards.append((X[chosen], y[chosen]))
        start += rows
    return shards
