"""A run's dataset as the CLI sees it: a builtin set, a local file or a local folder of shards
(never S3).

One place reads a local dataset (``stepnet reference``, ``stepnet start``/``local`` before the
upload), plans its upload (:func:`upload_plan`: a folder's shards as they are, a large single
file cut into shards), and tells its shape from the headers alone (``stepnet cost`` and the
``stepnet local`` progress bar). The functions of a deployed stack read S3 instead, through
:mod:`trainer.data.sources`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from trainer.contract import names
from trainer.data.errors import DatasetError
from trainer.data.readers import read_dataset
from trainer.data.shards import (
    DEFAULT_SHARD_MB,
    encode_shard,
    shard_row_counts,
    single_file_shards,
)
from trainer.data.sources import BUILTIN_FILES, SHARD_SUFFIXES, read_builtin
from trainer.training.memory import DatasetShape


def is_local(source: str) -> bool:
    """Whether ``source`` (``dataset.source``) names a file on this machine."""
    return source not in BUILTIN_FILES and not source.startswith("s3://")


def _local_path(source: str, base: Path = Path()) -> Path:
    """The file a local ``source`` names, relative to ``base`` unless absolute or ``~/…``."""
    return base / Path(source).expanduser()


def local_folder(source: str, base: Path = Path()) -> Path:
    return _local_path(source, base)


def local_shards(source: str, base: Path = Path()) -> list[Path] | None:
    """A local folder's shards, in the order of their paths relative to it (the order their
    keys list in S3 once uploaded); None when ``source`` is not a folder. Any file that is not
    ``.npz`` or ``.csv`` is an error, as it is under an S3 prefix."""
    if not is_local(source):
        return None
    folder = _local_path(source, base)
    if not folder.is_dir():
        return None
    files = sorted(
        (path for path in folder.rglob("*") if path.is_file()),
        key=lambda path: path.relative_to(folder).as_posix(),
    )
    others = [path for path in files if not path.name.lower().endswith(SHARD_SUFFIXES)]
    if others:
        raise DatasetError(
            f"dataset: {others[0]} is not a shard (.npz or .csv file); the folder {folder} must "
            "hold only the dataset's shards"
        )
    if not files:
        raise DatasetError(f"dataset.source: no .npz or .csv shards in {folder}")
    return files


def read_local(source: str, base: Path = Path()) -> tuple[bytes, str]:
    """A dataset's bytes and file name (its extension tells the format) from ``builtin:…`` or a
    local path; an ``s3://`` source or a missing file raises DatasetError."""
    if source in BUILTIN_FILES:
        return read_builtin(source)
    if source.startswith("s3://"):
        raise DatasetError(
            f"dataset.source: {source} is in S3 and this command reads local files; "
            "download it first"
        )
    path = _local_path(source, base)
    if not path.is_file():
        raise DatasetError(f"dataset.source: no file at {path}")
    return path.read_bytes(), path.name


def shard_bytes(shard_mb: int) -> int:
    """``--shard-mb`` in bytes (MiB)."""
    if shard_mb < 1:
        raise ValueError(f"--shard-mb must be at least 1, got {shard_mb}")
    return shard_mb * 1024 * 1024


def file_shards(
    X: np.ndarray, y: np.ndarray, file_bytes: int, shard_mb: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A single file's shards as ``stepnet start``/``local`` upload it (and as the reference
    reads it): its rows shuffled once (``SHUFFLE_SEED``), cut into shards of ``shard_mb`` MiB
    when the file is larger than that, else one shard (which the functions make of it too)."""
    limit = shard_bytes(shard_mb)
    return single_file_shards(X, y, limit if file_bytes > limit else None)


def sharded_prefix(data: bytes, name: str, shard_mb: int) -> str:
    """The bucket prefix of a large file's shards: ``uploads/<sha256 prefix>-<stem>-<mb>mb/``
    (the same file and size always land on the same keys)."""
    stem = name.rsplit(".", 1)[0]
    return f"{names.S3_UPLOADS_PREFIX}{hashlib.sha256(data).hexdigest()[:16]}-{stem}-{shard_mb}mb/"


def shard_name(index: int) -> str:
    """The name of a large file's shard ``index`` under its prefix (they list in order)."""
    return f"part-{index:05d}.npz"


