"""The account's side of the sandboxes' AWS API calls: each call a sandbox's boto3 client signed
for AWS is answered by this process's moto, with the dispatch moto's own in-process mock uses
(no HTTP: the call came over the sandbox's channel, see :mod:`stepnet.engine.sandbox`).

Answers to repeated reads of tensors are remembered (:class:`AccountService`): the sandboxes,
like Lambda containers, read what other containers wrote — a micro-batch's activations, each new
weights version in every Forward sandbox — and moto spends about half a millisecond on each
answer, in the one process that also runs the interpreter; and every epoch reads the same byte
ranges of the dataset's shards again. A remembered answer is the bytes moto gave for the same
request while nothing it read has been written since: the same ``GetItem`` body (table, key,
projection, consistency) or the same S3 object ``GET`` (the same single range or none, no
conditions). Any write to that item or object — any write to the table or bucket the cache
cannot attribute to one — forgets it, and an answer computed while such a write ran is not kept.
Only the tensors table and the ``tensors/`` and ``runs/`` objects (spilled tensors, converted
shards, exports) are remembered: the functions alone write them, and every function's call
comes through here (a write by another client — an AWS CLI at ``stepnet serve`` — would not be
seen).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

Answer = tuple[int, dict[str, str], bytes]

CACHE_BYTES: Final = 256 * 2**20  # remembered answers, at most
ENTRY_BYTES: Final = 8 * 2**20  # a larger answer is not remembered
DYNAMODB_TARGET: Final = "DynamoDB_20120810."
# DynamoDB operations that change no item (anything else may)
DYNAMODB_READS: Final = frozenset(
    {
        "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "DescribeTable",
        "DescribeTimeToLive", "ListTables", "DescribeContinuousBackups", "ListTagsOfResource",
    }
)  # fmt: skip


def dispatch(method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Answer:
    """Answer one AWS API call with this process's moto, as its HTTP server would."""
    from botocore.awsrequest import AWSPreparedRequest
    from botocore.compat import HTTPHeaders
    from moto.core.models import botocore_stubber

    request_headers = HTTPHeaders()
    for key, value in headers:
        request_headers[key] = value
    request = AWSPreparedRequest(
        method=method, url=url, headers=request_headers, body=body, stream_output=False
    )
    try:
        answered = botocore_stubber.process_request(request)
    except Exception as exc:  # a bug in the emulator: an internal error, as a service has them
        return 500, {}, f"the local engine's moto failed: {exc!r}".encode()
    if answered is None:
        return 404, {}, f"the local engine does not emulate {url}".encode()
    status, answer_headers, answer = answered
    payload = answer.encode() if isinstance(answer, str) else bytes(answer or b"")
    return int(status), {str(k): str(v) for k, v in answer_headers.items()}, payload


@dataclass(frozen=True)
class _Call:
    """What the cache needs to know of a call: what it reads (``read``: a cache key, or None)
    and what it may change (``writes``: item or object identities; ``scopes``: whole tables or
    buckets)."""

    read: tuple[Any, ...] | None = None
    identity: tuple[Any, ...] | None = None  # the item or object a read reads
    scope: tuple[Any, ...] | None = None  # the table or bucket it is in
    writes: tuple[tuple[Any, ...], ...] = ()
    scopes: tuple[tuple[Any, ...], ...] = ()


