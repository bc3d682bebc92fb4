"""The billing rules: encoded sizes from shapes, DynamoDB's item sizes and capacity units."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stepnet.billing import rules
from trainer.store import codec
from trainer.store.tensors import tensor_item


@pytest.mark.parametrize(
    "bundle",
    [
        {},
        {"W": np.zeros((784, 256), np.float32), "b": np.zeros(256, np.float32)},
        {"sizes": np.zeros((118, 4), np.int64)},
        {"A": np.zeros((1, 1), np.float32)},
        {"m_W": np.zeros((3, 3)), "m_b": np.zeros(3), "v_W": np.zeros((3, 3)), "v_b": np.zeros(3)},
        {"X": np.zeros((0, 7), np.float32), "Y": np.zeros((0, 2), np.float32)},
        {"dZ": np.zeros((2, 3, 4), np.float16)},
        {"T": np.zeros((5, 3), ">f8").T, "s": np.float32(2.5), "flag": np.ones(3, bool)},
        {"view": np.broadcast_to(np.zeros((), np.float32), (1000, 70))},
    ],
    ids=lambda bundle: ",".join(bundle) or "empty",
)
def test_encoded_bytes_equal_the_codec(bundle: dict[str, np.ndarray]) -> None:
    # Given a bundle, When its size is computed from shapes alone
    predicted = rules.encoded_bytes(rules.bundle_spec(bundle))

    # Then it is exactly the length of the codec's bytes
    assert predicted == len(codec.encode(bundle))


def test_encoded_bytes_of_a_large_array_need_no_allocation() -> None:
    # Given MNIST's training set shape (188 MB if allocated)
    f32 = np.dtype(np.float32)
    spec = {"X": ((60_000, 784), f32, False), "Y": ((60_000, 10), f32, False)}

    # When / Then: the arrays' bytes plus the small .npz overhead
    size = rules.encoded_bytes(spec)
    assert 0 < size - (60_000 * 794 * 4) < 1_000


@pytest.mark.parametrize(
    ("size", "wru", "rru"),
    [
        (0, 1, 1),
        (1, 1, 1),
        (1024, 1, 1),
        (1025, 2, 1),
        (4096, 4, 1),
        (4097, 5, 2),
        (350_000, 342, 86),
    ],
)
def test_capacity_units_follow_dynamodb_rules(size: int, wru: int, rru: int) -> None:
    # Given an item of `size` bytes, Then 1 WRU per started KB and 1 RRU per started 4 KB
    assert rules.write_units(size) == wru
    assert rules.read_units(size) == rru


def test_item_size_counts_names_and_values() -> None:
    # Given an item with a string, a number and a binary value
    item = {"key": {"S": "abc"}, "n": {"N": "12345"}, "payload": {"B": b"\x00" * 10}}

    # When / Then: names (3 + 1 + 7) plus values (3 + ceil(5/2)+1 + 10)
    assert rules.item_bytes(item) == 11 + 3 + 4 + 10


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"L": [{"S": "ab"}, {"N": "1"}]}, 3 + (1 + 2) + (1 + 2)),
        ({"M": {"k": {"BOOL": True}}}, 3 + 1 + 1 + 1),
        ({"SS": ["a", "bc"]}, 3),
        ({"NULL": True}, 1),
    ],
)
def test_nested_values_count_their_elements(value: dict[str, Any], size: int) -> None:
    # Given a list, a map, a string set or a null, When / Then
    assert rules.attribute_value_bytes(value) == size


def test_an_unknown_attribute_type_is_refused() -> None:
    # When / Then
    with pytest.raises(ValueError, match="unknown DynamoDB attribute type"):
        rules.attribute_value_bytes({"X": 1})


@pytest.mark.parametrize("scratch", [False, True], ids=["immutable", "scratch"])
def test_the_seed_design_holds_a_spilled_bundle_inline(scratch: bool) -> None:
    # Given the item of a bundle of 1,000 encoded bytes spilled to S3, and the same bundle inline
    key, expires = "run/weights/v000001/layer1", 1_700_000_000 if scratch else None
    spilled = tensor_item(key, 1000, spilled=True, expires_at=expires)
    inline = tensor_item(key, 1000, spilled=False, expires_at=expires, payload=bytes(1000))

    # When the seed design's item is sized from the spilled one
    seed = rules.inline_item_bytes(spilled, 1000)

    # Then it is the inline item: the payload in place of the pointer
    assert seed == rules.item_bytes(inline)
    pointer = len("s3_key") + len(("tensors/scratch/" if scratch else "tensors/") + key)
    assert seed - rules.item_bytes(spilled) == len("payload") + 1000 - pointer
