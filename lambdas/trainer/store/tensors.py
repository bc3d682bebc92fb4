"""TensorStore: named tensor bundles in DynamoDB, spilled to S3 when large.

One DynamoDB item per bundle (a dict of named numpy arrays, e.g. one layer's {"W", "b"}).
Small bundles are stored inline in the item; bundles whose encoding exceeds the inline limit go
to S3 and the item holds a pointer. Immutable bundles are written once and never overwritten;
scratch bundles carry a TTL. See docs/storage.md for the layout and the rules.

:func:`tensor_item` is the one writer of the item format: the store writes what it returns, and
the billing code sizes items with it (``TensorStore.item_for``). Observers
(:class:`~trainer.store.observer.StoreObserver`) hear of every write and every read asked for.

Thread-safe: it holds only low-level boto3 clients (thread-safe) and a locked LRU cache.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import numpy as np
from botocore.exceptions import ClientError

from trainer.contract.names import (
    INLINE_LIMIT_BYTES,
    MAX_INLINE_LIMIT_BYTES,
    S3_SCRATCH_PREFIX,
    S3_TENSORS_PREFIX,
    SCRATCH_TTL_HOURS,
    TENSORS_PK,
    TENSORS_TTL_ATTRIBUTE,
)
from trainer.store import codec
from trainer.store.errors import (
    ImmutableTensorError,
    StoreError,
    TensorIntegrityError,
    TensorNotFoundError,
)
from trainer.store.observer import Item, StoreObserver

Bundle = Mapping[str, np.ndarray]

DEFAULT_CACHE_BYTES: Final = 256 * 1024 * 1024
DEFAULT_SCRATCH_TTL_SECONDS: Final = SCRATCH_TTL_HOURS * 3600
# An S3 key is at most 1024 bytes and spilled scratch bundles live under the scratch prefix.
MAX_KEY_BYTES: Final = 1024 - len(S3_SCRATCH_PREFIX.encode())

BATCH_GET_LIMIT: Final = 100  # DynamoDB BatchGetItem takes at most 100 keys
_BATCH_GET_ATTEMPTS: Final = 10
_S3_PUT_ATTEMPTS: Final = 5
_SCRATCH_READ_ATTEMPTS: Final = 3
_S3_FETCH_WORKERS: Final = 8

# Item attribute names (besides TENSORS_PK and TENSORS_TTL_ATTRIBUTE).
PAYLOAD: Final = "payload"  # B: the encoded bundle, when inline
S3_KEY: Final = "s3_key"  # S: where the encoded bundle is, when spilled
DIGEST: Final = "digest"  # S: sha256 hex of the encoded bytes
NBYTES: Final = "nbytes"  # N: length of the encoded bytes
S3_DIGEST_METADATA: Final = "sha256"  # user metadata on spilled objects
PLACEHOLDER_DIGEST: Final = "0" * 64  # a sha256 hex digest's length, for items sized unwritten


def tensor_item(
    key: str,
    nbytes: int,
    *,
    spilled: bool,
    expires_at: int | None,
    payload: bytes = b"",
    digest: str = PLACEHOLDER_DIGEST,
) -> Item:
    """The tensors-table item of a bundle whose encoding is ``nbytes`` long: the one writer of
    the item format.

    Always the key, the sha256 ``digest`` of the encoding and ``nbytes``. Inline
    (``spilled=False``): the encoding itself as ``payload``. Spilled: the S3 key of the object
    that holds it instead (``tensors/<key>``, or ``tensors/scratch/<key>`` for scratch). Scratch
    (``expires_at``, epoch seconds): the TTL attribute.

    Billing sizes items without their bytes: ``payload`` left empty, the item's DynamoDB size is
    its size plus ``nbytes`` when inline.
    """
    if not spilled and payload and len(payload) != nbytes:
        raise ValueError(f"the payload has {len(payload)} bytes, not nbytes = {nbytes}")
    item: Item = {
        TENSORS_PK: {"S": key},
        DIGEST: {"S": digest},
        NBYTES: {"N": str(nbytes)},
    }
    if spilled:
        prefix = S3_TENSORS_PREFIX if expires_at is None else S3_SCRATCH_PREFIX
        item[S3_KEY] = {"S": prefix + key}
    else:
        item[PAYLOAD] = {"B": payload}
    if expires_at is not None:
        item[TENSORS_TTL_ATTRIBUTE] = {"N": str(expires_at)}
    return item


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: ~50 ms, 100 ms, 200 ms, ... capped at 2 s."""
    return float(min(2.0, 0.05 * 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2))


