"""Tensor bundle codec: a dict of named numpy arrays <-> bytes.

The bytes are a standard uncompressed ``.npz`` archive (``np.load`` reads them), written
deterministically: members in sorted name order, fixed zip timestamps. Equal bundles therefore
encode to equal bytes, which is what lets the tensor store recognise a retried write by digest.

The round trip is exact: dtype (including byte order), shape, memory order and every bit
(NaN payloads, -0.0) come back unchanged. Object dtypes are refused; nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from trainer.store.errors import CodecError

_NPY_SUFFIX = ".npy"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps make the bytes deterministic


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise CodecError(f"array names must be non-empty strings, got {name!r}")
    if "/" in name or "\\" in name or "\x00" in name:
        raise CodecError(f"array name {name!r} may not contain '/', '\\' or NUL")
    return name


def _as_array(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise CodecError(
            f"array {name!r} has dtype {array.dtype}, which holds Python objects; "
            "only numeric, boolean, string and plain structured dtypes can be stored"
        )
    return array


def encode(bundle: Mapping[str, np.ndarray]) -> bytes:
    """Encode a bundle of named arrays into the bytes of an uncompressed ``.npz`` archive."""
    if not isinstance(bundle, Mapping):
        raise CodecError(
            f"a tensor bundle must be a mapping of name -> array, got {type(bundle).__name__}"
        )
    arrays = {_check_name(name): value for name, value in bundle.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(arrays):
            array = _as_array(name, arrays[name])
            info = zipfile.ZipInfo(name + _NPY_SUFFIX, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o600 << 16
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def decode(data: bytes) -> dict[str, np.ndarray]:
    """Decode bytes made by :func:`encode` into a dict of writable, independent arrays."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes to decode, got {type(data).__name__}")
    try:
        loaded = np.load(io.BytesIO(bytes(data)), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CodecError("the bytes are a single .npy array, not a tensor bundle (.npz)")
        with loaded as npz:
            arrays = {name: npz[name] for name in npz.files}
    except CodecError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise CodecError(f"the bytes are not an encoded tensor bundle: {error}") from error
    return {
        name: array if array.flags.writeable and array.base is None else array.copy(order="K")
        for name, array in arrays.items()
    }


def digest(data: bytes) -> str:
    """The sha256 hex digest the store records next to encoded bytes."""
    return hashlib.sha256(data).hexdigest()


def bundle_nbytes(bundle: Mapping[str, np.ndarray]) -> int:
    """Total size of a bundle's array data in bytes (what the in-process cache accounts)."""
    return sum(int(np.asarray(array).nbytes) for array in bundle.values())
