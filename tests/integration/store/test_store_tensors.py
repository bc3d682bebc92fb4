"""TensorStore on moto: inline and spilled bundles, write-once, scratch TTL, batch reads, cache."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from trainer.contract.names import (
    S3_SCRATCH_PREFIX,
    S3_TENSORS_PREFIX,
    TENSORS_PK,
    TENSORS_TTL_ATTRIBUTE,
)
from trainer.store import (
    INLINE_LIMIT_BYTES,
    ImmutableTensorError,
    Store,
    StoreError,
    TensorIntegrityError,
    TensorNotFoundError,
    TensorStore,
    codec,
    keys,
)
from trainer.store.tensors import DIGEST, PAYLOAD, S3_KEY, tensor_item

RUN = "test-run"


def _immutable(version: int, part: int, kind: str = "weights") -> str:
    """An immutable bundle's key for these tests: a version's weights (or optimizer state)
    bundle, with a part number so that tests can write several."""
    key = (
        keys.optimizer_key(RUN, version) if kind == "optimizer" else keys.weights_key(RUN, version)
    )
    return f"{key}/part{part}"


NOW = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _tensor_store(aws: Any, **options: Any) -> TensorStore:
    options.setdefault("sleep", lambda seconds: None)
    return TensorStore(aws.dynamodb, aws.s3, table=aws.tensors_table, bucket=aws.bucket, **options)


def _item(aws: Any, key: str) -> dict[str, Any] | None:
    response = aws.dynamodb.get_item(
        TableName=aws.tensors_table, Key={TENSORS_PK: {"S": key}}, ConsistentRead=True
    )
    return response.get("Item")


def _object(aws: Any, s3_key: str) -> bytes:
    return aws.s3.get_object(Bucket=aws.bucket, Key=s3_key)["Body"].read()


def _layer(seed: int, rows: int = 4, cols: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W": rng.standard_normal((rows, cols)).astype(np.float32),
        "b": rng.standard_normal(cols).astype(np.float32),
    }


def _big_layer(seed: int = 0) -> dict[str, np.ndarray]:
    # 1024 x 1024 float32 = 4 MiB: far over the inline limit
    return _layer(seed, rows=1024, cols=1024)


def _assert_same(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, array in expected.items():
        assert actual[name].dtype == array.dtype, name
        assert actual[name].shape == array.shape, name
        assert actual[name].tobytes() == array.tobytes(), name


# --- inline and spilled --------------------------------------------------------------------------


def test_small_bundle_round_trips_inline(store: Store, aws: Any) -> None:
    # Given
    key = _immutable(0, 1)
    bundle = _layer(0)

    # When
    store.tensors.put(key, bundle)
    loaded = store.tensors.get(key)

    # Then
    _assert_same(loaded, bundle)
    item = _item(aws, key)
    assert item is not None
    assert "payload" in item and "s3_key" not in item
    assert TENSORS_TTL_ATTRIBUTE not in item
    data = codec.encode(bundle)
    assert item["digest"]["S"] == hashlib.sha256(data).hexdigest()
    assert int(item["nbytes"]["N"]) == len(data)


def test_multi_megabyte_layer_spills_to_s3_and_round_trips_exactly(store: Store, aws: Any) -> None:
    # Given
    key = _immutable(3, 1)
    bundle = _big_layer()

    # When
    store.tensors.put(key, bundle)
    store.tensors.clear_cache()
    loaded = store.tensors.get(key)

    # Then
    _assert_same(loaded, bundle)
    item = _item(aws, key)
    assert item is not None
    assert "payload" not in item
    assert item["s3_key"]["S"] == S3_TENSORS_PREFIX + key
    assert int(item["nbytes"]["N"]) > 4 * 1024 * 1024
    assert sum(len(name) + len(str(value)) for name, value in item.items()) < 1_000
    assert hashlib.sha256(_object(aws, S3_TENSORS_PREFIX + key)).hexdigest() == item["digest"]["S"]


def test_inline_limit_is_the_boundary(aws: Any) -> None:
    # Given
    bundle = _layer(0)
    size = len(codec.encode(bundle))
    at_limit = _tensor_store(aws, inline_limit=size)
    under_limit = _tensor_store(aws, inline_limit=size - 1)

    # When
    at_limit.put("a/inline", bundle)
    under_limit.put("a/spilled", bundle)

    # Then
    assert "payload" in _item(aws, "a/inline")
    assert "s3_key" in _item(aws, "a/spilled")
    _assert_same(under_limit.get("a/spilled"), bundle)
    assert INLINE_LIMIT_BYTES == 10 * 1024  # the cost break-even, see tensors.py


@pytest.mark.parametrize("scratch", [False, True], ids=["immutable", "scratch"])
@pytest.mark.parametrize("spilled", [False, True], ids=["inline", "spilled"])
def test_the_written_item_is_the_one_item_for_describes(
    aws: Any, spilled: bool, scratch: bool
) -> None:
    # Given a bundle, its encoding and a store that inlines it or not
    bundle = _layer(3)
    data = codec.encode(bundle)
    tensors = _tensor_store(aws, clock=FakeClock(), inline_limit=0 if spilled else len(data))
    key = keys.gradient_key(RUN, 1, 0, 1) if scratch else _immutable(1, 1)

    # When it is written
    tensors.put(key, bundle, immutable=not scratch)

    # Then the item in the table is item_for's, payload and digest filled in
    expected = tensors.item_for(
        key, len(data), spilled=spilled, scratch=scratch, payload=data, digest=codec.digest(data)
    )
    assert _item(aws, key) == expected
    # and item_for without the bytes differs only in the payload and the digest's value
    sized = tensors.item_for(key, len(data), spilled=spilled, scratch=scratch)
    assert sized.keys() == expected.keys()
    assert len(sized[DIGEST]["S"]) == len(expected[DIGEST]["S"])
    if not spilled:
        assert sized[PAYLOAD] == {"B": b""}


def test_an_item_says_inline_or_spilled_and_expires_only_if_scratch() -> None:
    # Given the item format's one writer, When / Then
    inline = tensor_item("r/k", 12, spilled=False, expires_at=None, payload=b"x" * 12)
    assert inline[PAYLOAD] == {"B": b"x" * 12} and S3_KEY not in inline
    assert TENSORS_TTL_ATTRIBUTE not in inline
    spilled = tensor_item("r/k", 12, spilled=True, expires_at=1_700_000_000)
    assert spilled[S3_KEY] == {"S": S3_SCRATCH_PREFIX + "r/k"} and PAYLOAD not in spilled
    assert spilled[TENSORS_TTL_ATTRIBUTE] == {"N": "1700000000"}
    assert tensor_item("r/k", 12, spilled=True, expires_at=None)[S3_KEY] == {
        "S": S3_TENSORS_PREFIX + "r/k"
    }
    with pytest.raises(ValueError, match="payload"):
        tensor_item("r/k", 12, spilled=False, expires_at=None, payload=b"short")


class _Recorder:
    """A StoreObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_put(
        self, key: str, item: dict[str, Any], *, encoded_bytes: int, spilled: bool, scratch: bool
    ) -> None:
        self.events.append(("put", key, item, encoded_bytes, spilled, scratch))

    def on_get(self, keys: Any, *, batch: bool) -> None:
        self.events.append(("get", list(keys), batch))


