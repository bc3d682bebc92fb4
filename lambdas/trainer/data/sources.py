"""Where a dataset's bytes come from: the builtin set shipped in the package, or S3."""

from __future__ import annotations

from importlib import resources

from trainer.data.errors import DatasetError
from trainer.store import Store

BUILTIN_FILES = {"builtin:digits": "digits.npz"}


def read_builtin(source: str) -> tuple[bytes, str]:
    """A builtin dataset's ``.npz`` bytes (shipped inside the package) and its file name."""
    name = BUILTIN_FILES[source]
    return resources.files("trainer.builtin").joinpath(name).read_bytes(), name


def read_source(store: Store, source: str) -> tuple[bytes, str]:
    """The dataset's bytes and a file name that tells its format (``.npz`` / ``.csv``)."""
    if source in BUILTIN_FILES:
        return read_builtin(source)
    if source.startswith("s3://"):
        try:
            return store.objects.get_bytes(source), source
        except Exception as error:  # a readable cause for the Step Functions console
            raise DatasetError(f"dataset.source: cannot read {source}: {error}") from None
    raise DatasetError(
        f"dataset.source: {source!r} is a local path, which a Lambda function cannot read; "
        "start the run with `stepnet start` (it uploads the file to the stack's bucket) or "
        "upload it yourself and give its s3:// URI"
    )
