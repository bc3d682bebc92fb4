"""Objects in S3: datasets a user uploaded (listed, read whole or by byte ranges), converted
shards and a run's exported model files."""

from __future__ import annotations

from typing import Any

from trainer.store.errors import StoreError


class ObjectNotFoundError(StoreError):
    """No object at that S3 location."""


def object_uri(bucket: str, key: str) -> str:
    """``s3://bucket/key``."""
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/…`` → (bucket, key)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3:// URI of an object: {uri!r} (expected s3://BUCKET/KEY)")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


class ObjectStore:
    """Reads any ``s3://`` URI; writes only under the stack's own bucket."""

    def __init__(self, s3_client: Any, *, bucket: str) -> None:
        self._s3 = s3_client
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return object_uri(self.bucket, key)

    def get_bytes(self, uri: str) -> bytes:
        return self._get(uri)

    def get_range(self, uri: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object (one ranged GET)."""
        if not 0 <= start < stop:
            raise ValueError(f"not a byte range: [{start}, {stop})")
        data = self._get(uri, Range=f"bytes={start}-{stop - 1}")
        if len(data) != stop - start:
            raise ObjectNotFoundError(
                f"{uri} is shorter than expected: bytes [{start}, {stop}) gave {len(data)} bytes "
                "(was it replaced during the run?)"
            )
        return data

    def size(self, uri: str) -> int:
        """The object's size in bytes (one HEAD)."""
        bucket, key = parse_s3_uri(uri)
        try:
            response = self._s3.head_object(Bucket=bucket, Key=key)
        except self._s3.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in {"NoSuchKey", "NoSuchBucket", "404", "NotFound", "AccessDenied", "403"}:
                raise ObjectNotFoundError(f"no object at {uri} ({code})") from None
            raise
        return int(response["ContentLength"])

    def list_prefix(self, prefix_uri: str) -> list[tuple[str, int]]:
        """``(uri, size)`` of every object under an ``s3://bucket/prefix/``, in key order."""
        bucket, prefix = parse_s3_uri(prefix_uri)
        found: list[tuple[str, int]] = []
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        try:
            while True:
                response = self._s3.list_objects_v2(**request)
                for entry in response.get("Contents", []):
                    found.append((f"s3://{bucket}/{entry['Key']}", int(entry["Size"])))
                if not response.get("IsTruncated"):
                    break
                request["ContinuationToken"] = response["NextContinuationToken"]
        except self._s3.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in {"NoSuchBucket", "AccessDenied", "403"}:
                raise ObjectNotFoundError(f"cannot list {prefix_uri}: {code}") from None
            raise
        return sorted(found)

    def _get(self, uri: str, **extra: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, **extra)
        except self._s3.exceptions.NoSuchKey:
            raise ObjectNotFoundError(f"no object at {uri}") from None
        except self._s3.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in {"NoSuchBucket", "404", "NotFound", "AccessDenied", "403"}:
                raise ObjectNotFoundError(f"cannot read {uri}: {code}") from None
            raise
        body: bytes = response["Body"].read()
        return body

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return self.uri(key)