def test_observers_hear_every_write_and_every_read_asked_for(aws: Any) -> None:
    # Given a store with an observer, one bundle inline and one too large for it
    recorder = _Recorder()
    tensors = _tensor_store(aws, inline_limit=1_000, observers=[recorder])
    small, large = _immutable(0, 1), keys.batch_key(RUN, 1, 0, 0)

    # When both are written, then read (from the cache) one by one and in a batch
    tensors.put(small, _layer(0))
    tensors.put(large, {"X": np.zeros((40, 40), np.float32)}, immutable=False)
    tensors.get(small)
    tensors.get_many([large, small, large])
    tensors.observers.remove(recorder)
    tensors.get(small)

    # Then each write is told with its item as written, and each read as asked (cache or not)
    put_small, put_large, get_one, get_batch = recorder.events
    assert put_small == (
        "put",
        small,
        _item(aws, small),
        len(codec.encode(_layer(0))),
        False,
        False,
    )
    assert put_large[:2] == ("put", large) and put_large[2] == _item(aws, large)
    assert put_large[4:] == (True, True)
    assert get_one == ("get", [small], False)
    assert get_batch == ("get", [large, small, large], True)


@pytest.mark.parametrize("inline_limit", [-1, 400_000])
def test_inline_limit_must_fit_in_a_dynamodb_item(aws: Any, inline_limit: int) -> None:
    # Given an inline limit DynamoDB could not honour

    # When / Then
    with pytest.raises(ValueError, match="inline_limit"):
        _tensor_store(aws, inline_limit=inline_limit)


