"""Per-feature statistics computed in pieces and merged exactly (Chan et al.'s parallel variance).

A :class:`Moments` holds ``count``, ``mean`` (d,) and ``m2`` (d,) — the sum of squared
deviations from the mean — in float64. Chunks of rows become moments (:func:`chunk_moments`), and
moments merge pairwise (:func:`merge`) in a fixed order: the chunks of a shard in row order, then
the shards in shard order. The pipeline (one task per group of shards, then a merge) and the
reference trainer run exactly these functions on exactly these chunks, so their means and
standard deviations agree bit for bit; both agree with numpy on the concatenated rows to within
float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from trainer.data.prepare import MIN_STD


@dataclass(frozen=True, eq=False)
class Moments:
    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, n_features: int) -> Moments:
        zeros = np.zeros(n_features, dtype=np.float64)
        return cls(count=0, mean=zeros, m2=zeros.copy())

    def as_bundle(self) -> dict[str, np.ndarray]:
        return {"count": np.array(self.count, dtype=np.int64), "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_bundle(cls, bundle: dict[str, np.ndarray]) -> Moments:
        return cls(
            count=int(bundle["count"]),
            mean=np.asarray(bundle["mean"], dtype=np.float64),
            m2=np.asarray(bundle["m2"], dtype=np.float64),
        )


def chunk_moments(X: np.ndarray) -> Moments:
    """The moments of rows ``X`` (n, d), computed in float64."""
    X64 = np.asarray(X, dtype=np.float64)
    if X64.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X64.shape}")
    n = int(X64.shape[0])
    if n == 0:
        return Moments.empty(int(X64.shape[1]))
    mean = X64.mean(axis=0)
    m2 = ((X64 - mean) ** 2).sum(axis=0)
    return Moments(count=n, mean=mean, m2=m2)


def merge(a: Moments, b: Moments) -> Moments:
    """The moments of the union of two disjoint sets of rows: ``δ = mean_b − mean_a``,
    ``mean = mean_a + δ·n_b/n``, ``m2 = m2_a + m2_b + δ²·n_a·n_b/n``."""
    if b.count == 0:
        return a
    if a.count == 0:
        return b
    n = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / n)
    m2 = a.m2 + b.m2 + delta**2 * (a.count * b.count / n)
    return Moments(count=n, mean=mean, m2=m2)


def merge_all(parts: Iterable[Moments], n_features: int) -> Moments:
    """Fold :func:`merge` over ``parts`` in order."""
    total = Moments.empty(n_features)
    for part in parts:
        total = merge(total, part)
    return total


def mean_and_std(moments: Moments) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` and the population ``std = sqrt(m2 / count)``; a std below ``MIN_STD`` is a
    constant feature and becomes 1 (as ``trainer.data.prepare.standardize`` treats it)."""
    if moments.count < 1:
        raise ValueError("statistics of no rows")
    std = np.sqrt(moments.m2 / moments.count)
    std[std < MIN_STD] = 1.0
    return moments.mean.copy(), std
