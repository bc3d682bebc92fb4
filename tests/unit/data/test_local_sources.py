"""stepnet.sources: reading a local or builtin dataset, its upload key, its shape from the header."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

from stepnet.datasets import synthetic_classification, synthetic_regression, write_npz
from stepnet.sources import (
    dataset_shape,
    is_local,
    local_shards,
    read_local,
    shape_of,
    upload_key,
    upload_plan,
)
from trainer.data.errors import DatasetError
from trainer.data.readers import read_dataset
from trainer.data.shards import SHUFFLE_SEED, npz_layout
from trainer.data.sources import read_builtin


def test_only_paths_are_local() -> None:
    # When / Then
    assert is_local("data/train.csv") and is_local("/tmp/x.npz") and is_local("~/x.npz")
    assert not is_local("builtin:digits")
    assert not is_local("s3://bucket/x.npz")


def test_read_local_reads_a_builtin_set_as_the_functions_do() -> None:
    # When
    data, name = read_local("builtin:digits")

    # Then
    assert (data, name) == read_builtin("builtin:digits")


def test_read_local_reads_a_path_relative_to_base(tmp_path: Path) -> None:
    # Given
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "train.csv").write_bytes(b"a,y\n1,0\n")

    # When
    relative = read_local("sub/train.csv", base=tmp_path)
    absolute = read_local(str(tmp_path / "sub" / "train.csv"), base=Path("/elsewhere"))

    # Then
    assert relative == absolute == (b"a,y\n1,0\n", "train.csv")


def test_read_local_names_a_missing_file(tmp_path: Path) -> None:
    # When
    with pytest.raises(DatasetError) as caught:
        read_local("absent.npz", base=tmp_path)

    # Then
    assert str(caught.value) == f"dataset.source: no file at {tmp_path / 'absent.npz'}"


def test_read_local_refuses_s3() -> None:
    # When / Then
    with pytest.raises(DatasetError, match=r"s3://bucket/x\.npz is in S3.*download it first"):
        read_local("s3://bucket/x.npz")


def test_the_upload_key_is_the_contents_digest_and_the_name() -> None:
    # Given
    data = b"a,y\n1,0\n"

    # When
    key = upload_key(data, "train.csv")

    # Then: the same bytes always land on the same key; other bytes elsewhere
    assert key == f"uploads/{hashlib.sha256(data).hexdigest()[:16]}-train.csv"
    assert upload_key(data, "train.csv") == key
    assert upload_key(b"a,y\n2,0\n", "train.csv") != key


# --- shape_of -----------------------------------------------------------------------------------


def test_shape_of_the_builtin_digits() -> None:
    # When / Then
    assert shape_of("builtin:digits") == (1797, 64)


@pytest.mark.parametrize("k", [1, 3])
def test_shape_of_an_npz_is_what_the_reader_reads(tmp_path: Path, k: int) -> None:
    # Given a compressed .npz, with 1-D or 2-D targets
    X, y = synthetic_regression(n=123, d=7, k=k, seed=0)
    write_npz(tmp_path / "reg.npz", X, y)

    # When
    shape = shape_of("reg.npz", base=tmp_path)

    # Then
    X_read, _ = read_dataset((tmp_path / "reg.npz").read_bytes(), "reg.npz")
    assert shape == X_read.shape == (123, 7)


def test_shape_of_an_uncompressed_npz(tmp_path: Path) -> None:
    # Given an archive as numpy.savez writes it
    X, y = synthetic_classification(n=40, d=5, k=2, seed=0)
    np.savez(tmp_path / "blobs.npz", X=X, y=y)

    # When / Then
    assert shape_of(str(tmp_path / "blobs.npz")) == (40, 5)


def test_shape_of_a_csv_counts_rows_and_all_columns_but_the_label(tmp_path: Path) -> None:
    # Given a CSV with a byte-order mark, a leading blank line and blank lines between rows
    text = '\n"a",b,label,c\n1,2,0,3\n\n4,5,1,6\n7,8,0,9\n'
    path = tmp_path / "data.CSV"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())

    # When
    shape = shape_of("data.CSV", base=tmp_path)

    # Then: as the reader sees it, whichever column is the label
    X, _ = read_dataset(path.read_bytes(), path.name, "label")
    assert shape == X.shape == (3, 3)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.csv", b"\n\n", "empty.csv: the CSV file is empty"),
        ("latin.csv", b"\xe9,y\n1,0\n", "latin.csv: the CSV file is not UTF-8 text"),
        ("broken.npz", b"not a zip", "broken.npz: not a readable .npz archive"),
        ("data.txt", b"1,2\n", "cannot tell the format of 'data.txt'"),
    ],
)
def test_shape_of_says_why_it_cannot_tell(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    # Given
    (tmp_path / name).write_bytes(data)

    # When / Then
    with pytest.raises(DatasetError, match=message):
        shape_of(name, base=tmp_path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"features": np.ones((3, 2)), "y": np.zeros(3)}, "no array X"),
        ({"X": np.ones(3), "y": np.zeros(3)}, r"X has shape \(3,\), not \(n_samples, n_features\)"),
    ],
)
def test_shape_of_an_npz_without_a_2d_x(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    # Given
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    (tmp_path / "odd.npz").write_bytes(buffer.getvalue())

    # When / Then
    with pytest.raises(DatasetError, match=message):
        shape_of("odd.npz", base=tmp_path)


def test_shape_of_a_missing_file_or_an_s3_source(tmp_path: Path) -> None:
    # When / Then
    with pytest.raises(DatasetError, match=r"dataset\.source: no file at .*absent\.csv"):
        shape_of("absent.csv", base=tmp_path)
    with pytest.raises(DatasetError, match="is in S3"):
        shape_of("s3://bucket/x.npz")


# --- folders of shards, and a large file cut into shards -----------------------------------------


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "shards"
    (folder / "b").mkdir(parents=True)
    for name, rows in (("a.npz", 10), ("b/c.npz", 7), ("b/d.npz", 12)):
        X, y = synthetic_regression(n=rows, d=3, k=1, seed=rows)
        write_npz(folder / name, X, y)
    return folder


def test_a_folder_lists_its_shards_by_relative_path_and_sums_their_shape(tmp_path: Path) -> None:
    # Given a folder with a nested shard
    folder = _folder(tmp_path)

    # When
    shards = local_shards(str(folder))
    rows, shape = dataset_shape(str(folder))

    # Then
    assert [p.relative_to(folder).as_posix() for p in shards or []] == [
        "a.npz",
        "b/c.npz",
        "b/d.npz",
    ]
    assert rows == (10, 7, 12) and shape_of(str(folder)) == (29, 3)
    assert (shape.shards, shape.n_features, shape.row_bytes) == (3, 3, 3 * 8 + 8)


def test_a_folder_holds_only_shards(tmp_path: Path) -> None:
    # Given a folder with a README beside its shards
    folder = _folder(tmp_path)
    (folder / "README.md").write_text("notes")

    # When / Then
    with pytest.raises(DatasetError, match=r"README\.md is not a shard"):
        local_shards(str(folder))


def test_a_folder_uploads_its_shards_as_they_are(tmp_path: Path) -> None:
    # Given
    folder = _folder(tmp_path)

    # When
    plan = upload_plan(str(folder), None, Path())
    assert plan is not None
    objects = dict(plan.objects())

    # Then under one prefix named by their contents, each file's bytes
    assert plan.key.startswith("uploads/") and plan.key.endswith("-shards/")
    assert objects == {
        plan.key + rel: (folder / rel).read_bytes() for rel in ("a.npz", "b/c.npz", "b/d.npz")
    }
    assert upload_plan(str(folder), None, Path()).key == plan.key  # type: ignore[union-attr]


def test_a_large_file_is_shuffled_once_and_cut_into_read_layout_shards(tmp_path: Path) -> None:
    # Given a file of about 2.3 MiB (9,000 rows of 32 float64 features and a label)
    X, y = synthetic_regression(n=9000, d=32, k=1, seed=1)
    path = write_npz(tmp_path / "big.npz", X, y)

    # When cut into shards of 1 MiB
    plan = upload_plan(str(path), None, Path(), shard_mb=1)
    assert plan is not None
    objects = dict(plan.objects())
    rows, shape = dataset_shape(str(path), shard_mb=1)

    # Then shards of 1 MiB in the read layout, their rows every row once in the fixed order
    assert plan.key.endswith("-big-1mb/") and not plan.csv_label
    assert list(objects) == [plan.key + f"part-0000{i}.npz" for i in range(len(objects))]
    parts = [read_dataset(data, "part.npz") for data in objects.values()]
    assert [len(p[0]) for p in parts] == list(rows) and sum(rows) == 9000
    assert all(npz_layout(io.BytesIO(data)) is not None for data in objects.values())
    order = np.random.default_rng(SHUFFLE_SEED).permutation(9000)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y[order])
    assert shape.shards == len(rows) == 3 and shape.largest_shard_bytes <= 1024 * 1024


def test_a_small_file_uploads_as_it_is(tmp_path: Path) -> None:
    # Given
    X, y = synthetic_regression(n=50, d=3, k=1, seed=1)
    path = write_npz(tmp_path / "small.npz", X, y)

    # When
    plan = upload_plan(str(path), None, Path())

    # Then one object, its bytes, keyed by its contents
    assert plan is not None and plan.csv_label
    assert dict(plan.objects()) == {plan.key: path.read_bytes()}
    assert plan.key == upload_key(path.read_bytes(), "small.npz")
    assert upload_plan("builtin:digits", None) is None