# --- write once ----------------------------------------------------------------------------------


@pytest.mark.parametrize("big", [False, True], ids=["inline", "spilled"])
def test_identical_immutable_reput_is_a_no_op(store: Store, aws: Any, big: bool) -> None:
    # Given
    key = _immutable(1, 1)
    bundle = _big_layer() if big else _layer(0)
    store.tensors.put(key, bundle)
    before = _item(aws, key)

    # When a retried task writes the same content again (fresh arrays, equal bits)
    store.tensors.put(key, {name: array.copy() for name, array in bundle.items()})

    # Then
    assert _item(aws, key) == before
    _assert_same(store.tensors.get(key), bundle)


@pytest.mark.parametrize("big", [False, True], ids=["inline", "spilled"])
def test_different_immutable_content_raises_and_keeps_the_original(
    store: Store, aws: Any, big: bool
) -> None:
    # Given
    key = _immutable(1, 2)
    original = _big_layer(0) if big else _layer(0)
    store.tensors.put(key, original)
    item_before = _item(aws, key)
    object_before = _object(aws, S3_TENSORS_PREFIX + key) if big else None

    # When
    with pytest.raises(ImmutableTensorError) as raised:
        store.tensors.put(key, _big_layer(1) if big else _layer(1))

    # Then
    assert raised.value.key == key
    assert key in str(raised.value) and "never overwritten" in str(raised.value)
    assert _item(aws, key) == item_before
    if big:
        assert _object(aws, S3_TENSORS_PREFIX + key) == object_before
    store.tensors.clear_cache()
    _assert_same(store.tensors.get(key), original)


def test_an_uncommitted_object_with_other_content_is_not_overwritten(aws: Any) -> None:
    # Given a spilled object left by a writer that died before writing the item
    tensors = _tensor_store(aws, inline_limit=0)
    key = _immutable(2, 1)
    tensors.put(key, _layer(0))
    aws.dynamodb.delete_item(TableName=aws.tensors_table, Key={TENSORS_PK: {"S": key}})
    orphan = _object(aws, S3_TENSORS_PREFIX + key)

    # When
    with pytest.raises(ImmutableTensorError, match="uncommitted"):
        tensors.put(key, _layer(1))

    # Then
    assert _object(aws, S3_TENSORS_PREFIX + key) == orphan
    assert _item(aws, key) is None


def test_a_retry_after_a_crash_between_s3_and_dynamodb_completes(aws: Any) -> None:
    # Given the S3 object of an immutable bundle but not its item
    tensors = _tensor_store(aws, inline_limit=0)
    key = _immutable(2, 2)
    bundle = _layer(0)
    tensors.put(key, bundle)
    aws.dynamodb.delete_item(TableName=aws.tensors_table, Key={TENSORS_PK: {"S": key}})

    # When the task is retried with the same content
    tensors.put(key, bundle)

    # Then
    _assert_same(tensors.get(key), bundle)


