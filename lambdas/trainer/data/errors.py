"""Dataset errors: every problem with a dataset raises :class:`DatasetError`, whose message
names the problem and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_PREVIEW = 10  # how many classes / columns a message lists before "..."


class DatasetError(ValueError):
    """A dataset that cannot be used; the message says what is wrong and how to fix it."""


def fail(message: str) -> DatasetError:
    return DatasetError(f"dataset: {message}")


def count(number: int, noun: str) -> str:
    """``1 value``, ``3 values``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def preview(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in values[:_PREVIEW])
    return f"[{shown}{', ...' if len(values) > _PREVIEW else ''}]"
