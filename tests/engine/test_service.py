"""The account's side of the sandboxes' AWS calls (stepnet.engine.service): moto's answers, and
answers to repeated tensor reads remembered only while nothing they read has been written."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.core.models import botocore_stubber

from stepnet.engine import service
from stepnet.engine.service import AccountService

pytestmark = pytest.mark.engine

TENSORS, RUNS, BUCKET = "t-tensors", "t-runs", "service-test-bucket"


class _Body(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.read()


def _client(name: str, account: AccountService) -> Any:
    """A boto3 client whose calls go to ``account`` (as a sandbox's do, minus the channel)."""
    client = boto3.client(name, region_name="us-east-1")

    def send(request: Any, **_: Any) -> AWSResponse:
        body = request.body
        data = body if isinstance(body, bytes) else (body or b"")
        if hasattr(data, "read"):
            data = data.read()
        if isinstance(data, str):
            data = data.encode()
        headers = [
            (k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
        ]
        status, answer_headers, answer = account(request.method, request.url, headers, data)
        return AWSResponse(request.url, status, answer_headers, _Body(answer))

    client.meta.events.register_first("before-send", send)
    # botocore calls every before-send handler: moto's own mock must not answer these too
    client.meta.events.unregister("before-send", botocore_stubber)
    return client


@pytest.fixture
def account(monkeypatch) -> Iterator[AccountService]:
    for key, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        setup = boto3.client("dynamodb", region_name="us-east-1")
        for table in (TENSORS, RUNS):
            setup.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield AccountService(tables=frozenset({TENSORS}), object_prefixes=("tensors/",))


def _item(value: str, key: str = "a") -> dict[str, Any]:
    return {"k": {"S": key}, "v": {"S": value}}


def _get(ddb: Any, table: str = TENSORS, key: str = "a") -> str:
    return str(ddb.get_item(TableName=table, Key={"k": {"S": key}})["Item"]["v"]["S"])


def test_a_repeated_read_is_answered_with_moto_s_bytes(account) -> None:
    # Given an item
    ddb = _client("dynamodb", account)
    ddb.put_item(TableName=TENSORS, Item=_item("one"))

    # When it is read twice
    first, second = _get(ddb), _get(ddb)

    # Then moto answered once, the cache the second time, the same
    assert first == second == "one"
    assert (account.hits, account.misses) == (1, 1)


def test_a_write_to_the_item_is_read_at_once(account) -> None:
    # Given a remembered read, and another item's write
    ddb = _client("dynamodb", account)
    ddb.put_item(TableName=TENSORS, Item=_item("one"))
    _get(ddb)
    ddb.put_item(TableName=TENSORS, Item=_item("other", key="b"))
    assert _get(ddb) == "one" and account.hits == 1  # another item changed nothing

    # When the item itself is written (put, update, delete)
    ddb.put_item(TableName=TENSORS, Item=_item("two"))
    after_put = _get(ddb)
    ddb.update_item(
        TableName=TENSORS,
        Key={"k": {"S": "a"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "three"}},
    )
    after_update = _get(ddb)
    ddb.delete_item(TableName=TENSORS, Key={"k": {"S": "a"}})

    # Then every read after a write has the write
    assert (after_put, after_update) == ("two", "three")
    assert "Item" not in ddb.get_item(TableName=TENSORS, Key={"k": {"S": "a"}})


def test_a_batch_write_forgets_the_tables_it_names(account) -> None:
    # Given a remembered read
    ddb = _client("dynamodb", account)
    ddb.put_item(TableName=TENSORS, Item=_item("one"))
    _get(ddb)

    # When a batch write changes the item
    ddb.batch_write_item(RequestItems={TENSORS: [{"PutRequest": {"Item": _item("two")}}]})

    # Then
    assert _get(ddb) == "two"


def test_an_answer_computed_while_its_item_was_written_is_not_kept(account, monkeypatch) -> None:
    # Given a read during which another sandbox writes the item
    ddb = _client("dynamodb", account)
    ddb.put_item(TableName=TENSORS, Item=_item("one"))
    dispatch = service.dispatch
    writer = _client("dynamodb", account)
    raced = []

    def racing(method: str, url: str, headers: Any, body: bytes) -> Any:
        answer = dispatch(method, url, headers, body)
        if b'"Key"' in body and not raced:
            raced.append(True)
            writer.put_item(TableName=TENSORS, Item=_item("two"))  # after moto read "one"
        return answer

    monkeypatch.setattr(service, "dispatch", racing)

    # When the item is read during the write, then again
    during = _get(ddb)
    after = _get(ddb)

    # Then the stale answer was not remembered
    assert (during, after) == ("one", "two")


def test_only_the_tensors_table_is_remembered(account) -> None:
    # Given an item of another table
    ddb = _client("dynamodb", account)
    ddb.put_item(TableName=RUNS, Item=_item("one"))

    # When read twice
    _get(ddb, RUNS), _get(ddb, RUNS)

    # Then moto answered both times
    assert account.hits == 0


def test_objects_are_remembered_until_written_or_deleted(account) -> None:
    # Given a tensor object read once, and an object outside tensors/
    s3 = _client("s3", account)
    s3.put_object(Bucket=BUCKET, Key="tensors/w", Body=b"one")
    s3.put_object(Bucket=BUCKET, Key="datasets/d", Body=b"data")

    def read(key: str) -> bytes:
        return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    assert read("tensors/w") == b"one"

    # When read again, written, read, deleted in a batch
    again = read("tensors/w")
    s3.put_object(Bucket=BUCKET, Key="tensors/w", Body=b"two")
    rewritten = read("tensors/w")
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "tensors/w"}]})

    # Then each read has what was written, and a deleted object is gone
    assert (again, rewritten) == (b"one", b"two")
    with pytest.raises(s3.exceptions.NoSuchKey):
        read("tensors/w")
    # and a range read, or an object elsewhere, is never remembered
    hits = account.hits
    ranged = s3.get_object(Bucket=BUCKET, Key="datasets/d", Range="bytes=0-1")["Body"].read()
    assert ranged == b"da" and read("datasets/d") == read("datasets/d") == b"data"
    assert account.hits == hits


def test_a_range_of_an_object_is_remembered_apart_from_the_others(account) -> None:
    # Given an object of a run (a converted shard), read by ranges
    s3 = _client("s3", account)
    s3.put_object(Bucket=BUCKET, Key="tensors/shard", Body=b"0123456789")

    def read(span: str) -> bytes:
        return bytes(s3.get_object(Bucket=BUCKET, Key="tensors/shard", Range=span)["Body"].read())

    # When ranges are read twice, then the object is written and read again
    first = [read("bytes=0-3"), read("bytes=4-5"), read("bytes=0-3")]
    s3.put_object(Bucket=BUCKET, Key="tensors/shard", Body=b"abcdefghij")
    after = read("bytes=0-3")

    # Then each range has its own bytes, the repeat was remembered, the write forgotten
    assert first == [b"0123", b"45", b"0123"] and account.hits == 1
    assert after == b"abcd"