def test_scratch_cannot_replace_an_immutable_bundle_nor_the_reverse(store: Store) -> None:
    # Given
    immutable_key, scratch_key = _immutable(0, 1), keys.activation_key(RUN, 0, 0, 1)
    store.tensors.put(immutable_key, _layer(0))
    store.tensors.put(scratch_key, {"A": np.ones(3)}, immutable=False)

    # When / Then
    with pytest.raises(ImmutableTensorError, match="scratch write"):
        store.tensors.put(immutable_key, _layer(0), immutable=False)
    with pytest.raises(ImmutableTensorError, match="scratch bundle"):
        store.tensors.put(scratch_key, {"A": np.ones(3)})
    _assert_same(store.tensors.get(immutable_key), _layer(0))


# --- scratch -------------------------------------------------------------------------------------


@pytest.mark.parametrize("big", [False, True], ids=["inline", "spilled"])
def test_scratch_items_expire_after_the_ttl(aws: Any, big: bool) -> None:
    # Given
    clock = FakeClock()
    tensors = _tensor_store(aws, clock=clock, scratch_ttl_seconds=3600)
    key = keys.activation_key(RUN, 0, 2, 1)
    bundle = {"A": np.arange(300_000, dtype=np.float32) if big else np.arange(3.0)}

    # When
    tensors.put(key, bundle, immutable=False)

    # Then
    item = _item(aws, key)
    assert item is not None
    assert int(item[TENSORS_TTL_ATTRIBUTE]["N"]) == int(NOW) + 3600
    if big:
        assert item["s3_key"]["S"] == S3_SCRATCH_PREFIX + key
    _assert_same(tensors.get(key), bundle)
    clock.now += 3600
    with pytest.raises(TensorNotFoundError, match="expired"):
        tensors.get(key)
    with pytest.raises(TensorNotFoundError, match="expired"):
        _tensor_store(aws, clock=clock).get(key)  # another container: nothing cached


def test_scratch_may_be_rewritten_and_comes_back_writable(store: Store) -> None:
    # Given
    key = keys.gradient_key(RUN, 0, 0, 1)
    store.tensors.put(key, {"dW": np.zeros(3)}, immutable=False)

    # When
    store.tensors.put(key, {"dW": np.ones(3)}, immutable=False)
    loaded = store.tensors.get(key)

    # Then
    np.testing.assert_array_equal(loaded["dW"], np.ones(3))
    assert loaded["dW"].flags.writeable
    loaded["dW"][0] = 7.0
    np.testing.assert_array_equal(store.tensors.get(key)["dW"], np.ones(3))


def test_scratch_spilled_to_s3_that_expired_there_is_not_found(aws: Any) -> None:
    # Given a spilled scratch bundle whose object the lifecycle rule removed
    tensors = _tensor_store(aws, inline_limit=0)
    key = keys.batch_key(RUN, 0, 0, 0)
    tensors.put(key, {"X": np.ones((2, 2))}, immutable=False)
    aws.s3.delete_object(Bucket=aws.bucket, Key=S3_SCRATCH_PREFIX + key)
    reader = _tensor_store(aws, inline_limit=0)  # another container: nothing cached

    # When / Then
    with pytest.raises(TensorNotFoundError, match="expired"):
        reader.get(key)


# --- reading -------------------------------------------------------------------------------------


def test_missing_key_raises_a_readable_error(store: Store, aws: Any) -> None:
    # Given
    key = _immutable(9, 1)

    # When
    with pytest.raises(TensorNotFoundError) as raised:
        store.tensors.get(key)

    # Then
    assert raised.value.key == key
    assert str(raised.value) == f"no tensor bundle is stored under key {key!r}"
    assert _item(aws, key) is None


def test_get_many_keeps_order_across_more_than_100_keys(aws: Any) -> None:
    # Given 230 bundles, a few of them spilled
    tensors = _tensor_store(aws, inline_limit=2_000)
    wanted = [keys.gradient_key(RUN, 0, mb, 1) for mb in range(230)]
    for index, key in enumerate(wanted):
        size = 400 if index % 50 == 0 else 2
        tensors.put(key, {"dW": np.full(size, index, dtype=np.int64)}, immutable=False)
    tensors.put(_immutable(0, 1), _layer(0))
    tensors.get(_immutable(0, 1))  # now cached
    request = [*reversed(wanted), _immutable(0, 1), wanted[5], wanted[5]]

    # When
    bundles = tensors.get_many(request)

    # Then
    assert len(bundles) == len(request)
    for key, bundle in zip(request[:230], bundles[:230], strict=True):
        assert int(bundle["dW"][0]) == wanted.index(key)
    _assert_same(bundles[230], _layer(0))
    bundles[231]["dW"][0] = -1  # duplicates are separate arrays
    assert int(bundles[232]["dW"][0]) == 5


