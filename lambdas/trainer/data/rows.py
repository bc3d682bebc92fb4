"""Reading rows: segments of shards to arrays, and arrays to what the network trains on.

A shard is read through a :class:`ShardAccess`: :class:`RangeShard` fetches byte ranges of a
shard in the read layout (``trainer.data.shards.npz_layout``) — rows ``[lo, hi)`` are one range
of ``X`` and one of ``y`` — from S3 (the handlers) or a local file (the reference trainer);
:class:`ArrayShard` slices arrays already in memory (a shard that was converted). Either way the
rows come back with the dtypes they are stored in, and :func:`batch_arrays` turns them into the
network's inputs exactly as for any other rows: standardized ``X`` and one-hot (or target) ``Y``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from trainer.data.blocks import Segment
from trainer.data.prepare import class_labels, encode_labels, standardize

READ_THREADS: Final = 16  # byte-range reads of one batch in flight at once
GETS_PER_SEGMENT: Final = 2  # RangeShard.read: X's byte range, then y's


class ShardAccess(Protocol):
    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[lo, hi)``: ``X`` (hi - lo, d) and ``y`` (hi - lo,) or (hi - lo, k), as stored."""


@dataclass(frozen=True, eq=False)
class ArrayShard:
    """A shard in memory."""

    X: np.ndarray
    y: np.ndarray

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        return self.X[lo:hi], self.y[lo:hi]


Fetch = Callable[[int, int], bytes]
"""Bytes ``[start, stop)`` of one shard's file."""


@dataclass(frozen=True)
class RangeShard:
    """A shard in the read layout, read by byte ranges: ``X`` (rows, n_features) of ``x_dtype``
    at ``x_offset`` and ``y`` (rows,) or (rows, y_columns) of ``y_dtype`` at ``y_offset``."""

    fetch: Fetch
    x_offset: int
    y_offset: int
    n_features: int
    x_dtype: str
    y_dtype: str
    y_columns: int | None

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        n = hi - lo
        x_row = self.n_features * np.dtype(self.x_dtype).itemsize
        y_width = 1 if self.y_columns is None else self.y_columns
        y_row = y_width * np.dtype(self.y_dtype).itemsize
        x_bytes = self.fetch(self.x_offset + lo * x_row, self.x_offset + hi * x_row)
        y_bytes = self.fetch(self.y_offset + lo * y_row, self.y_offset + hi * y_row)
        X = np.frombuffer(x_bytes, dtype=self.x_dtype).reshape(n, self.n_features)
        y_shape = (n,) if self.y_columns is None else (n, self.y_columns)
        y = np.frombuffer(y_bytes, dtype=self.y_dtype).reshape(y_shape)
        return X, y


def read_segments(
    shards: Sequence[ShardAccess], segments: Sequence[Segment], *, threads: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``segments``, in order, as one ``X`` and one ``y``; with ``threads`` the
    segments are read concurrently (their byte ranges are independent requests)."""
    if not segments:
        raise ValueError("no rows to read")

    def one(segment: Segment) -> tuple[np.ndarray, np.ndarray]:
        shard, lo, hi = segment
        return shards[shard].read(lo, hi)

    if threads > 1 and len(segments) > 1:
        with ThreadPoolExecutor(max_workers=min(threads, len(segments))) as pool:
            # each read in a copy of the caller's context (whatever it carries: a meter's
            # attribution of requests to the invocation, for one)
            futures = [pool.submit(contextvars.copy_context().run, one, s) for s in segments]
            parts = [future.result() for future in futures]
    else:
        parts = [one(segment) for segment in segments]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([X for X, _ in parts]), np.concatenate([y for _, y in parts])


def targets(y: np.ndarray, classes: Sequence[Any] | None, n_outputs: int) -> np.ndarray:
    """``Y`` float32 (n, n_outputs): one-hot rows over ``classes`` for classification (None:
    regression, ``y`` as a column or as its columns)."""
    if classes is not None:
        return encode_labels(class_labels(np.asarray(y)), classes)
    return np.asarray(y).reshape(y.shape[0], n_outputs).astype(np.float32)


def batch_arrays(
    X: np.ndarray,
    y: np.ndarray,
    *,
    mean: np.ndarray,
    std: np.ndarray,
    classes: Sequence[Any] | None,
    n_outputs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Stored rows to the network's ``X`` (standardized, float32) and ``Y`` (float32)."""
    return standardize(X, mean, std), targets(y, classes, n_outputs)
