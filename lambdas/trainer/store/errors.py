"""Errors raised by the store. Every one subclasses :class:`StoreError`.

Each message says what was asked for, what was found and, where there is one, what to do.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the storage layer raises on purpose."""


class CodecError(StoreError, ValueError):
    """A tensor bundle that cannot be encoded, or bytes that are not an encoded bundle."""


class TensorNotFoundError(StoreError):
    """No tensor bundle is stored under ``key`` (or a scratch bundle has expired)."""

    def __init__(self, key: str, detail: str = "") -> None:
        self.key = key
        message = f"no tensor bundle is stored under key {key!r}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class ImmutableTensorError(StoreError):
    """A write that would replace an immutable tensor bundle with different content."""

    def __init__(self, key: str, detail: str = "") -> None:
        self.key = key
        message = (
            f"tensor key {key!r} already holds an immutable bundle with different content; "
            "immutable bundles are written once and never overwritten"
        )
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class TensorIntegrityError(StoreError):
    """Stored bytes whose sha256 does not match the digest recorded with them."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        super().__init__(f"tensor bundle {key!r} failed its integrity check: {detail}")


class RunNotFoundError(StoreError):
    """The run (or one of its records) does not exist."""

    def __init__(self, run_id: str, record: str = "config") -> None:
        self.run_id = run_id
        self.record = record
        if record == "config":
            message = f"run {run_id!r} does not exist (no config record in the runs table)"
        else:
            message = f"run {run_id!r} has no {record!r} record"
        super().__init__(message)


class RecordConflictError(StoreError):
    """A write-once run record already exists with different content."""

    def __init__(self, run_id: str, record: str, message: str = "") -> None:
        self.run_id = run_id
        self.record = record
        super().__init__(
            message
            or (
                f"run {run_id!r} already has a {record!r} record with different content; "
                "write-once records are never overwritten"
            )
        )


class RunExistsError(RecordConflictError):
    """A run with this id already exists with a different config."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            run_id,
            "config",
            f"a run with id {run_id!r} already exists with a different config; "
            "choose another run_id (or omit it to get a generated one)",
        )