def test_get_many_names_a_missing_key(store: Store) -> None:
    # Given
    present, absent = _immutable(0, 1), _immutable(0, 2)
    store.tensors.put(present, _layer(0))

    # When / Then
    with pytest.raises(TensorNotFoundError) as raised:
        store.tensors.get_many([present, absent])
    assert raised.value.key == absent


class _ThrottledBatchGet:
    """Passes everything through, but serves only half of each BatchGetItem request (none if
    ``serve_nothing``); the rest comes back as UnprocessedKeys, as when DynamoDB throttles."""

    def __init__(self, client: Any, *, serve_nothing: bool = False) -> None:
        self._client = client
        self.serve_nothing = serve_nothing
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        ((table, request),) = RequestItems.items()
        wanted = request["Keys"]
        served = 0 if self.serve_nothing else (len(wanted) + 1) // 2
        response = (
            self._client.batch_get_item(RequestItems={table: {**request, "Keys": wanted[:served]}})
            if served
            else {"Responses": {table: []}}
        )
        if wanted[served:]:
            response["UnprocessedKeys"] = {table: {**request, "Keys": wanted[served:]}}
        return response


def test_get_many_retries_unprocessed_keys_with_backoff(aws: Any) -> None:
    # Given
    writer = _tensor_store(aws)
    wanted = [keys.activation_key(RUN, 0, mb, 1) for mb in range(120)]
    for index, key in enumerate(wanted):
        writer.put(key, {"A": np.array(float(index))}, immutable=False)
    throttled = _ThrottledBatchGet(aws.dynamodb)
    sleeps: list[float] = []
    reader = TensorStore(
        throttled, aws.s3, table=aws.tensors_table, bucket=aws.bucket, sleep=sleeps.append
    )

    # When
    bundles = reader.get_many(wanted)

    # Then
    assert [float(bundle["A"]) for bundle in bundles] == [float(i) for i in range(120)]
    assert throttled.calls > 2
    assert len(sleeps) == throttled.calls - 2  # one sleep per retry, two chunks
    assert all(0 < seconds <= 2.0 for seconds in sleeps)


def test_get_many_gives_up_when_keys_stay_unprocessed(aws: Any) -> None:
    # Given
    _tensor_store(aws).put("k/1", {"x": np.zeros(1)})
    throttled = _ThrottledBatchGet(aws.dynamodb, serve_nothing=True)
    reader = TensorStore(
        throttled, aws.s3, table=aws.tensors_table, bucket=aws.bucket, sleep=lambda s: None
    )

    # When / Then
    with pytest.raises(StoreError, match="unprocessed"):
        reader.get_many(["k/1"])


def test_tampered_bytes_fail_the_integrity_check(aws: Any) -> None:
    # Given an immutable spilled bundle whose S3 object was replaced behind the store's back
    tensors = _tensor_store(aws, inline_limit=0)
    key = _immutable(0, 1, "optimizer")
    tensors.put(key, _layer(0))
    aws.s3.put_object(Bucket=aws.bucket, Key=S3_TENSORS_PREFIX + key, Body=codec.encode(_layer(1)))
    reader = _tensor_store(aws, inline_limit=0)  # another container: nothing cached

    # When / Then
    with pytest.raises(TensorIntegrityError, match="sha256"):
        reader.get(key)


# --- cache ---------------------------------------------------------------------------------------


