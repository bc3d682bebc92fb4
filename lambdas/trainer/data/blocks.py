"""A dataset as blocks of consecutive rows of its shards: the unit of the split, the shuffle and
every read (docs/data.md).

Shard ``s`` (0-based, in the source's order) holds ``n_s`` rows. Its rows are cut into blocks of
``block_rows`` consecutive rows (its last block may be shorter); blocks are numbered globally,
shard by shard, so block ``g`` covers rows ``[start[g], start[g] + rows[g])`` of shard
``shard[g]``. Everything here is a pure function of the shards' row counts, the block size and
the run's seed: every handler, and the reference trainer, recomputes it in O(blocks) instead of
reading it.

A *segment* ``(shard, lo, hi)`` is a range of consecutive rows of one shard: what one pair of
byte-range reads fetches (``trainer.data.rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np

from trainer.data.errors import fail
from trainer.data.prepare import split_sizes

Segment = tuple[int, int, int]
"""``(shard, lo, hi)``: rows ``lo`` (inclusive) to ``hi`` (exclusive) of one shard."""

MAX_SHARD_GROUPS: Final = 40
"""The shard passes (check, prepare, evaluate) run one Map iteration per group of consecutive
shards; at most this many groups (an inline Map's concurrency limit), so a Map adds at most
``9 + 7 × 40`` events to a history whatever the number of shards."""

CHUNK_ROWS: Final = 4096
"""Statistics and evaluation process a shard's rows of one part in chunks of this many rows
(bounding their memory); pipeline and reference cut the same chunks, so their sums agree bit
for bit."""


@dataclass(frozen=True, eq=False)
class Blocks:
    """The dataset's blocks: int64 arrays ``shard``, ``start`` and ``rows``, one entry per block."""

    shard: np.ndarray
    start: np.ndarray
    rows: np.ndarray
    shard_rows: tuple[int, ...]
    block_rows: int

    @property
    def n_blocks(self) -> int:
        return int(self.rows.shape[0])

    @property
    def n_rows(self) -> int:
        return sum(self.shard_rows)


@lru_cache(maxsize=8)
def cut_blocks(shard_rows: tuple[int, ...], block_rows: int) -> Blocks:
    """Cut shards of ``shard_rows`` rows into blocks of ``block_rows`` rows (cached: pure)."""
    if block_rows < 1:
        raise ValueError(f"block_rows must be ≥ 1, got {block_rows}")
    if not shard_rows or min(shard_rows) < 1:
        raise ValueError(f"every shard needs at least one row, got {shard_rows}")
    counts = np.array([-(-n // block_rows) for n in shard_rows], dtype=np.int64)
    shard = np.repeat(np.arange(len(shard_rows), dtype=np.int64), counts)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # each shard's first block
    index = np.arange(shard.shape[0], dtype=np.int64) - first[shard]  # block within its shard
    start = index * block_rows
    rows = np.minimum(start + block_rows, np.asarray(shard_rows, dtype=np.int64)[shard]) - start
    for array in (shard, start, rows):
        array.flags.writeable = False  # shared through the cache
    return Blocks(shard=shard, start=start, rows=rows, shard_rows=shard_rows, block_rows=block_rows)


@dataclass(frozen=True, eq=False)
class Split:
    """The train/validation split: global block ids of each part, in the split's order."""

    blocks: Blocks
    train: np.ndarray
    val: np.ndarray

    @property
    def n_train(self) -> int:
        return int(self.blocks.rows[self.train].sum())

    @property
    def n_val(self) -> int:
        return int(self.blocks.rows[self.val].sum())

    def part(self, name: str) -> np.ndarray:
        if name == "train":
            return self.train
        if name == "val":
            return self.val
        raise ValueError(f"a part is 'train' or 'val', got {name!r}")


@lru_cache(maxsize=8)
def split_blocks(
    shard_rows: tuple[int, ...], block_rows: int, validation_fraction: float, seed: int
) -> Split:
    """The validation part: whole blocks, the first ones of ``default_rng(seed).permutation``
    of all blocks until they hold ``n_val = max(1, round(n × validation_fraction))`` rows or
    more (:func:`trainer.data.prepare.split_sizes`); the training part: the other blocks, in
    that permutation's order. With one shard and ``block_rows`` 1 this is a plain permutation of
    the rows, ``perm[:n_val]`` validating and ``perm[n_val:]`` training.

    Raises DatasetError when the validation part would leave no training block.
    """
    blocks = cut_blocks(shard_rows, block_rows)
    n = blocks.n_rows
    _, n_val = split_sizes(n, validation_fraction)
    perm = np.random.default_rng(seed).permutation(blocks.n_blocks)
    held = np.cumsum(blocks.rows[perm])
    k = int(np.searchsorted(held, n_val)) + 1  # the fewest blocks holding n_val rows
    if k >= blocks.n_blocks:
        raise fail(
            f"the validation split takes {k} of the {blocks.n_blocks} blocks of "
            f"{block_rows} rows ({n} rows in all) and leaves no training block; lower "
            "dataset.validation_fraction or dataset.block_rows, or add data"
        )
    val, train = perm[:k], perm[k:]
    val.flags.writeable = False
    train.flags.writeable = False
    return Split(blocks=blocks, train=train, val=val)


def coalesce(segments: Sequence[Segment]) -> list[Segment]:
    """Join consecutive segments that continue each other in the same shard."""
    joined: list[Segment] = []
    for shard, lo, hi in segments:
        if joined and joined[-1][0] == shard and joined[-1][2] == lo:
            joined[-1] = (shard, joined[-1][1], hi)
        else:
            joined.append((shard, lo, hi))
    return joined


def block_segments(blocks: Blocks, ids: np.ndarray) -> list[Segment]:
    """The rows of blocks ``ids``, in that order, as coalesced segments."""
    starts = blocks.start[ids]
    return coalesce(
        [
            (int(s), int(lo), int(lo + n))
            for s, lo, n in zip(blocks.shard[ids], starts, blocks.rows[ids], strict=True)
        ]
    )


def order_segments(blocks: Blocks, order: np.ndarray, start: int, stop: int) -> list[Segment]:
    """Rows ``[start, stop)`` of the row sequence that blocks ``order`` make, as segments.

    O(len(order)): the positions come from the cumulative row counts of the order.
    """
    if not 0 <= start <= stop:
        raise ValueError(f"not a row range: [{start}, {stop})")
    rows = blocks.rows[order]
    ends = np.cumsum(rows)
    if stop > (int(ends[-1]) if ends.size else 0):
        raise ValueError(f"rows [{start}, {stop}) go past the order's {int(ends[-1])} rows")
    begins = ends - rows
    first = int(np.searchsorted(ends, start, side="right"))
    last = int(np.searchsorted(begins, stop, side="left"))
    segments = []
    for i in range(first, last):
        g, begin = int(order[i]), int(begins[i])
        lo = max(start, begin) - begin
        hi = min(stop, int(ends[i])) - begin
        base = int(blocks.start[g])
        segments.append((int(blocks.shard[g]), base + lo, base + hi))
    return coalesce(segments)


def shard_part(split: Split, part: str, shard: int) -> list[Segment]:
    """The rows of ``part`` ("train" or "val") in shard ``shard``, in ascending row order."""
    ids = split.part(part)
    mine = np.sort(ids[split.blocks.shard[ids] == shard])
    return block_segments(split.blocks, mine)


def cut_segments(segments: Sequence[Segment], size: int) -> list[list[Segment]]:
    """The rows of ``segments`` in chunks of ``size`` rows (the last chunk may be shorter)."""
    if size < 1:
        raise ValueError(f"chunks need at least one row, got {size}")
    chunks: list[list[Segment]] = []
    current: list[Segment] = []
    room = size
    for shard, lo, hi in segments:
        while lo < hi:
            take = min(room, hi - lo)
            current.append((shard, lo, lo + take))
            lo += take
            room -= take
            if room == 0:
                chunks.append(current)
                current, room = [], size
    if current:
        chunks.append(current)
    return chunks


def segment_rows(segments: Sequence[Segment]) -> int:
    return sum(hi - lo for _, lo, hi in segments)


# --- groups of shards ----------------------------------------------------------------------


def shard_groups(n_shards: int) -> int:
    """How many Map iterations the shard passes take: ``min(n_shards, MAX_SHARD_GROUPS)``."""
    if n_shards < 1:
        raise ValueError(f"a dataset has at least one shard, got {n_shards}")
    return min(n_shards, MAX_SHARD_GROUPS)


def group_shards(n_shards: int, group: int) -> range:
    """The consecutive shards of group ``group``: near-equal ranges, in shard order."""
    groups = shard_groups(n_shards)
    if not 0 <= group < groups:
        raise ValueError(f"group {group} is not one of the {groups} groups of {n_shards} shards")
    return range(group * n_shards // groups, (group + 1) * n_shards // groups)
