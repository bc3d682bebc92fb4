"""Where a dataset's shards come from: the builtin set shipped in the package, one S3 object, or
every object under an S3 prefix (docs/data.md). The store calls themselves are ``trainer.dal``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from trainer.data.errors import DatasetError, fail

BUILTIN_FILES = {"builtin:digits": "digits.npz"}
SHARD_SUFFIXES = (".npz", ".csv")


@dataclass(frozen=True)
class ShardObject:
    """One shard: its URI (``s3://…``, or ``builtin:…``) and its size in bytes."""

    uri: str
    size: int

    @property
    def name(self) -> str:
        """How messages name it; its extension tells its format."""
        return BUILTIN_FILES.get(self.uri, self.uri)


@dataclass(frozen=True)
class Listing:
    """A source's shards, in order. ``single_file``: the source is one file, whose rows are
    shuffled once and which makes one shard (``trainer.data.shards.single_file_shards``)."""

    source: str
    shards: tuple[ShardObject, ...]
    single_file: bool


def read_builtin(source: str) -> tuple[bytes, str]:
    """A builtin dataset's ``.npz`` bytes (shipped inside the package) and its file name."""
    name = BUILTIN_FILES[source]
    return resources.files("trainer.builtin").joinpath(name).read_bytes(), name


def is_prefix(source: str) -> bool:
    """Whether ``source`` names a prefix of shards (``s3://bucket/prefix/``)."""
    return source.startswith("s3://") and source.endswith("/")


def check_remote(source: str) -> None:
    """A source a function can read: builtin, or in S3."""
    if source in BUILTIN_FILES or source.startswith("s3://"):
        return
    raise DatasetError(
        f"dataset.source: {source!r} is a local path, which a Lambda function cannot read; "
        "start the run with `stepnet start` (it uploads the file or folder to the stack's "
        "bucket) or upload it yourself and give its s3:// URI"
    )


def prefix_shards(source: str, objects: Sequence[tuple[str, int]]) -> tuple[ShardObject, ...]:
    """The shards among the objects listed under prefix ``source``: every ``.npz`` or
    ``.csv`` object, in key order; "folder" markers (empty keys ending in '/') are skipped and
    any other object is an error (a prefix holds one dataset and nothing else)."""
    shards = []
    for uri, size in objects:
        if uri.endswith("/") and size == 0:
            continue
        if not uri.lower().endswith(SHARD_SUFFIXES):
            raise fail(
                f"{uri} is not a shard (.npz or .csv file); the prefix {source} must hold "
                "only the dataset's shards"
            )
        shards.append(ShardObject(uri=uri, size=size))
    if not shards:
        raise fail(f"dataset.source: no .npz or .csv shards under {source}")
    return tuple(shards)
