"""trainer.data: shards checked one by one, read in place by byte ranges, cut in blocks, split,
and their statistics merged exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest

from stepnet.datasets import npz_bytes, synthetic_classification
from trainer.data.blocks import (
    CHUNK_ROWS,
    block_segments,
    cut_blocks,
    cut_segments,
    group_shards,
    order_segments,
    shard_groups,
    shard_part,
    split_blocks,
)
from trainer.data.dataset import shard_moments
from trainer.data.errors import DatasetError
from trainer.data.rows import ArrayShard, RangeShard, read_segments
from trainer.data.shards import (
    SHUFFLE_SEED,
    CheckedShard,
    Schema,
    check_schemas,
    check_shard,
    encode_shard,
    npz_layout,
    shard_row_counts,
    single_file_shards,
)
from trainer.data.stats import Moments, chunk_moments, mean_and_std, merge, merge_all


def savez(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def check(
    data: bytes,
    name: str = "s3://b/p/part-3.npz",
    *,
    classification: bool = True,
    n_outputs: int = 3,
) -> CheckedShard:
    return check_shard(data, name, label=None, classification=classification, n_outputs=n_outputs)


X4, Y4 = synthetic_classification(n=30, d=4, k=3, seed=1)


# --- one shard, checked -------------------------------------------------------------------------


def nan_x() -> bytes:
    X = X4.copy()
    X[7, 2] = np.nan
    return savez(X=X, y=Y4)


def inf_x() -> bytes:
    X = X4.copy()
    X[2, 1] = np.inf
    return savez(X=X, y=Y4)


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (nan_x(), ["X has 1 NaN value", "row 7, column 2"]),
        (inf_x(), ["X has 1 infinite value", "row 2, column 1"]),
        (savez(X=np.zeros((0, 4)), y=np.zeros(0, np.int64)), ["X has no rows"]),
        (b"", ["the .npz file is empty"]),
        (b"PK\x03\x04 not really a zip", ["the .npz file is corrupt"]),
        (npz_bytes(X4, Y4)[:-40], ["corrupt"]),
        (savez(X=X4), ["no array 'y'"]),
        (savez(X=X4, y=Y4 % 2 + 0.5), ["classification labels must be integers"]),
        (savez(X=X4, y=np.arange(30) % 5), ["it holds 5 classes", "units is 3"]),
    ],
    ids=[
        "nan",
        "inf",
        "empty",
        "zero-bytes",
        "unreadable",
        "truncated",
        "no-y",
        "floats",
        "classes",
    ],
)
def test_a_bad_shard_is_named_with_its_problem(data: bytes, fragments: list[str]) -> None:
    # When
    with pytest.raises(DatasetError) as raised:
        check(data)

    # Then the message names the shard, then the problem
    message = str(raised.value)
    assert message.startswith("dataset: shard s3://b/p/part-3.npz: "), message
    for fragment in fragments:
        assert fragment in message


def test_a_bad_csv_shard_is_named_with_its_row_and_column() -> None:
    # Given a CSV shard with a missing value
    data = b"a,b,label\n1,2,0\n3,,1\n"

    # When / Then
    with pytest.raises(
        DatasetError, match=r"shard d/part-2\.csv: line 3 \(data row 2\), column 'b'"
    ):
        check(data, "d/part-2.csv", n_outputs=2)


def test_regression_targets_must_match_the_outputs() -> None:
    # When / Then
    with pytest.raises(DatasetError, match=r"2 regression targets but model\.layers"):
        check(savez(X=X4, y=np.zeros((30, 2))), classification=False, n_outputs=1)


@pytest.mark.parametrize(
    ("other", "fragment"),
    [
        (savez(X=X4[:, :3], y=Y4), "has 3 features (columns of X), not 4"),
        (savez(X=X4.astype(np.float64), y=Y4), "stores X as float64, not float32"),
        (savez(X=X4, y=Y4.astype(np.int32)), "stores y as (n,) int32, not (n,) int64"),
        (b"x1,x2,x3,x4,label\n1,2,3,4,0\n", "is a .csv file, not .npz"),
    ],
    ids=["columns", "x-dtype", "y-dtype", "format"],
)
def test_shards_of_another_schema_are_named_against_the_first(other: bytes, fragment: str) -> None:
    # Given a good first shard and another one
    first = check(savez(X=X4, y=Y4), "p/a.npz")
    name = "p/b.csv" if other.startswith(b"x1") else "p/b.npz"
    second = check(other, name)

    # When / Then
    with pytest.raises(DatasetError) as raised:
        check_schemas([("p/a.npz", first.schema), (name, second.schema)])
    assert str(raised.value).startswith(f"dataset: shard {name} {fragment} (as shard p/a.npz)")


def test_csv_shards_compare_their_header() -> None:
    # Given two CSV shards whose columns differ by name
    a = check(b"x,y,label\n1,2,0\n", "a.csv", n_outputs=2)
    b = check(b"x,z,label\n1,2,1\n", "b.csv", n_outputs=2)

    # When / Then
    with pytest.raises(DatasetError, match=r"has the columns \['x', 'z', 'label'\]"):
        check_schemas([("a.csv", a.schema), ("b.csv", b.schema)])


# --- the read layout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [lambda X, y: savez(X=X, y=y), encode_shard],
    ids=["numpy.savez", "stepnet"],
)
def test_uncompressed_npz_rows_are_read_in_place_by_byte_ranges(encode: object) -> None:
    # Given an uncompressed .npz shard
    X, y = X4.astype(np.float32), Y4
    data = encode(X, y)  # type: ignore[operator]

    # When its layout is found and rows are read by byte ranges
    layout = npz_layout(io.BytesIO(data))
    assert layout is not None
    x, yl = layout
    calls = []

    def fetch(start: int, stop: int) -> bytes:
        calls.append((start, stop))
        return data[start:stop]

    shard = RangeShard(fetch, x.offset, yl.offset, 4, "<f4", y.dtype.str, None)
    X_rows, y_rows = shard.read(5, 12)

    # Then they are the rows, from exactly two ranges of exactly their bytes
    np.testing.assert_array_equal(X_rows, X[5:12])
    np.testing.assert_array_equal(y_rows, y[5:12])
    assert [stop - start for start, stop in calls] == [7 * 4 * 4, 7 * 8]
    assert check(data).layout is not None


@pytest.mark.parametrize(
    "data",
    [
        savez(compressed=True, X=X4, y=Y4),
        savez(X=np.asfortranarray(X4), y=Y4),
        npz_bytes(X4, Y4),  # deflated
    ],
    ids=["compressed", "fortran", "deflated"],
)
def test_other_npz_shards_are_converted(data: bytes) -> None:
    # When / Then: no layout, so PrepareShards converts them (and still reads them right)
    assert npz_layout(io.BytesIO(data)) is None
    checked = check(data)
    np.testing.assert_array_equal(checked.X, X4)


def test_a_single_file_is_shuffled_once_and_cut() -> None:
    # Given a file of 1,000 rows of 40 bytes
    X = np.arange(1000 * 8, dtype=np.float32).reshape(1000, 8)
    y = np.arange(1000, dtype=np.int64)

    # When cut into shards of 4,000 bytes (a row: 8 float32 features and an int64 label)
    shards = single_file_shards(X, y, shard_bytes=4000)

    # Then shards of 100 rows, the rows in the fixed seed's order, every row once
    assert [len(s[1]) for s in shards] == [100] * 10
    order = np.random.default_rng(SHUFFLE_SEED).permutation(1000)
    np.testing.assert_array_equal(np.concatenate([s[1] for s in shards]), order)
    assert shard_row_counts(1001, 40, 4000) == [100] * 10 + [1]
    assert shard_row_counts(50, 40, None) == [50]
    (whole,) = single_file_shards(X, y)
    np.testing.assert_array_equal(whole[1], order)


# --- blocks and the split ------------------------------------------------------------------------


def test_blocks_cover_each_shard_in_order_the_last_one_short() -> None:
    # When
    blocks = cut_blocks((10, 3, 8), 4)

    # Then
    assert list(zip(blocks.shard, blocks.start, blocks.rows, strict=True)) == [
        (0, 0, 4), (0, 4, 4), (0, 8, 2), (1, 0, 3), (2, 0, 4), (2, 4, 4),
    ]  # fmt: skip


@pytest.mark.parametrize(("rows", "block_rows"), [((10, 3, 8), 4), ((500, 37, 1234), 16)])
def test_the_split_is_whole_blocks_and_covers_every_row_once(
    rows: tuple[int, ...], block_rows: int
) -> None:
    # When
    split = split_blocks(rows, block_rows, 0.2, seed=3)

    # Then the parts are disjoint whole blocks, the validation part the fewest blocks that hold
    # round(n × 0.2) rows
    assert set(split.train.tolist()).isdisjoint(split.val.tolist())
    assert sorted([*split.train.tolist(), *split.val.tolist()]) == list(
        range(len(split.blocks.rows))
    )
    target = round(sum(rows) * 0.2)
    assert split.n_val >= target > split.n_val - int(split.blocks.rows[split.val[-1]])
    assert split.n_train + split.n_val == sum(rows)
    perm = np.random.default_rng(3).permutation(len(split.blocks.rows))
    np.testing.assert_array_equal(np.concatenate([split.val, split.train]), perm)


def test_a_split_without_training_blocks_is_refused() -> None:
    # When / Then (2 blocks of 5 rows, 60% validation: 6 rows need both blocks)
    with pytest.raises(DatasetError, match="leaves no training block"):
        split_blocks((10,), 5, 0.6, seed=0)


def test_segments_of_an_order_are_its_rows() -> None:
    # Given blocks of 3 rows over two shards, in some order
    blocks = cut_blocks((7, 5), 3)
    order = np.array([4, 0, 1, 3, 2])  # shard 1 rows 3-4, shard 0 rows 0-5 (adjacent), ...

    # When
    segments = order_segments(blocks, order, 1, 9)

    # Then rows 1..8 of the sequence, adjacent blocks joined
    assert segments == [(1, 4, 5), (0, 0, 6), (1, 0, 1)]
    assert block_segments(blocks, order) == [(1, 3, 5), (0, 0, 6), (1, 0, 3), (0, 6, 7)]


def test_chunks_cut_segments_at_a_fixed_number_of_rows() -> None:
    # When / Then
    assert cut_segments([(0, 0, 5), (1, 2, 4)], 3) == [
        [(0, 0, 3)],
        [(0, 3, 5), (1, 2, 3)],
        [(1, 3, 4)],
    ]


def test_groups_of_shards_are_consecutive_near_equal_and_at_most_40() -> None:
    # When / Then
    assert shard_groups(3) == 3 and shard_groups(1000) == 40
    ranges = [group_shards(97, g) for g in range(shard_groups(97))]
    assert [s for r in ranges for s in r] == list(range(97))
    assert {len(r) for r in ranges} == {2, 3}


# --- statistics ----------------------------------------------------------------------------------


def test_moments_merged_in_pieces_agree_with_numpy_on_the_whole() -> None:
    # Given rows in uneven pieces, with a large mean and a small spread (where a naive sum of
    # squares would lose digits)
    rng = np.random.default_rng(0)
    X = 1e4 + rng.normal(size=(10_001, 5)).astype(np.float32)
    pieces = np.split(X, [3, 4_000, 4_001, 9_999])

    # When merged piece by piece
    mean, std = mean_and_std(merge_all([chunk_moments(p) for p in pieces], 5))

    # Then within float rounding of numpy on the whole
    np.testing.assert_allclose(mean, X.mean(axis=0, dtype=np.float64), rtol=1e-13)
    np.testing.assert_allclose(std, X.std(axis=0, dtype=np.float64), rtol=1e-9)


def test_a_merge_with_nothing_is_the_identity_and_constant_features_get_std_one() -> None:
    # Given
    X = np.array([[1.0, 5.0], [3.0, 5.0]])
    moments = chunk_moments(X)

    # When / Then
    assert merge(Moments.empty(2), moments) is moments
    assert merge(moments, Moments.empty(2)) is moments
    mean, std = mean_and_std(moments)
    np.testing.assert_array_equal(mean, [2.0, 5.0])
    np.testing.assert_array_equal(std, [1.0, 1.0])  # the second feature is constant


def test_shard_moments_are_the_training_rows_in_chunks_read_anywhere_the_same() -> None:
    # Given a shard with more training rows than a chunk, read in memory and by byte ranges
    rng = np.random.default_rng(1)
    X = rng.normal(size=(CHUNK_ROWS + 700, 3)).astype(np.float32)
    y = np.arange(len(X)) % 2
    data = encode_shard(X, y)
    layout = npz_layout(io.BytesIO(data))
    assert layout is not None
    ranged = RangeShard(
        lambda a, b: data[a:b], layout[0].offset, layout[1].offset, 3, "<f4", y.dtype.str, None
    )
    split = split_blocks((len(X),), 16, 0.25, seed=2)

    # When
    in_memory = shard_moments(ArrayShard(X, y), split, 0, 3)
    by_ranges = shard_moments(ranged, split, 0, 3)

    # Then bit for bit the same, and the training rows' statistics
    assert in_memory.count == by_ranges.count == split.n_train
    np.testing.assert_array_equal(in_memory.mean, by_ranges.mean)
    np.testing.assert_array_equal(in_memory.m2, by_ranges.m2)
    train, _ = read_segments([ArrayShard(X, y)], shard_part(split, "train", 0))
    np.testing.assert_allclose(in_memory.mean, train.mean(axis=0, dtype=np.float64), rtol=1e-12)


def test_a_schema_knows_its_row_bytes() -> None:
    # Given / When / Then
    schema = Schema(format="npz", n_features=784, x_dtype="<f4", y_dtype="<i8")
    assert schema.row_bytes == 784 * 4 + 8
    assert (
        Schema(format="npz", n_features=3, x_dtype="|u1", y_dtype="<f4", y_columns=2).row_bytes
        == 3 + 8
    )