def folder_prefix(folder: Path, shards: list[Path]) -> str:
    """The bucket prefix of a folder's shards: ``uploads/<digest>-<folder name>/``, the digest
    over every shard's path and contents (re-uploads are idempotent)."""
    digest = hashlib.sha256()
    for path in shards:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{names.S3_UPLOADS_PREFIX}{digest.hexdigest()[:16]}-{folder.name}/"


@dataclass(frozen=True)
class UploadPlan:
    """What ``stepnet start``/``local`` put in the bucket for a local dataset: ``key``, the key
    (one file) or prefix (ending in '/') the run's ``dataset.source`` names once uploaded;
    ``objects()``, the objects to put, one at a time; ``csv_label``: whether
    ``dataset.label`` still applies (not once a CSV file has become ``.npz`` shards)."""

    key: str
    objects: Callable[[], Iterator[tuple[str, bytes]]]
    csv_label: bool = True


def upload_plan(
    source: str, label: str | None, base: Path = Path(), shard_mb: int = DEFAULT_SHARD_MB
) -> UploadPlan | None:
    """How a local ``source`` is uploaded (None for a builtin or ``s3://`` source). A folder's
    shards go as they are, under :func:`folder_prefix`; a file larger than ``shard_mb`` MiB is
    read, shuffled once and cut (:func:`file_shards`) into ``.npz`` shards under
    :func:`sharded_prefix`; a smaller file goes as it is (:func:`upload_key`). Keys follow the
    contents, so uploading again writes the same objects."""
    if not is_local(source):
        return None
    shards = local_shards(source, base)
    if shards is not None:
        folder = local_folder(source, base)
        prefix = folder_prefix(folder, shards)

        def folder_objects() -> Iterator[tuple[str, bytes]]:
            for path in shards:
                yield prefix + path.relative_to(folder).as_posix(), path.read_bytes()

        return UploadPlan(prefix, folder_objects)
    data, name = read_local(source, base)
    if len(data) <= shard_bytes(shard_mb):
        key = upload_key(data, name)
        return UploadPlan(key, lambda: iter([(key, data)]))
    prefix, size = sharded_prefix(data, name, shard_mb), len(data)

    def file_objects() -> Iterator[tuple[str, bytes]]:
        X, y = read_dataset(data, name, label)
        for index, (X_s, y_s) in enumerate(file_shards(X, y, size, shard_mb)):
            yield prefix + shard_name(index), encode_shard(X_s, y_s)

    return UploadPlan(prefix, file_objects, csv_label=False)


def upload_key(data: bytes, name: str) -> str:
    """The bucket key of an uploaded local dataset: ``uploads/<sha256 prefix>-<name>``, so the
    same bytes always land on the same key (re-uploads are idempotent)."""
    return f"{names.S3_UPLOADS_PREFIX}{hashlib.sha256(data).hexdigest()[:16]}-{name}"


def shape_of(source: str, base: Path = Path()) -> tuple[int, int]:
    """``(n, d)``: examples and features of a builtin or local dataset (file or folder), from
    the files' headers alone (see :func:`dataset_shape`)."""
    shapes = _file_shapes(source, base)
    return sum(shape.rows for shape in shapes), shapes[0].n_features


@dataclass(frozen=True)
class FileShape:
    """One dataset file as its header tells it: rows, features, bytes per row (X and y as
    stored) and per feature, its size and format."""

    rows: int
    n_features: int
    row_bytes: int
    x_itemsize: int
    file_bytes: int
    format: str


