"""Hostile dataset files (hypothesis): .npz and .csv bytes with wrong shapes and dtypes, NaN/Inf,
huge values, mixed labels, quotes, formulas and unicode, truncated or empty, under right and
wrong extensions. Every one is read into checked arrays or refused with a DatasetError that
says what is wrong; never another exception — by the Lambdas' reader and shard check and by the
CLI's header reader alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.hostile_files import FILES, LABELS, NAMES, npz_bytes

from stepnet.sources import shape_of
from trainer.data.errors import DatasetError
from trainer.data.prepare import class_labels
from trainer.data.readers import read_dataset
from trainer.data.shards import check_shard


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
@example(data=b"a\rb,c\n1,2\n", name="data.csv", label=None)  # a lone carriage return
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
@example(
    data=npz_bytes(X=np.ones((3, 2)), y=np.array([2**64 - 1, 0, 1], dtype=np.uint64)),
    name="uint64-labels.npz",
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
@example(data=b"\r\x00", name="data.csv")
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


def _stored(flag_bits: int = 0, method: int = 0) -> bytes:
    """A one-row .npz whose X.npy member's local header claims other flag bits (0x1: encrypted)
    or another compression method (99: AES, which zipfile does not read)."""
    data = bytearray(npz_bytes(X=np.ones((1, 2)), y=np.zeros(1, dtype=np.int64)))
    data[6:8] = flag_bits.to_bytes(2, "little")
    data[8:10] = method.to_bytes(2, "little")
    central = data.index(b"PK\x01\x02")
    data[central + 8 : central + 10] = flag_bits.to_bytes(2, "little")
    data[central + 10 : central + 12] = method.to_bytes(2, "little")
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(_stored(flag_bits=0x1), "encrypted"), (_stored(method=99), "compression method")],
    ids=["encrypted", "unknown-compression"],
)
def test_an_npz_zipfile_cannot_open_is_refused_as_corrupt(
    tmp_path: Path, data: bytes, fragment: str
) -> None:
    # Given an .npz whose member is marked encrypted, or compressed by an unknown method
    path = tmp_path / "odd.npz"
    path.write_bytes(data)

    # When the Lambdas' reader and the CLI's header reader read it
    with pytest.raises(DatasetError) as read:
        read_dataset(data, "odd.npz")
    with pytest.raises(DatasetError) as shaped:
        shape_of(str(path))

    # Then both refuse it as a corrupt archive, saying why
    assert "the .npz file is corrupt" in str(read.value) and fragment in str(read.value)
    assert "odd.npz: not a readable .npz archive" in str(shaped.value)


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
