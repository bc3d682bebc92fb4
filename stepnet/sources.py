"""A run's dataset as the CLI sees it: a builtin set or a local file (never S3).

One place reads a local dataset (``stepnet reference``, ``stepnet start``/``local`` before the
upload), names its upload, and tells its shape from the header alone (``stepnet cost`` and the
``stepnet local`` progress bar). The functions of a deployed stack read S3 instead, through
:mod:`trainer.data.sources`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from trainer.contract import names
from trainer.data.errors import DatasetError
from trainer.data.sources import BUILTIN_FILES, read_builtin


def is_local(source: str) -> bool:
    """Whether ``source`` (``dataset.source``) names a file on this machine."""
    return source not in BUILTIN_FILES and not source.startswith("s3://")


def _local_path(source: str, base: Path = Path()) -> Path:
    """The file a local ``source`` names, relative to ``base`` unless absolute or ``~/…``."""
    return base / Path(source).expanduser()


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


def upload_key(data: bytes, name: str) -> str:
    """The bucket key of an uploaded local dataset: ``datasets/<sha256 prefix>-<name>``, so the
    same bytes always land on the same key (re-uploads are idempotent)."""
    return f"{names.S3_DATASETS_PREFIX}{hashlib.sha256(data).hexdigest()[:16]}-{name}"


def shape_of(source: str, base: Path = Path()) -> tuple[int, int]:
    """``(n, d)``: examples and features of a builtin or local dataset, without loading it.

    ``.npz``: the shape in ``X.npy``'s header (the members are streamed, never read whole).
    ``.csv``: the non-empty lines after the header row, and the header's columns but one (the
    label). The file is not checked; the readers in :mod:`trainer.data.readers` do that.
    Raises DatasetError when there is no such file or no shape can be told.
    """
    if source in BUILTIN_FILES:
        data, name = read_builtin(source)
        return _npz_shape(io.BytesIO(data), name)
    if source.startswith("s3://"):
        raise DatasetError(f"dataset.source: {source} is in S3; its shape cannot be read here")
    path = _local_path(source, base)
    if not path.is_file():
        raise DatasetError(f"dataset.source: no file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with path.open("rb") as handle:
            return _npz_shape(handle, path.name)
    if suffix == ".csv":
        with path.open("rb") as handle:
            return _csv_shape(handle, path.name)
    raise DatasetError(
        f"cannot tell the format of {path.name!r}; use a file ending in .npz or .csv"
    )


def _npz_shape(file: BinaryIO, name: str) -> tuple[int, int]:
    try:
        with zipfile.ZipFile(file) as archive, archive.open("X.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, _ = read_header(member)
    except KeyError:
        raise DatasetError(
            f"{name}: no array X; write it with numpy.savez(path, X=X, y=y)"
        ) from None
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise DatasetError(f"{name}: not a readable .npz archive ({error})") from None
    if len(shape) != 2:
        raise DatasetError(f"{name}: X has shape {tuple(shape)}, not (n_samples, n_features)")
    return int(shape[0]), int(shape[1])


def _csv_shape(file: BinaryIO, name: str) -> tuple[int, int]:
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
    rows = sum(1 for line in file if line.strip())
    return rows, len(columns) - 1
