"""How AWS charges what the store writes and reads: DynamoDB's item sizes and capacity units, and
the exact encoded size of a tensor bundle from its shapes.

* **Item size** (:func:`item_bytes`): the attribute names' UTF-8 bytes plus their values'
  (strings and binaries by length, numbers ``ceil(digits / 2) + 1``, lists and maps 3 bytes plus
  their elements). DynamoDB returns no ``ConsumedCapacity`` to the local engine, so the meter and
  the estimate both size items by this rule.
* **Capacity units** (on-demand): ``WRU = max(1, ceil(size / 1 KB))`` per item written,
  ``RRU = max(1, ceil(size / 4 KB))`` per item read strongly consistently (a Query: of the sum
  of the items it returns).
* **Encoded bundles** (:func:`encoded_bytes`): ``trainer.store.codec`` writes an uncompressed
  ``.npz``, so its length is the zip structure for the member names plus, per array, a ``.npy``
  header and ``prod(shape) × itemsize`` bytes: computed from ``(shape, dtype, order)`` without
  allocating the arrays (``tests/unit/billing`` checks it against the codec).
* **The seed design** (:func:`inline_item_bytes`): every bundle inline in DynamoDB, whatever
  its size; the item ``trainer.store.tensors.tensor_item`` writes for it, sized.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from trainer.contract.names import TENSORS_PK, TENSORS_TTL_ATTRIBUTE
from trainer.store import codec
from trainer.store.observer import Item
from trainer.store.tensors import DIGEST, tensor_item

KB: Final = 1024

# (shape, dtype, Fortran order): what the codec's .npy header records of an array
ArraySpec = tuple[tuple[int, ...], np.dtype[Any], bool]


# --- DynamoDB's capacity rules ----------------------------------------------------------------


def attribute_value_bytes(value: Mapping[str, Any]) -> int:
    """Size of one typed DynamoDB value (``{"S": ...}``, ``{"N": ...}``, ``{"B": ...}``, …).

    Strings and binaries count their bytes; numbers ``ceil(digits / 2) + 1`` bytes (DynamoDB's
    "about one byte per two significant digits, plus one"); lists and maps 3 bytes plus their
    elements (and, for maps, the keys).
    """
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "B":
        return len(inner)
    if kind == "N":
        digits = sum(ch.isdigit() for ch in str(inner))
        return (digits + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "NS":
        return sum(attribute_value_bytes({"N": n}) for n in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_value_bytes(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + attribute_value_bytes(v) for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_bytes(item: Mapping[str, Mapping[str, Any]]) -> int:
    """An item's size as DynamoDB charges it: attribute names plus values."""
    return sum(len(name.encode()) + attribute_value_bytes(value) for name, value in item.items())


def write_units(size: int) -> int:
    """WRU of writing one item of ``size`` bytes: one per started KB (at least one)."""
    return max(1, math.ceil(size / KB))


def read_units(size: int) -> int:
    """RRU of one strongly consistent read of ``size`` bytes: one per started 4 KB."""
    return max(1, math.ceil(size / (4 * KB)))


def inline_item_bytes(item: Item, encoded: int) -> int:
    """The size ``item``'s bundle (``encoded`` bytes) would take stored inline, whatever its
    size: the seed design, which kept every tensor in DynamoDB. The same item from the one
    writer, with the payload in place of an S3 pointer."""
    ttl = item.get(TENSORS_TTL_ATTRIBUTE)
    inline = tensor_item(
        item[TENSORS_PK]["S"],
        encoded,
        spilled=False,
        expires_at=int(ttl["N"]) if ttl is not None else None,
        digest=item[DIGEST]["S"],
    )
    return item_bytes(inline) + encoded  # the payload, left out of the item above


# --- tensor bundles: exact encoded sizes --------------------------------------------------------

_EMPTY: Final[ArraySpec] = ((0,), np.dtype(np.uint8), False)


def array_spec(array: np.ndarray) -> ArraySpec:
    """What the codec's header records of ``array``: shape, dtype, and whether it is written in
    Fortran order (``np.lib.format``: F-contiguous and not C-contiguous)."""
    array = np.asarray(array)
    fortran = bool(array.flags.f_contiguous and not array.flags.c_contiguous)
    return tuple(int(n) for n in array.shape), array.dtype, fortran


def bundle_spec(bundle: Mapping[str, np.ndarray]) -> dict[str, ArraySpec]:
    """``{name: array_spec(array)}``: all :func:`encoded_bytes` needs of a bundle."""
    return {name: array_spec(array) for name, array in bundle.items()}


def _npy_header_bytes(spec: ArraySpec) -> int:
    shape, dtype, fortran = spec
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": fortran,
        "shape": shape,
    }
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.tell()


_zip_overheads: dict[tuple[str, ...], int] = {}


def _zip_overhead(names: Sequence[str]) -> int:
    """Bytes of the codec's zip structure for members ``names`` (headers, directory): the
    encoding of empty arrays of those names, less their ``.npy`` headers. Cached per names."""
    ordered = tuple(sorted(names))
    cached = _zip_overheads.get(ordered)
    if cached is None:
        empty = {name: np.zeros(_EMPTY[0], _EMPTY[1]) for name in ordered}
        cached = len(codec.encode(empty)) - len(ordered) * _npy_header_bytes(_EMPTY)
        _zip_overheads[ordered] = cached
    return cached


def encoded_bytes(arrays: Mapping[str, ArraySpec]) -> int:
    """Length of ``trainer.store.codec.encode`` of arrays with these specs, computed without
    allocating them: ``zip overhead(names) + Σ (npy header + prod(shape) · itemsize)``."""
    if len(arrays) == 0:
        return len(codec.encode({}))
    data = sum(
        _npy_header_bytes(spec) + math.prod(spec[0]) * spec[1].itemsize for spec in arrays.values()
    )
    return _zip_overhead(list(arrays)) + data