class AccountService:
    """:func:`dispatch`, remembering answers to repeated reads (module docstring)."""

    def __init__(
        self,
        tables: frozenset[str] = frozenset(),
        object_prefixes: tuple[str, ...] = (),
        capacity_bytes: int = CACHE_BYTES,
    ) -> None:
        self.tables = tables  # whose GetItem answers are remembered
        self.object_prefixes = object_prefixes  # whose objects' GET answers are remembered
        self.capacity_bytes = capacity_bytes
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[Any, ...], tuple[Answer, tuple[Any, ...]]] = OrderedDict()
        self._bytes = 0
        self._generations: dict[tuple[Any, ...], int] = {}  # item, object, table, bucket
        self._key_names: dict[str, tuple[str, ...]] = {}  # table -> its key's attributes
        self.hits = 0
        self.misses = 0

    def __call__(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> Answer:
        call = self._classify(method, url, headers, body)
        if call.read is not None and not self._remembers(call):
            call = _Call()
        if call.read is None:
            answer = dispatch(method, url, headers, body)
            if call.writes or call.scopes:
                self._written(call)
            return answer
        assert call.identity is not None and call.scope is not None
        with self._lock:
            remembered = self._answers.get(call.read)
            if remembered is not None and remembered[1] == self._versions(call):
                self._answers.move_to_end(call.read)
                self.hits += 1
                return remembered[0]
            versions = self._versions(call)
            self.misses += 1
        answer = dispatch(method, url, headers, body)
        if answer[0] in (200, 206) and len(answer[2]) <= ENTRY_BYTES:  # 206: a range
            with self._lock:
                if self._versions(call) == versions:  # nothing it read was written meanwhile
                    self._remember(call.read, answer, versions)
        return answer

    # --- what a call reads and writes ------------------------------------------------------

    def _classify(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> _Call:
        names = {key.lower(): value for key, value in headers}
        target = names.get("x-amz-target", "")
        if target.startswith(DYNAMODB_TARGET):
            return self._dynamodb(target.removeprefix(DYNAMODB_TARGET), body)
        parts = urlsplit(url)
        if ".s3." in parts.netloc or parts.netloc.startswith("s3."):
            return _s3(method, parts.netloc, parts.path, parts.query, names)
        return _Call()  # another service: neither remembered nor changing what is

    def _dynamodb(self, operation: str, body: bytes) -> _Call:
        try:
            request = json.loads(body)
        except ValueError:
            return _Call(scopes=(("dynamodb",),))
        if operation == "GetItem":
            table, key = request.get("TableName"), request.get("Key")
            if not isinstance(table, str) or not isinstance(key, dict):
                return _Call()
            with self._lock:
                self._key_names.setdefault(table, tuple(sorted(key)))
            identity = ("item", table, _canonical(key))
            return _Call(read=("GetItem", body), identity=identity, scope=("table", table))
        if operation in DYNAMODB_READS:
            return _Call()
        table = request.get("TableName")
        if operation in ("PutItem", "UpdateItem", "DeleteItem") and isinstance(table, str):
            key = request.get("Key")
            if key is None and isinstance(request.get("Item"), dict):
                names = self._key_names.get(table)
                item = request["Item"]
                key = (
                    {n: item[n] for n in names} if names and all(n in item for n in names) else None
                )
            if isinstance(key, dict):
                return _Call(writes=(("item", table, _canonical(key)),))
            return _Call(scopes=(("table", table),))
        tables = _tables_named(request)
        if tables:
            return _Call(scopes=tuple(("table", t) for t in tables))
        return _Call(scopes=(("dynamodb",),))  # a write the cache cannot place: forget all

    # --- the cache -------------------------------------------------------------------------

    def _remembers(self, call: _Call) -> bool:
        identity = call.identity or ()
        if identity[:1] == ("item",):
            return identity[1] in self.tables
        return identity[:1] == ("object",) and str(identity[2]).startswith(self.object_prefixes)

    def _versions(self, call: _Call) -> tuple[Any, ...]:
        service = ("dynamodb",) if call.scope and call.scope[0] == "table" else ("s3",)
        return (
            self._generations.get(call.identity or (), 0),
            self._generations.get(call.scope or (), 0),
            self._generations.get(service, 0),
        )

    def _written(self, call: _Call) -> None:
        with self._lock:
            for identity in (*call.writes, *call.scopes):
                self._generations[identity] = self._generations.get(identity, 0) + 1

    def _remember(self, key: tuple[Any, ...], answer: Answer, versions: tuple[Any, ...]) -> None:
        previous = self._answers.pop(key, None)
        if previous is not None:
            self._bytes -= len(previous[0][2])
        self._answers[key] = (answer, versions)
        self._bytes += len(answer[2])
        while self._bytes > self.capacity_bytes and self._answers:
            _, (old, _) = self._answers.popitem(last=False)
            self._bytes -= len(old[2])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _tables_named(request: Mapping[str, Any]) -> list[str]:
    """The tables a batch or transactional write names."""
    tables = set(request.get("RequestItems") or {})
    for item in request.get("TransactItems") or []:
        for action in item.values():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                tables.add(action["TableName"])
    if isinstance(request.get("TableName"), str):
        tables.add(request["TableName"])
    return sorted(tables)


def object_address(host: str, path: str) -> tuple[str, str]:
    """(bucket, key) of an S3 request: path style (``s3.…/bucket/key``) or virtual-hosted
    (``bucket.s3.…/key``); the key is "" for a call on the bucket."""
    if host.startswith("s3.") or host.startswith("s3-"):  # path style: the bucket leads the path
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key
    return host.split(".s3.")[0], path.lstrip("/")


def _s3(method: str, host: str, path: str, query: str, headers: Mapping[str, str]) -> _Call:
    """An S3 call: a plain GET of an object is a read; anything but GET or HEAD may write."""
    bucket, key = object_address(host, path)
    scope = ("bucket", bucket)
    if method in ("GET", "HEAD"):
        conditional = any(h in headers for h in ("if-match", "if-none-match",
                                                 "if-modified-since", "if-unmodified-since"))  # fmt: skip
        span = headers.get("range", "")
        if method == "GET" and key and not query and not conditional and "," not in span:
            identity = ("object", bucket, key)
            return _Call(read=("GET", bucket, key, span), identity=identity, scope=scope)
        return _Call()
    if key and not query:
        return _Call(writes=(("object", bucket, key),))
    return _Call(scopes=(scope,))  # a bucket-level or multi-object write: forget the bucket