def check_key(key: str) -> str:
    """Validate a tensor key (see :mod:`trainer.store.keys` for how keys are built)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"a tensor key must be a non-empty string, got {key!r}")
    if key.startswith("/"):
        raise ValueError(f"a tensor key may not start with '/': {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"a tensor key may be at most {MAX_KEY_BYTES} bytes: {key[:80]!r}...")
    return key


def in_order(
    keys: Sequence[str], found: Mapping[str, dict[str, np.ndarray]], scratch: AbstractSet[str]
) -> list[dict[str, np.ndarray]]:
    """The bundles ``found`` for ``keys``, in their order (duplicates allowed), each a dict of
    its own; a ``scratch`` bundle asked for again gets copies of its arrays, so that callers
    may write into every one they get (immutable bundles are read-only and shared)."""
    result: list[dict[str, np.ndarray]] = []
    handed_out: set[str] = set()
    for key in keys:
        bundle = found[key]
        if key in scratch and key in handed_out:
            bundle = {name: array.copy(order="K") for name, array in bundle.items()}
        handed_out.add(key)
        result.append(dict(bundle))
    return result


def _freeze(bundle: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Read-only views of the arrays; their WRITEABLE flag cannot be switched back on."""
    frozen = {}
    for name, array in bundle.items():
        array.flags.writeable = False
        view = array.view()
        view.flags.writeable = False
        frozen[name] = view
    return frozen


