"""The tensor bundle codec: exact, deterministic, pickle-free."""

from __future__ import annotations

import io

import numpy as np
import pytest

from trainer.store import codec
from trainer.store.errors import CodecError


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    )


def _awkward_floats() -> np.ndarray:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=64, dtype=np.uint64).astype(np.uint32)
    floats = bits.view(np.float32).copy()  # includes NaNs with payloads, subnormals
    floats[:4] = [-0.0, np.inf, -np.inf, np.nan]
    return floats


BUNDLES = {
    "float32": {"W": np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)},
    "float64": {"b": np.random.default_rng(2).standard_normal(5)},
    "int64": {"sizes": np.arange(-3, 9, dtype=np.int64).reshape(3, 4)},
    "zero-d": {"t": np.array(3.25), "step": np.int64(12)},
    "empty": {"e": np.zeros((0, 3), dtype=np.float32), "none": np.array([], dtype=np.int64)},
    "float bits": {"x": _awkward_floats()},
    "mixed": {
        "mask": np.array([True, False, True]),
        "big_endian": np.arange(4, dtype=">f8"),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        "strided": np.arange(20, dtype=np.int16)[::3],
        "labels": np.array(["cat", "dog"]),
    },
    "empty bundle": {},
}


@pytest.mark.parametrize("name", list(BUNDLES))
def test_round_trip_is_exact(name: str) -> None:
    # Given
    bundle = BUNDLES[name]

    # When
    decoded = codec.decode(codec.encode(bundle))

    # Then
    assert sorted(decoded) == sorted(bundle)
    for key, array in bundle.items():
        assert _same_bits(np.asarray(array), decoded[key]), key


def test_memory_order_is_kept() -> None:
    # Given
    fortran = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))

    # When
    decoded = codec.decode(codec.encode({"F": fortran}))["F"]

    # Then
    assert decoded.flags.f_contiguous
    np.testing.assert_array_equal(decoded, fortran)


def test_encoding_is_deterministic_and_ignores_insertion_order() -> None:
    # Given
    W = np.ones((3, 2), dtype=np.float32)
    b = np.zeros(2, dtype=np.float32)

    # When
    first = codec.encode({"W": W, "b": b})
    second = codec.encode({"b": b.copy(), "W": W.copy()})

    # Then
    assert first == second
    assert codec.digest(first) == codec.digest(second)


def test_decoded_arrays_are_writable_and_independent() -> None:
    # Given
    data = codec.encode({"a": np.zeros(4), "b": np.zeros(4)})

    # When
    first, second = codec.decode(data), codec.decode(data)
    first["a"][0] = 1.0

    # Then
    assert all(array.flags.writeable for array in first.values())
    assert first["b"][0] == 0.0
    assert second["a"][0] == 0.0


def test_the_bytes_are_a_standard_npz_archive() -> None:
    # Given
    W = np.arange(6, dtype=np.float32).reshape(2, 3)

    # When
    with np.load(io.BytesIO(codec.encode({"W": W})), allow_pickle=False) as npz:
        loaded = npz["W"]

    # Then
    np.testing.assert_array_equal(loaded, W)


def test_names_that_clash_with_savez_arguments_are_fine() -> None:
    # Given
    bundle = {"file": np.arange(3), "allow_pickle": np.arange(2), "args": np.arange(1)}

    # When
    decoded = codec.decode(codec.encode(bundle))

    # Then
    assert {name: list(array) for name, array in decoded.items()} == {
        "file": [0, 1, 2],
        "allow_pickle": [0, 1],
        "args": [0],
    }


@pytest.mark.parametrize(
    "bundle",
    [
        {"o": np.array([{"a": 1}, None], dtype=object)},
        {"s": np.zeros(2, dtype=[("x", "f4"), ("y", "O")])},
        {"": np.zeros(1)},
        {"a/b": np.zeros(1)},
        {3: np.zeros(1)},
    ],
    ids=["object", "structured object", "empty name", "slash", "non-str name"],
)
def test_encode_rejects_what_it_cannot_store_safely(bundle: dict) -> None:
    # Given a bundle with an object dtype or a bad name

    # When / Then
    with pytest.raises(CodecError):
        codec.encode(bundle)


def test_encode_rejects_a_bare_array() -> None:
    # Given
    array = np.zeros(3)

    # When / Then
    with pytest.raises(CodecError, match="mapping"):
        codec.encode(array)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [b"not a zip", b"", None],
    ids=["garbage", "empty", "not bytes"],
)
def test_decode_rejects_what_is_not_a_bundle(data: bytes) -> None:
    # Given bytes that no encode produced

    # When / Then
    with pytest.raises(CodecError):
        codec.decode(data)


def test_decode_rejects_a_single_npy_array() -> None:
    # Given
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))

    # When / Then
    with pytest.raises(CodecError, match=r"\.npy"):
        codec.decode(buffer.getvalue())
