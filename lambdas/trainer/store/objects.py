"""Whole objects in S3: datasets a user uploaded and a run's exported model files."""

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
        bucket, key = parse_s3_uri(uri)
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
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
