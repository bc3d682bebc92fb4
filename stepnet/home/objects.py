"""HomeObjects: whole objects (uploaded datasets, converted shards, exported models) as files.

``s3://BUCKET/KEY`` stays the objects' address, as on AWS (configs, messages and the model
registry keep naming them so); here it is the file ``<home>/objects/BUCKET/KEY``, written whole
then renamed (:mod:`stepnet.home.files`). Reads of a missing object raise
:class:`~trainer.store.objects.ObjectNotFoundError`, as :class:`~trainer.store.objects.ObjectStore`
does; writes go under the home's own bucket only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from stepnet.home.files import TEMPORARY_PREFIX, inside, write_atomically
from trainer.store.objects import ObjectNotFoundError, object_uri, parse_s3_uri

OBJECTS_DIR: Final = "objects"


class HomeObjects:
    """Objects of ``s3://`` URIs, as files under ``<home>/objects/`` (module docstring)."""

    def __init__(self, home: Path, *, bucket: str) -> None:
        self.root = Path(home) / OBJECTS_DIR
        self.bucket = bucket

    def path(self, uri: str) -> Path:
        """The file that holds the object at ``uri``."""
        bucket, key = parse_s3_uri(uri)
        try:
            return inside(self.root, f"{bucket}/{key}")
        except ValueError:
            raise ObjectNotFoundError(f"no object at {uri} (not a key a home can hold)") from None

    def folder(self, prefix_uri: str) -> Path:
        """The folder that holds the objects under ``s3://bucket/prefix/``."""
        bucket, prefix = parse_s3_uri(prefix_uri)
        return inside(self.root, f"{bucket}/{prefix.rstrip('/')}/_").parent

    def uri(self, key: str) -> str:
        return object_uri(self.bucket, key)

    def get_bytes(self, uri: str) -> bytes:
        try:
            return self.path(uri).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFoundError(f"no object at {uri}") from None

    def get_range(self, uri: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object."""
        if not 0 <= start < stop:
            raise ValueError(f"not a byte range: [{start}, {stop})")
        try:
            with open(self.path(uri), "rb") as handle:
                handle.seek(start)
                data = handle.read(stop - start)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFoundError(f"no object at {uri}") from None
        if len(data) != stop - start:
            raise ObjectNotFoundError(
                f"{uri} is shorter than expected: bytes [{start}, {stop}) gave {len(data)} bytes "
                "(was it replaced during the run?)"
            )
        return data

    def size(self, uri: str) -> int:
        path = self.path(uri)
        if not path.is_file():
            raise ObjectNotFoundError(f"no object at {uri} (404)")
        return path.stat().st_size

    def list_prefix(self, prefix_uri: str) -> list[tuple[str, int]]:
        """``(uri, size)`` of every object under an ``s3://bucket/prefix``, in key order."""
        bucket, prefix = parse_s3_uri(prefix_uri)
        base = self.root / bucket
        if bucket != self.bucket and not base.is_dir():
            raise ObjectNotFoundError(f"cannot list {prefix_uri}: NoSuchBucket")
        folder = prefix.rpartition("/")[0]
        start = base.joinpath(*folder.split("/")) if folder else base
        if ".." in prefix.split("/") or not start.is_dir():
            return []
        found = []
        for path in start.rglob("*"):
            if path.is_file() and not path.name.startswith(TEMPORARY_PREFIX):
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix):
                    found.append((object_uri(bucket, key), path.stat().st_size))
        return sorted(found)

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        uri = self.uri(key)
        write_atomically(self.path(uri), data)
        return uri
