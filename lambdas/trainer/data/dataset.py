"""A run's dataset once prepared: its shards (where each one's rows are read), its split, its
training statistics and its classes — one small immutable bundle every task reads
(``trainer.dal.load_dataset``), whatever the dataset's size.

Also the per-shard work of preparing it (:func:`shard_moments`, :func:`shard_classes`), shared
by the ``PrepareShards`` handler and the reference trainer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.config import RunConfig
from trainer.data.blocks import (
    CHUNK_ROWS,
    Split,
    cut_segments,
    shard_part,
    split_blocks,
)
from trainer.data.errors import fail, preview
from trainer.data.prepare import class_labels
from trainer.data.rows import ShardAccess, batch_arrays
from trainer.data.shards import Schema
from trainer.data.stats import Moments, chunk_moments, mean_and_std, merge, merge_all


@dataclass(frozen=True, eq=False)
class ShardInfo:
    """Where one shard's rows are: its file (an ``s3://`` URI, or a local path in the
    reference), its rows, and the byte offsets of ``X``'s and ``y``'s data."""

    uri: str
    rows: int
    x_offset: int
    y_offset: int


@dataclass(frozen=True, eq=False)
class PreparedShard:
    """One shard once prepared: where its rows are, the moments of its training rows and, for
    classification, its classes (sorted)."""

    shard: ShardInfo
    moments: Moments
    classes: np.ndarray | None

    def as_bundle(self) -> dict[str, np.ndarray]:
        bundle = {
            "uri": np.array(self.shard.uri),
            "rows": np.array(self.shard.rows, dtype=np.int64),
            "x_offset": np.array(self.shard.x_offset, dtype=np.int64),
            "y_offset": np.array(self.shard.y_offset, dtype=np.int64),
            **self.moments.as_bundle(),
        }
        if self.classes is not None:
            bundle["classes"] = np.asarray(self.classes, dtype=np.int64)
        return bundle

    @classmethod
    def from_bundle(cls, bundle: Mapping[str, np.ndarray]) -> PreparedShard:
        shard = ShardInfo(
            uri=str(bundle["uri"]),
            rows=int(bundle["rows"]),
            x_offset=int(bundle["x_offset"]),
            y_offset=int(bundle["y_offset"]),
        )
        classes = bundle.get("classes")
        return cls(
            shard=shard,
            moments=Moments.from_bundle(dict(bundle)),
            classes=None if classes is None else np.asarray(classes),
        )


@dataclass(frozen=True, eq=False)
class Dataset:
    """The prepared dataset: ``shards`` in order, their ``schema``, the block size, the training
    part's ``mean`` and ``std`` (d,) float64 and, for classification, the sorted ``classes``."""

    schema: Schema
    shards: tuple[ShardInfo, ...]
    block_rows: int
    mean: np.ndarray
    std: np.ndarray
    classes: list[int] | None

    @property
    def shard_rows(self) -> tuple[int, ...]:
        return tuple(shard.rows for shard in self.shards)

    @property
    def n_features(self) -> int:
        return self.schema.n_features

    def split(self, validation_fraction: float, seed: int) -> Split:
        return split_blocks(self.shard_rows, self.block_rows, validation_fraction, seed)

    def batch(self, X: np.ndarray, y: np.ndarray, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
        """Stored rows to the network's standardized ``X`` and ``Y``."""
        return batch_arrays(
            X, y, mean=self.mean, std=self.std, classes=self.classes, n_outputs=n_outputs
        )

    def as_bundle(self) -> dict[str, np.ndarray]:
        bundle = {
            "schema": np.array(self.schema.model_dump_json()),
            "uris": np.array([shard.uri for shard in self.shards]),
            "rows": np.array(self.shard_rows, dtype=np.int64),
            "x_offsets": np.array([s.x_offset for s in self.shards], dtype=np.int64),
            "y_offsets": np.array([s.y_offset for s in self.shards], dtype=np.int64),
            "block_rows": np.array(self.block_rows, dtype=np.int64),
            "mean": np.asarray(self.mean, dtype=np.float64),
            "std": np.asarray(self.std, dtype=np.float64),
        }
        if self.classes is not None:
            bundle["classes"] = np.array(self.classes, dtype=np.int64)
        return bundle

    @classmethod
    def from_bundle(cls, bundle: Mapping[str, np.ndarray]) -> Dataset:
        shards = tuple(
            ShardInfo(uri=str(uri), rows=int(rows), x_offset=int(x), y_offset=int(y))
            for uri, rows, x, y in zip(
                bundle["uris"],
                bundle["rows"],
                bundle["x_offsets"],
                bundle["y_offsets"],
                strict=True,
            )
        )
        classes = bundle.get("classes")
        return cls(
            schema=Schema.model_validate_json(str(bundle["schema"])),
            shards=shards,
            block_rows=int(bundle["block_rows"]),
            mean=np.asarray(bundle["mean"]),
            std=np.asarray(bundle["std"]),
            classes=None if classes is None else [int(c) for c in classes],
        )

    def facts(self, split: Split, n_outputs: int) -> dict[str, Any]:
        """The small facts the runs table keeps about the dataset (no per-feature data)."""
        return {
            "n": sum(self.shard_rows),
            "n_train": split.n_train,
            "n_val": split.n_val,
            "n_features": self.n_features,
            "n_outputs": n_outputs,
            "shards": len(self.shards),
            "block_rows": self.block_rows,
            "blocks": split.blocks.n_blocks,
            "schema": json.loads(self.schema.model_dump_json()),
        }


# --- preparing it, shard by shard ---------------------------------------------------------


def shard_moments(access: ShardAccess, split: Split, shard: int, n_features: int) -> Moments:
    """The moments of the training rows of ``shard``: its training blocks in row order, in
    chunks of ``CHUNK_ROWS`` rows, merged chunk by chunk (``trainer.data.stats``)."""
    total = Moments.empty(n_features)
    for chunk in cut_segments(shard_part(split, "train", shard), CHUNK_ROWS):
        parts = [access.read(lo, hi)[0] for _, lo, hi in chunk]
        total = merge(total, chunk_moments(parts[0] if len(parts) == 1 else np.concatenate(parts)))
    return total


def shard_classes(y: np.ndarray) -> np.ndarray:
    """The sorted distinct labels of a shard (classification), int64."""
    return np.unique(class_labels(y))


def merge_classes(parts: Sequence[np.ndarray], units: int) -> list[int]:
    """The sorted union of the shards' classes, as Python ints; there must be ``units`` of them
    (the softmax's outputs), at least 2."""
    found = np.unique(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))
    classes = [int(c) for c in found]
    if len(classes) < 2:
        raise fail(
            f"y has a single class ({classes[0]}); classification needs at least 2 classes. "
            "Check the label column, or use loss 'mse' for regression"
        )
    if len(classes) != units:
        raise fail(
            f"the data has {len(classes)} classes {preview(classes)} but model.layers[-1].units "
            f"is {units}; set model.layers[-1].units to {len(classes)} (one softmax output per "
            "class)"
        )
    return classes


def prepare_dataset(
    config: RunConfig,
    schema: Schema,
    prepared: Sequence[PreparedShard],
) -> tuple[Dataset, Split]:
    """The prepared dataset from its prepared shards, in shard order: their moments merged
    exactly into the training part's mean and std, their classes merged and checked."""
    mean, std = mean_and_std(merge_all([p.moments for p in prepared], schema.n_features))
    classes = None
    if config.is_classification:
        classes = merge_classes(
            [p.classes for p in prepared if p.classes is not None],
            config.model.layers[-1].units,
        )
    dataset = Dataset(
        schema=schema,
        shards=tuple(p.shard for p in prepared),
        block_rows=config.block_rows,
        mean=mean,
        std=std,
        classes=classes,
    )
    return dataset, dataset.split(config.dataset.validation_fraction, config.seed)
