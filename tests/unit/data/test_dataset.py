"""trainer.data: reading .npz/.csv files, clear errors for bad data, split and standardize."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.data.errors import DatasetError
from trainer.data.prepare import (
    PreparedData,
    encode_labels,
    prepare,
    split_indices,
    split_sizes,
    standardize,
)
from trainer.data.readers import read_csv, read_dataset, read_npz


def npz(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def blobs(n: int = 40, d: int = 3, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.normal(loc=y[:, None] * 2.0, scale=1.0, size=(n, d)) * 10 + 5
    return X, y


# --- read_npz -----------------------------------------------------------------------------------


def test_read_npz_returns_the_stored_arrays() -> None:
    # Given
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([0, 1, 0, 1])

    # When
    got_X, got_y = read_npz(npz(X=X, y=y))

    # Then
    np.testing.assert_array_equal(got_X, X)
    np.testing.assert_array_equal(got_y, y)
    assert got_X.dtype == np.float32


def test_read_npz_accepts_2d_float_targets() -> None:
    # Given
    X, y = np.ones((5, 2)), np.zeros((5, 3))

    # When
    _, got_y = read_npz(npz(X=X, y=y))

    # Then
    assert got_y.shape == (5, 3)


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"X": np.ones((3, 2))}, "no array 'y'"),
        ({"features": np.ones((3, 2)), "labels": np.ones(3)}, "no array 'X' or 'y'"),
        ({"X": np.ones(3), "y": np.ones(3)}, "X must be 2-D"),
        ({"X": np.ones((3, 2, 2)), "y": np.ones(3)}, "X must be 2-D"),
        ({"X": np.ones((3, 2)), "y": np.ones((3, 1, 1))}, "y must be 1-D"),
        ({"X": np.ones((3, 2)), "y": np.ones(4)}, "X has 3 rows but y has 4"),
        ({"X": np.ones((0, 2)), "y": np.ones(0)}, "X has no rows"),
        ({"X": np.ones((3, 0)), "y": np.ones(3)}, "X has no columns"),
        ({"X": np.ones((3, 2)), "y": np.ones((3, 0))}, "y has shape (n, 0)"),
        ({"X": np.array([["a", "b"], ["c", "d"]]), "y": np.ones(2)}, "X has dtype <U1"),
        ({"X": np.ones((2, 2), dtype=bool), "y": np.ones(2)}, "not numeric"),
        ({"X": np.ones((2, 2), dtype=complex), "y": np.ones(2)}, "not numeric"),
        ({"X": np.ones((2, 2)), "y": np.array(["a", "b"])}, "y has dtype"),
        ({"X": np.array([[1, None]], dtype=object), "y": np.ones(1)}, "X is an object array"),
    ],
)
def test_read_npz_rejects_malformed_arrays(arrays: dict[str, np.ndarray], expected: str) -> None:
    # Given
    data = npz(**arrays)

    # When
    with pytest.raises(DatasetError) as caught:
        read_npz(data)

    # Then
    assert expected in str(caught.value)
    assert str(caught.value).startswith("dataset: ")


def test_read_npz_names_nan_count_and_first_position() -> None:
    # Given
    X = np.ones((20, 5))
    X[17, 4] = X[18, 0] = X[19, 1] = np.nan

    # When
    with pytest.raises(DatasetError) as caught:
        read_npz(npz(X=X, y=np.zeros(20)))

    # Then
    message = str(caught.value)
    assert "X has 3 NaN values (first at row 17, column 4)" in message
    assert "clean or impute" in message


def test_read_npz_rejects_infinite_targets() -> None:
    # Given
    y = np.array([0.0, np.inf, -np.inf, np.nan])

    # When
    with pytest.raises(DatasetError) as caught:
        read_npz(npz(X=np.ones((4, 1)), y=y))

    # Then
    assert "y has 1 NaN and 2 infinite values (first at row 1)" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the .npz file is empty"),
        (b"this is not an npz file", "not an .npz (zip) archive"),
        (b"PK\x03\x04 truncated zip", "the .npz file is corrupt"),
        (npz(X=np.ones((50, 4)), y=np.ones(50))[:300], "the .npz file is corrupt"),
    ],
    ids=["empty", "text", "zip-magic", "truncated"],
)
def test_read_npz_rejects_corrupt_bytes(data: bytes, expected: str) -> None:
    # When
    with pytest.raises(DatasetError) as caught:
        read_npz(data)

    # Then
    assert expected in str(caught.value)
    assert "numpy.savez(path, X=X, y=y)" in str(caught.value)


def test_read_npz_rejects_flipped_bytes_inside_a_compressed_archive() -> None:
    # Given
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=np.random.default_rng(0).random((200, 5)), y=np.zeros(200))
    good = buffer.getvalue()

    # When
    outcomes = set()
    for position in range(40, len(good) - 100, 97):
        damaged = bytearray(good)
        damaged[position] ^= 0xFF
        try:
            read_npz(bytes(damaged))
            outcomes.add("read")
        except DatasetError:
            outcomes.add("DatasetError")

    # Then: any other exception type fails the test; most damage is detected
    assert "DatasetError" in outcomes


def test_read_npz_rejects_a_plain_npy_file() -> None:
    # Given
    buffer = io.BytesIO()
    np.save(buffer, np.ones((3, 2)))

    # When
    with pytest.raises(DatasetError) as caught:
        read_npz(buffer.getvalue())

    # Then
    assert "single .npy array, not an .npz archive" in str(caught.value)


# --- read_csv -----------------------------------------------------------------------------------


def test_read_csv_uses_the_last_column_as_label_by_default() -> None:
    # Given
    data = b"a,b,target\n1,2,0\n3,4,1\n5,6,1\n"

    # When
    X, y = read_csv(data, None)

    # Then
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(y, [0, 1, 1])
    assert X.dtype == y.dtype == np.float64


def test_read_csv_uses_the_named_label_column() -> None:
    # Given
    data = b"a, label ,c\n1,0,2\n3,1,4\n"

    # When
    X, y = read_csv(data, "label")

    # Then
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(y, [0, 1])


def test_read_csv_handles_bom_crlf_quotes_blank_lines_and_one_row() -> None:
    # Given
    data = '\ufeff"x1","x2",y\r\n"1.5", 2e1 ,3\r\n\r\n'.encode()

    # When
    X, y = read_csv(data, None)

    # Then
    np.testing.assert_array_equal(X, [[1.5, 20.0]])
    np.testing.assert_array_equal(y, [3.0])


def test_read_csv_accepts_integer_column_names() -> None:
    # Given: pandas writes a DataFrame's default columns as 0, 1, 2, ...
    data = b"0,1,2\n1,2,3\n"

    # When
    X, y = read_csv(data, "2")

    # Then
    assert X.shape == (1, 2)
    np.testing.assert_array_equal(y, [3])


def test_read_csv_unknown_label_lists_the_columns() -> None:
    # Given
    data = b"sepal,petal,species\n1,2,0\n"

    # When
    with pytest.raises(DatasetError) as caught:
        read_csv(data, "Species")

    # Then
    message = str(caught.value)
    assert "dataset.label 'Species' is not a column" in message
    assert "['sepal', 'petal', 'species']" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the CSV file is empty"),
        (b"\n  \n\t\n", "the CSV file is empty"),
        (b"a,b,y\n", "has a header (['a', 'b', 'y']) but no data rows"),
        (b"a,b,y\n\n\n", "but no data rows"),
        (b"a,b,y\n1,2,3\n4,abc,6\n", "line 3 (data row 2), column 'b': 'abc' is not a number"),
        (b"a,b,y\n1,,3\n", "line 2 (data row 1), column 'b' is empty (a missing value)"),
        (b"a,b,y\n1,2,3\n\n4,5\n", "line 4 (data row 2) has 2 values but the header has 3 columns"),
        (b"a,b,y\n1,2,3,4\n5,6,7,8\n", "the data rows have 4 values but the header has 3 columns"),
        (b"a,b,y\n1,2,3\n4,nan,6\n", "1 NaN value (first at data row 2, column 'b')"),
        (b"a,b,y\n1,2,inf\n", "1 infinite value (first at data row 1, column 'y')"),
        (b"a;b;y\n1;2;3\n", "it needs at least one feature column and a label column"),
        (b"1.5,2,0\n3,4,1\n", "the CSV header looks like data (column 1 is named '1.5')"),
        (b"a,a,y\n1,2,3\n", "repeats column names ['a']"),
        (b"a,,y\n1,2,3\n", "column 2 of the CSV header has no name"),
        (b"a,b\n\xff\xfe,1\n", "not UTF-8"),
        (b"a,b,y\n1,2,3\n   \n", "line 3 (data row 2) has 1 value but the header has 3 columns"),
        (b"a,b,y\n1,1_000,3\n", "column 'b': '1_000' is not a number"),
    ],
)
def test_read_csv_rejects_malformed_files(data: bytes, expected: str) -> None:
    # When
    with pytest.raises(DatasetError) as caught:
        read_csv(data, None)

    # Then
    assert expected in str(caught.value)


# --- read_dataset -------------------------------------------------------------------------------


def test_read_dataset_dispatches_on_the_extension() -> None:
    # Given
    csv_data = b"a,y\n1,0\n2,1\n"
    npz_data = npz(X=np.ones((2, 1)), y=np.array([0, 1]))

    # When
    from_csv = read_dataset(csv_data, "s3://bucket/datasets/Iris.CSV", None)
    from_npz = read_dataset(npz_data, "data/train.npz", None)

    # Then
    np.testing.assert_array_equal(from_csv[0], [[1], [2]])
    np.testing.assert_array_equal(from_npz[1], [0, 1])


@pytest.mark.parametrize(
    ("name", "label", "expected"),
    [
        ("train.parquet", None, "use a file ending in .npz or .csv"),
        ("train.npz", "y", "dataset.label ('y') applies to CSV files only"),
    ],
)
def test_read_dataset_rejects_unknown_formats_and_npz_labels(
    name: str, label: str | None, expected: str
) -> None:
    # Given
    data = npz(X=np.ones((2, 1)), y=np.array([0, 1]))

    # When
    with pytest.raises(DatasetError) as caught:
        read_dataset(data, name, label)

    # Then
    assert expected in str(caught.value)


# --- prepare: classification ---------------------------------------------------------------------


def test_prepare_classification_one_hot_encodes_with_sorted_python_int_classes() -> None:
    # Given: labels that are not 0..k-1, stored as whole-number floats (as a CSV gives them)
    X = np.arange(20, dtype=np.float64).reshape(10, 2)
    y = np.array([7, 3, 5, 7, 3, 5, 7, 3, 5, 7], dtype=np.float64)

    # When
    data = prepare(X, y, classification=True, n_outputs=3, validation_fraction=0.2, seed=1)

    # Then
    assert data.classes == [3, 5, 7]
    assert all(type(c) is int for c in data.classes)
    assert data.Y_train.shape == (8, 3) and data.Y_val.shape == (2, 3)
    assert data.Y_train.dtype == data.Y_val.dtype == np.float32
    train, val = split_indices(10, 0.2, 1)
    np.testing.assert_array_equal(data.Y_train.argmax(1), np.searchsorted([3, 5, 7], y[train]))
    np.testing.assert_array_equal(data.Y_val.argmax(1), np.searchsorted([3, 5, 7], y[val]))
    assert (data.Y_train.sum(1) == 1).all()
    assert data.n_features == 2 and data.n_outputs == 3


def test_prepare_classes_come_from_all_labels_not_just_the_training_part() -> None:
    # Given: label 9 appears once, so it may land in the validation part only
    X, y = blobs(n=30, k=2)
    y = y.copy()
    y[0] = 9

    # When
    data = prepare(X, y, classification=True, n_outputs=3, validation_fraction=0.5, seed=0)

    # Then
    assert data.classes == [0, 1, 9]
    assert data.Y_train.sum() + data.Y_val.sum() == 30


def test_prepare_class_count_mismatch_names_the_last_layer_units() -> None:
    # Given
    X, y = blobs(k=3)

    # When
    with pytest.raises(DatasetError) as caught:
        prepare(X, y, classification=True, n_outputs=10, validation_fraction=0.2, seed=0)

    # Then
    message = str(caught.value)
    assert "3 classes [0, 1, 2]" in message
    assert "model.layers[-1].units is 10" in message
    assert "set model.layers[-1].units to 3" in message


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        (np.full(10, 4), "single class (4)"),
        (np.array([0, 1, 0.5, 1, 0, 1, 0, 1, 0, 1]), "labels must be integers, but y[2] is 0.5"),
        (np.zeros((10, 2)), "classification needs y as 1-D integer labels"),
    ],
)
def test_prepare_rejects_unusable_classification_labels(y: np.ndarray, expected: str) -> None:
    # Given
    X = np.ones((10, 2))

    # When
    with pytest.raises(DatasetError) as caught:
        prepare(X, y, classification=True, n_outputs=2, validation_fraction=0.2, seed=0)

    # Then
    assert expected in str(caught.value)


def test_prepare_checks_the_arrays_it_is_given() -> None:
    # Given
    X = np.ones((10, 2))
    X[3, 1] = np.nan

    # When
    with pytest.raises(DatasetError) as caught:
        prepare(
            X, np.arange(10) % 2, classification=True, n_outputs=2, validation_fraction=0.2, seed=0
        )

    # Then
    assert "X has 1 NaN value (first at row 3, column 1)" in str(caught.value)


# --- prepare: regression ----------------------------------------------------------------------


def test_prepare_regression_makes_1d_targets_a_column() -> None:
    # Given
    X = np.arange(30, dtype=np.float64).reshape(10, 3)
    y = np.arange(10, dtype=np.float64) * 1.5

    # When
    data = prepare(X, y, classification=False, n_outputs=1, validation_fraction=0.3, seed=4)

    # Then
    train, val = split_indices(10, 0.3, 4)
    assert data.classes is None
    assert data.Y_train.shape == (7, 1) and data.Y_val.shape == (3, 1)
    assert data.Y_train.dtype == np.float32
    np.testing.assert_array_equal(data.Y_train[:, 0], y[train])
    np.testing.assert_array_equal(data.Y_val[:, 0], y[val])


def test_prepare_regression_keeps_2d_targets() -> None:
    # Given
    X = np.ones((10, 2))
    y = np.arange(30, dtype=np.float64).reshape(10, 3)

    # When
    data = prepare(X, y, classification=False, n_outputs=3, validation_fraction=0.2, seed=0)

    # Then
    assert data.Y_train.shape == (8, 3)


@pytest.mark.parametrize(("y_shape", "n_outputs", "k"), [((10,), 3, 1), ((10, 2), 1, 2)])
def test_prepare_regression_target_count_mismatch_names_the_last_layer_units(
    y_shape: tuple[int, ...], n_outputs: int, k: int
) -> None:
    # Given
    X, y = np.ones((10, 2)), np.zeros(y_shape)

    # When
    with pytest.raises(DatasetError) as caught:
        prepare(X, y, classification=False, n_outputs=n_outputs, validation_fraction=0.2, seed=0)

    # Then
    message = str(caught.value)
    assert f"model.layers[-1].units is {n_outputs}" in message
    assert f"set model.layers[-1].units to {k}" in message


# --- prepare: split ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"),
    [(100, 0.2, 20), (10, 0.25, 2), (10, 0.35, 4), (5, 0.01, 1), (3, 0.5, 2), (2, 0.5, 1)],
)
def test_split_sizes_follow_the_documented_rule(n: int, fraction: float, n_val: int) -> None:
    # Given
    X, y = np.arange(n * 2, dtype=np.float64).reshape(n, 2), np.arange(n, dtype=np.float64)

    # When
    data = prepare(X, y, classification=False, n_outputs=1, validation_fraction=fraction, seed=0)

    # Then
    assert data.X_val.shape == (n_val, 2)
    assert data.X_train.shape == (n - n_val, 2)
    assert split_sizes(n, fraction) == (n - n_val, n_val)


def test_split_is_the_documented_permutation() -> None:
    # Given
    n, fraction, seed = 50, 0.2, 11

    # When
    train, val = split_indices(n, fraction, seed)

    # Then
    perm = np.random.default_rng(seed).permutation(n)
    np.testing.assert_array_equal(val, perm[:10])
    np.testing.assert_array_equal(train, perm[10:])


def test_prepare_is_deterministic_by_seed() -> None:
    # Given
    X, y = blobs(n=60)

    # When
    first = prepare(X, y, classification=True, n_outputs=3, validation_fraction=0.2, seed=5)
    again = prepare(X, y, classification=True, n_outputs=3, validation_fraction=0.2, seed=5)
    other = prepare(X, y, classification=True, n_outputs=3, validation_fraction=0.2, seed=6)

    # Then
    for name in ("X_train", "Y_train", "X_val", "Y_val", "mean", "std"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.X_val, other.X_val)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=500),
    fraction=st.floats(min_value=0.01, max_value=0.99),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_split_partitions_the_samples(n: int, fraction: float, seed: int) -> None:
    # Given
    n_val = max(1, round(n * fraction))

    # When
    if n - n_val < 1:
        with pytest.raises(DatasetError, match=r"dataset\.validation_fraction"):
            split_indices(n, fraction, seed)
        with pytest.raises(DatasetError, match=r"dataset\.validation_fraction"):
            split_sizes(n, fraction)
        return
    train, val = split_indices(n, fraction, seed)

    # Then
    assert len(val) == n_val
    assert split_sizes(n, fraction) == (len(train), len(val))
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))


@pytest.mark.parametrize(("n", "fraction"), [(1, 0.2), (2, 0.9), (4, 0.95)])
def test_prepare_without_training_samples_names_the_validation_fraction(
    n: int, fraction: float
) -> None:
    # Given
    X, y = np.ones((n, 2)), np.zeros(n)

    # When
    with pytest.raises(DatasetError) as caught:
        prepare(X, y, classification=False, n_outputs=1, validation_fraction=fraction, seed=0)

    # Then
    message = str(caught.value)
    assert "leaves no training samples" in message
    assert "lower dataset.validation_fraction" in message


# --- prepare: standardization -------------------------------------------------------------------


def test_prepare_standardizes_with_training_statistics_only() -> None:
    # Given: the validation part is drawn from a shifted distribution
    X, y = blobs(n=200, d=4)
    train, val = split_indices(200, 0.25, 3)
    X = X.copy()
    X[val] += 1000.0

    # When
    data = prepare(X, y, classification=True, n_outputs=3, validation_fraction=0.25, seed=3)

    # Then
    assert isinstance(data, PreparedData)
    assert data.X_train.dtype == data.X_val.dtype == np.float32
    assert data.mean.dtype == data.std.dtype == np.float64
    np.testing.assert_allclose(data.X_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(data.mean, X[train].mean(0))
    np.testing.assert_allclose(data.std, X[train].std(0))
    expected_val = (X[val] - X[train].mean(0)) / X[train].std(0)
    np.testing.assert_allclose(data.X_val, expected_val, rtol=1e-5)
    assert data.X_val.mean() > 10  # the shift survives: val was not standardized on its own


def test_prepare_gives_a_constant_feature_std_one() -> None:
    # Given
    X, y = blobs(n=50, d=3)
    X = X.copy()
    X[:, 1] = 42.0

    # When
    data = prepare(X, y, classification=True, n_outputs=3, validation_fraction=0.2, seed=0)

    # Then
    assert data.std[1] == 1.0
    assert data.mean[1] == 42.0
    assert (data.X_train[:, 1] == 0).all() and (data.X_val[:, 1] == 0).all()
    assert np.isfinite(data.X_train).all()


def test_prepare_accepts_float32_and_integer_features() -> None:
    # Given
    X = (np.arange(40).reshape(20, 2) % 7).astype(np.uint8)
    y = np.arange(20) % 2

    # When
    data = prepare(X, y, classification=True, n_outputs=2, validation_fraction=0.2, seed=0)

    # Then
    assert data.X_train.dtype == np.float32
    np.testing.assert_allclose(data.X_train.mean(0), 0.0, atol=1e-6)


# --- standardize / encode_labels ----------------------------------------------------------------


def test_standardize_applies_saved_statistics() -> None:
    # Given
    X = np.array([[1.0, 5.0], [3.0, 5.0]])
    mean, std = np.array([2.0, 5.0]), np.array([0.5, 0.0])

    # When
    Z = standardize(X, mean, std)

    # Then
    assert Z.dtype == np.float32
    np.testing.assert_array_equal(Z, [[-2.0, 0.0], [2.0, 0.0]])


def test_standardize_rejects_a_feature_count_mismatch() -> None:
    # When
    with pytest.raises(DatasetError) as caught:
        standardize(np.ones((4, 3)), np.zeros(2), np.ones(2))

    # Then
    assert "X needs shape (n, 2)" in str(caught.value)


def test_encode_labels_follows_the_order_of_classes() -> None:
    # Given
    y = np.array([10, 30, 20, 10])

    # When
    onehot = encode_labels(y, [30, 10, 20])

    # Then
    assert onehot.dtype == np.float32
    np.testing.assert_array_equal(onehot, [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]])


@pytest.mark.parametrize(
    ("y", "classes", "expected"),
    [
        (np.array([0, 1, 4, 4]), [0, 1, 2], "label 4 (row 2) is not one of the classes [0, 1, 2]"),
        (np.array([0, 1.5]), [0, 1, 2], "label 1.5 (row 1)"),
        (np.array([0, 1]), [0, 1, 1], "repeat a label"),
        (np.array([0, 1]), [], "non-empty"),
        (np.zeros((2, 2)), [0, 1], "labels must be 1-D"),
    ],
)
def test_encode_labels_rejects_unknown_labels(
    y: np.ndarray, classes: list[int], expected: str
) -> None:
    # When
    with pytest.raises(DatasetError) as caught:
        encode_labels(y, classes)

    # Then
    assert expected in str(caught.value)


@settings(max_examples=30, deadline=None)
@given(labels=st.lists(st.integers(min_value=-5, max_value=5), min_size=1, max_size=50))
def test_encode_labels_round_trips_through_argmax(labels: list[int]) -> None:
    # Given
    classes = sorted(set(labels))

    # When
    onehot = encode_labels(np.array(labels), classes)

    # Then
    assert [classes[i] for i in onehot.argmax(1)] == labels
    assert (onehot.sum(1) == 1).all()