def dataset_shape(
    source: str, base: Path = Path(), shard_mb: int = DEFAULT_SHARD_MB
) -> tuple[tuple[int, ...], DatasetShape]:
    """The rows of each shard of a builtin or local dataset as the run will have them (a large
    single file cut as :func:`file_shards` cuts it), and the shape the memory formula needs —
    from the files' headers, without reading the data. The files are not checked: CheckShards
    does that (``.npz``: the shapes in ``X.npy``'s and ``y.npy``'s headers; ``.csv``: the
    non-empty lines after the header, every value a float64)."""
    shapes = _file_shapes(source, base)
    if local_shards(source, base) is None:  # one file, maybe cut
        (shape,) = shapes
        limit = shard_bytes(shard_mb)
        cut = limit if shape.file_bytes > limit else None
        rows = tuple(shard_row_counts(shape.rows, shape.row_bytes, cut))
        largest = max(rows) * shape.row_bytes if cut else shape.file_bytes
        fmt = "npz" if cut else shape.format
    else:
        rows = tuple(shape.rows for shape in shapes)
        largest = max(shape.file_bytes for shape in shapes)
        fmt = "csv" if any(shape.format == "csv" for shape in shapes) else "npz"
    first = shapes[0]
    return rows, DatasetShape(
        rows=sum(rows),
        n_features=first.n_features,
        row_bytes=first.row_bytes,
        x_itemsize=first.x_itemsize,
        shards=len(rows),
        largest_shard_bytes=largest,
        shard_format=fmt,
    )


def _file_shapes(source: str, base: Path) -> list[FileShape]:
    if source in BUILTIN_FILES:
        data, name = read_builtin(source)
        return [_npz_shape(io.BytesIO(data), name, len(data))]
    if source.startswith("s3://"):
        raise DatasetError(f"dataset.source: {source} is in S3; its shape cannot be read here")
    shards = local_shards(source, base)
    paths = shards if shards is not None else [_local_path(source, base)]
    return [_file_shape(path) for path in paths]


def _file_shape(path: Path) -> FileShape:
    if not path.is_file():
        raise DatasetError(f"dataset.source: no file at {path}")
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if suffix == ".npz":
        with path.open("rb") as handle:
            return _npz_shape(handle, path.name, size)
    if suffix == ".csv":
        with path.open("rb") as handle:
            return _csv_shape(handle, path.name, size)
    raise DatasetError(
        f"cannot tell the format of {path.name!r}; use a file ending in .npz or .csv"
    )


def _member_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(handle)
    return tuple(shape), dtype


def _npz_shape(file: BinaryIO, name: str, size: int) -> FileShape:
    try:
        with zipfile.ZipFile(file) as archive:
            shape, x_dtype = _member_header(archive, "X.npy")
            try:
                y_shape, y_dtype = _member_header(archive, "y.npy")
                y_bytes = y_dtype.itemsize * int(np.prod(y_shape[1:], dtype=np.int64))
            except KeyError:
                y_bytes = 8
    except KeyError:
        raise DatasetError(
            f"{name}: no array X; write it with numpy.savez(path, X=X, y=y)"
        ) from None
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        ValueError,
        OSError,
        RuntimeError,  # a member marked encrypted
        NotImplementedError,  # a compression method zipfile does not read
    ) as error:
        raise DatasetError(f"{name}: not a readable .npz archive ({error})") from None
    if len(shape) != 2:
        raise DatasetError(f"{name}: X has shape {tuple(shape)}, not (n_samples, n_features)")
    return FileShape(
        rows=int(shape[0]),
        n_features=int(shape[1]),
        row_bytes=int(shape[1]) * x_dtype.itemsize + y_bytes,
        x_itemsize=x_dtype.itemsize,
        file_bytes=size,
        format="npz",
    )


def _csv_shape(file: BinaryIO, name: str, size: int) -> FileShape:
    header = b""
    for index, line in enumerate(file):
        if index == 0:
            line = line.removeprefix(codecs.BOM_UTF8)
        if line.strip():
            header = line
            break
    if not header:
        raise DatasetError(f"{name}: the CSV file is empty")
    try:
        columns = next(csv.reader([header.decode()]))
    except UnicodeDecodeError as error:
        raise DatasetError(f"{name}: the CSV file is not UTF-8 text ({error})") from None
    except csv.Error as error:  # e.g. a lone carriage return (old Mac line ends)
        raise DatasetError(
            f"{name}: the CSV header could not be read ({error}); end every line with \\n or \\r\\n"
        ) from None
    rows = sum(1 for line in file if line.strip())
    return FileShape(
        rows=rows,
        n_features=len(columns) - 1,
        row_bytes=8 * len(columns),  # read as float64
        x_itemsize=8,
        file_bytes=size,
        format="csv",
    )