class _LruCache:
    """A thread-safe LRU of decoded immutable bundles, bounded by their array bytes."""

    def __init__(self, capacity_bytes: int) -> None:
        self._capacity = capacity_bytes
        self._entries: OrderedDict[str, tuple[dict[str, np.ndarray], int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: str, bundle: dict[str, np.ndarray], *, replace: bool = False) -> None:
        size = codec.bundle_nbytes(bundle)
        if size > self._capacity:
            return
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                if not replace:
                    return
                self._size -= self._entries.pop(key)[1]
            self._entries[key] = (bundle, size)
            self._size += size
            while self._size > self._capacity:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._size -= evicted

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0


class _StaleScratchError(Exception):
    """A scratch item and its S3 object disagree: it is being rewritten; read it again."""


class TensorStore:
    """Tensor bundles keyed by strings (see :mod:`trainer.store.keys`).

    ``put(immutable=True)`` writes once; a retry with identical content is a no-op and different
    content raises :class:`ImmutableTensorError`. ``put(immutable=False)`` writes scratch that
    expires ``scratch_ttl_seconds`` after the write. ``get`` returns immutable bundles as
    read-only arrays (shared with an in-process cache) and scratch bundles as writable arrays.
    """

    def __init__(
        self,
        dynamodb_client: Any,
        s3_client: Any,
        *,
        table: str,
        bucket: str,
        scratch_ttl_seconds: int = DEFAULT_SCRATCH_TTL_SECONDS,
        inline_limit: int = INLINE_LIMIT_BYTES,
        clock: Callable[[], float] = time.time,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        observers: Iterable[StoreObserver] = (),
    ) -> None:
        if not isinstance(scratch_ttl_seconds, int) or scratch_ttl_seconds <= 0:
            raise ValueError(f"scratch_ttl_seconds must be a positive int: {scratch_ttl_seconds!r}")
        if not 0 <= inline_limit <= MAX_INLINE_LIMIT_BYTES:
            raise ValueError(
                f"inline_limit must be between 0 and {MAX_INLINE_LIMIT_BYTES} bytes "
                f"(DynamoDB items are limited to 400 KB), got {inline_limit}"
            )
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {cache_bytes}")
        self._ddb = dynamodb_client
        self._s3 = s3_client
        self.table = table
        self.bucket = bucket
        self.scratch_ttl_seconds = scratch_ttl_seconds
        self.inline_limit = inline_limit
        self._clock = clock
        self._sleep = sleep
        self._cache = _LruCache(cache_bytes)
        self._scratch_expiry: dict[str, float] = {}
        self._scratch_lock = threading.Lock()
        # told of every write and every read asked for (a meter adds itself, then removes itself)
        self.observers: list[StoreObserver] = list(observers)

    # --- writing -------------------------------------------------------------------------------

    def put(self, key: str, bundle: Bundle, *, immutable: bool = True) -> None:
        """Store ``bundle`` under ``key``: write-once if ``immutable``, else as scratch."""
        check_key(key)
        data = codec.encode(bundle)
        digest = codec.digest(data)
        spilled = len(data) > self.inline_limit
        item = self.item_for(
            key, len(data), spilled=spilled, scratch=not immutable, payload=data, digest=digest
        )
        if immutable:
            self._put_immutable(key, item, data, digest)
        else:
            self._put_scratch(key, item, data, digest)
        for observer in self.observers:
            observer.on_put(
                key, item, encoded_bytes=len(data), spilled=spilled, scratch=not immutable
            )
        # Write-through: a warm container (and the local engine, where every handler shares one
        # process) reads back what it wrote without a round trip. Keys never change content:
        # immutable bundles by rule, scratch keys because they name one deterministic result.
        copies = _freeze({name: np.array(array, copy=True) for name, array in bundle.items()})
        if not immutable:
            with self._scratch_lock:
                self._scratch_expiry[key] = self._clock() + self.scratch_ttl_seconds
        self._cache.put(key, copies, replace=not immutable)

    def item_for(
        self,
        key: str,
        encoded_len: int,
        *,
        spilled: bool,
        scratch: bool,
        payload: bytes = b"",
        digest: str = PLACEHOLDER_DIGEST,
    ) -> Item:
        """The item this store writes for a bundle whose encoding is ``encoded_len`` bytes
        (:func:`tensor_item`; a scratch item expires ``scratch_ttl_seconds`` from now).
        ``put`` passes the encoding and its digest; billing leaves them out to size the item."""
        expires_at = int(self._clock()) + self.scratch_ttl_seconds if scratch else None
        return tensor_item(
            key, encoded_len, spilled=spilled, expires_at=expires_at, payload=payload, digest=digest
        )

    def _put_immutable(self, key: str, item: Item, data: bytes, digest: str) -> None:
        if S3_KEY in item:
            self._put_object_once(key, item[S3_KEY]["S"], data, digest)
        try:
            self._ddb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": TENSORS_PK},
            )
            return
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise
        existing = self._get_item(key)
        if existing is None:
            raise StoreError(
                f"writing tensor {key!r}: the write-once condition failed but no item is there "
                "any more (deleted concurrently?); retry the write"
            )
        if TENSORS_TTL_ATTRIBUTE in existing:
            raise ImmutableTensorError(
                key, "it holds a scratch bundle; immutable and scratch bundles need distinct keys"
            )
        stored = existing[DIGEST]["S"]
        if stored != digest:
            raise ImmutableTensorError(key, f"stored sha256 {stored[:16]}…, new {digest[:16]}…")
        # Same digest: a retried task wrote this already. Nothing to do.

    def _put_object_once(self, key: str, s3_key: str, data: bytes, digest: str) -> None:
        """Create the S3 object unless it exists; an existing object must hold our bytes."""
        for attempt in range(1, _S3_PUT_ATTEMPTS + 1):
            try:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=s3_key,
                    Body=data,
                    IfNoneMatch="*",
                    ContentType="application/octet-stream",
                    Metadata={S3_DIGEST_METADATA: digest},
                )
                return
            except ClientError as error:
                status, code = _http_status(error), _error_code(error)
                if status == 409 or code == "ConditionalRequestConflict":
                    self._sleep(_backoff(attempt))  # a concurrent write of this key is in flight
                    continue
                if status != 412 and code != "PreconditionFailed":
                    raise
            stored = self._object_digest(s3_key)
            if stored == digest:
                return  # a retry: the object already holds exactly these bytes
            if stored is None:
                continue  # deleted between our write and our look; try again
            committed = self._get_item(key)
            if committed is not None and DIGEST in committed:
                detail = (
                    f"stored sha256 {committed[DIGEST]['S'][:16]}…, new {digest[:16]}…; "
                    f"s3://{self.bucket}/{s3_key} left unchanged"
                )
            else:
                detail = (
                    f"s3://{self.bucket}/{s3_key} holds an uncommitted object with other content, "
                    "left by a writer that failed or is still running; if none is running, "
                    "delete that object and retry"
                )
            raise ImmutableTensorError(key, detail)
        raise StoreError(
            f"could not write s3://{self.bucket}/{s3_key} after {_S3_PUT_ATTEMPTS} attempts "
            "(conflicting concurrent writes); retry the task"
        )

    def _object_digest(self, s3_key: str) -> str | None:
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=s3_key)
        except ClientError as error:
            if _http_status(error) == 404 or _error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return str(head.get("Metadata", {}).get(S3_DIGEST_METADATA, ""))

    def _put_scratch(self, key: str, item: Item, data: bytes, digest: str) -> None:
        if S3_KEY in item:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=item[S3_KEY]["S"],
                Body=data,
                ContentType="application/octet-stream",
                Metadata={S3_DIGEST_METADATA: digest},
            )
        try:
            self._ddb.put_item(
                TableName=self.table,
                Item=item,
                # Scratch may replace scratch, never an immutable bundle.
                ConditionExpression="attribute_not_exists(#pk) OR attribute_exists(#ttl)",
                ExpressionAttributeNames={"#pk": TENSORS_PK, "#ttl": TENSORS_TTL_ATTRIBUTE},
            )
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise
            raise ImmutableTensorError(
                key, "a scratch write may not replace an immutable bundle"
            ) from None

    # --- reading -------------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, np.ndarray]:
        """The bundle stored under ``key``; raises :class:`TensorNotFoundError` if none.

        Immutable bundles come back as read-only arrays (copy before modifying them); scratch
        bundles as writable arrays of their own.
        """
        check_key(key)
        for observer in self.observers:
            observer.on_get([key], batch=False)
        cached = self._cached(key)
        if cached is not None:
            return cached
        return self._load(key, self._get_item(key))

    def _cached(self, key: str) -> dict[str, np.ndarray] | None:
        """A cached bundle: immutable ones shared read-only, scratch ones as fresh copies."""
        cached = self._cache.get(key)
        if cached is None:
            return None
        with self._scratch_lock:
            expiry = self._scratch_expiry.get(key)
        if expiry is None:
            return dict(cached)
        if expiry <= self._clock():
            return None
        return {name: array.copy() for name, array in cached.items()}

    def get_many(self, keys: Sequence[str]) -> list[dict[str, np.ndarray]]:
        """The bundles stored under ``keys``, in the same order (duplicates allowed)."""
        keys = [check_key(key) for key in keys]
        for observer in self.observers:
            observer.on_get(keys, batch=True)
        found: dict[str, dict[str, np.ndarray]] = {}
        cached_scratch: set[str] = set()
        for key in dict.fromkeys(keys):
            cached = self._cached(key)
            if cached is not None:
                found[key] = cached
                with self._scratch_lock:
                    if key in self._scratch_expiry:
                        cached_scratch.add(key)
        todo = [key for key in dict.fromkeys(keys) if key not in found]
        items = self._batch_get(todo)
        missing = [key for key in todo if key not in items or self._expired(items[key])]
        if missing:
            detail = f"{len(missing)} of {len(todo)} keys are missing" if missing[1:] else ""
            raise TensorNotFoundError(missing[0], detail)
        scratch = {key for key in todo if TENSORS_TTL_ATTRIBUTE in items[key]} | cached_scratch
        spilled = [key for key in todo if PAYLOAD not in items[key]]
        for key in todo:
            if PAYLOAD in items[key]:
                found[key] = self._load(key, items[key])
        if spilled:
            workers = min(_S3_FETCH_WORKERS, len(spilled))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                loaded = pool.map(lambda key: self._load(key, items[key]), spilled)
                found.update(zip(spilled, loaded, strict=True))
        return in_order(keys, found, scratch)

    def clear_cache(self) -> None:
        """Drop every cached bundle (tests; memory pressure)."""
        self._cache.clear()

    @property
    def cache_size_bytes(self) -> int:
        return self._cache.size_bytes

    def _get_item(self, key: str) -> Item | None:
        item: Item | None = self._ddb.get_item(
            TableName=self.table, Key={TENSORS_PK: {"S": key}}, ConsistentRead=True
        ).get("Item")
        return item

    def _batch_get(self, keys: Sequence[str]) -> dict[str, Item]:
        items: dict[str, Item] = {}
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            chunk = keys[start : start + BATCH_GET_LIMIT]
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{TENSORS_PK: {"S": key}} for key in chunk],
                    "ConsistentRead": True,
                }
            }
            attempt = 0
            while request:
                response = self._ddb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    items[item[TENSORS_PK]["S"]] = item
                request = response.get("UnprocessedKeys") or {}
                if request:
                    attempt += 1
                    if attempt >= _BATCH_GET_ATTEMPTS:
                        left = len(request.get(self.table, {}).get("Keys", []))
                        raise StoreError(
                            f"BatchGetItem on {self.table!r} left {left} keys unprocessed after "
                            f"{attempt} attempts (throttled?); retry the task"
                        )
                    self._sleep(_backoff(attempt))
        return items

    def _expired(self, item: Item) -> bool:
        # DynamoDB deletes expired items lazily (within days), so reads must filter them.
        ttl = item.get(TENSORS_TTL_ATTRIBUTE)
        return ttl is not None and float(ttl["N"]) <= self._clock()

    def _load(self, key: str, item: Item | None) -> dict[str, np.ndarray]:
        for attempt in range(1, _SCRATCH_READ_ATTEMPTS + 1):
            if item is None:
                raise TensorNotFoundError(key)
            if self._expired(item):
                raise TensorNotFoundError(key, "the scratch bundle has expired")
            try:
                return self._decode_item(key, item)
            except _StaleScratchError:
                if attempt == _SCRATCH_READ_ATTEMPTS:
                    break
                self._sleep(_backoff(attempt))
                item = self._get_item(key)
        raise TensorIntegrityError(
            key, "its S3 object kept disagreeing with the item's digest (rewritten concurrently?)"
        )

    def _decode_item(self, key: str, item: Item) -> dict[str, np.ndarray]:
        scratch = TENSORS_TTL_ATTRIBUTE in item
        if PAYLOAD in item:
            data = bytes(item[PAYLOAD]["B"])
        else:
            data = self._get_object(key, item[S3_KEY]["S"], scratch=scratch)
        if codec.digest(data) != item[DIGEST]["S"]:
            if scratch:
                raise _StaleScratchError
            raise TensorIntegrityError(key, "the stored bytes do not match the recorded sha256")
        bundle = codec.decode(data)
        if scratch:
            return bundle
        frozen = _freeze(bundle)
        self._cache.put(key, frozen)
        return dict(frozen)

    def _get_object(self, key: str, s3_key: str, *, scratch: bool) -> bytes:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=s3_key)
        except ClientError as error:
            if _error_code(error) not in ("NoSuchKey", "404") and _http_status(error) != 404:
                raise
            if scratch:
                raise TensorNotFoundError(key, f"s3://{self.bucket}/{s3_key} has expired") from None
            raise TensorIntegrityError(
                key, f"its item points to s3://{self.bucket}/{s3_key}, which does not exist"
            ) from None
        body: bytes = response["Body"].read()
        return body