def test_immutable_bundles_are_cached_as_read_only_arrays(store: Store, aws: Any) -> None:
    # Given
    key = _immutable(4, 1)
    store.tensors.put(key, _layer(0))
    first = store.tensors.get(key)

    # When the item disappears, the cache still answers
    aws.dynamodb.delete_item(TableName=aws.tensors_table, Key={TENSORS_PK: {"S": key}})
    second = store.tensors.get(key)

    # Then
    _assert_same(second, _layer(0))
    for bundle in (first, second):
        assert not bundle["W"].flags.writeable
        with pytest.raises(ValueError):
            bundle["W"][0, 0] = 1.0
        with pytest.raises(ValueError):
            bundle["W"].flags.writeable = True
    second["W"] = np.zeros(1)  # replacing an entry in the returned dict is harmless
    _assert_same(store.tensors.get(key), _layer(0))


def test_the_cache_is_bounded_by_bytes(aws: Any) -> None:
    # Given a cache that holds two 4 KB bundles
    tensors = _tensor_store(aws, cache_bytes=10_000)
    for version in range(3):
        tensors.put(_immutable(version, 1), {"W": np.zeros(1000, dtype=np.float32)})

    # When
    for version in range(3):
        tensors.get(_immutable(version, 1))

    # Then
    assert tensors.cache_size_bytes == 8_000


def test_scratch_is_cached_only_by_its_writer_and_only_until_it_expires(aws: Any) -> None:
    # Given a scratch bundle written by one store (a warm container) and then deleted
    clock = FakeClock()
    writer = _tensor_store(aws, clock=clock, scratch_ttl_seconds=60)
    key = keys.activation_key(RUN, 0, 0, 1)
    writer.put(key, {"A": np.ones(2)}, immutable=False)
    aws.dynamodb.delete_item(TableName=aws.tensors_table, Key={TENSORS_PK: {"S": key}})

    # When / Then: the writer reads its own write back, as a writable copy
    first = writer.get(key)
    first["A"][0] = 5.0
    _assert_same(writer.get(key), {"A": np.ones(2)})
    # another store has nothing cached
    with pytest.raises(TensorNotFoundError):
        _tensor_store(aws, clock=clock).get(key)
    # and the writer's cache honours the TTL
    clock.now += 60
    with pytest.raises(TensorNotFoundError):
        writer.get(key)


# --- threads -------------------------------------------------------------------------------------


def test_concurrent_puts_and_gets_from_a_thread_pool(store: Store) -> None:
    # Given 64 scratch bundles, 8 immutable layers (two spilled) and one key many threads write
    scratch = {
        keys.activation_key(RUN, 0, mb, 1): {"A": np.full(50, mb, float)} for mb in range(64)
    }
    layers = {_immutable(0, layer): _layer(layer) for layer in range(1, 9)}
    layers[_immutable(0, 9)] = _layer(9, rows=400, cols=250)
    layers[_immutable(0, 10)] = _layer(10, rows=400, cols=250)
    shared_key, shared = _immutable(0, 1, "optimizer"), _layer(99)

    def write(index: int) -> None:
        if index < len(scratch):
            key = list(scratch)[index]
            store.tensors.put(key, scratch[key], immutable=False)
        elif index < len(scratch) + len(layers):
            key = list(layers)[index - len(scratch)]
            store.tensors.put(key, layers[key])
        else:
            store.tensors.put(shared_key, shared)

    def read(index: int) -> dict[str, np.ndarray]:
        everything = {**scratch, **layers}
        key = list(everything)[index % len(everything)]
        return {"key": key, **store.tensors.get(key)}  # type: ignore[dict-item]

    # When
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, range(len(scratch) + len(layers) + 16)))
        reads = list(pool.map(read, range(300)))
        many = list(pool.map(lambda _: store.tensors.get_many(list(layers)), range(8)))

    # Then
    everything = {**scratch, **layers}
    for got in reads:
        _assert_same({k: v for k, v in got.items() if k != "key"}, everything[got["key"]])
    for bundles in many:
        for bundle, expected in zip(bundles, layers.values(), strict=True):
            _assert_same(bundle, expected)
    _assert_same(store.tensors.get(shared_key), shared)
