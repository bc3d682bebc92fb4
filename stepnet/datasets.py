"""Datasets made on the CLI side: synthetic generators, and deterministic .npz writing.

Never shipped to Lambda. The .npz files written here are exactly the format
:func:`trainer.data.readers.read_npz` reads: arrays ``X`` (n, d) and ``y`` (n,) or (n, k).
The builtin datasets ship inside the Lambda package (:mod:`trainer.data.sources`).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from trainer.data.readers import check_arrays

Arrays = tuple[np.ndarray, np.ndarray]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # a fixed timestamp keeps the .npz bytes deterministic


def npz_bytes(X: np.ndarray, y: np.ndarray) -> bytes:
    """An .npz archive of ``X`` (n, d) and ``y`` (n,) or (n, k), checked; deterministic bytes.

    Like ``numpy.savez_compressed(file, X=X, y=y)`` but with fixed zip timestamps, so the same
    arrays always give the same bytes.
    """
    X, y = np.asarray(X), np.asarray(y)
    check_arrays(X, y)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in (("X", X), ("y", y)):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def write_npz(path: str | Path, X: np.ndarray, y: np.ndarray) -> Path:
    """Write ``X`` (n, d) and ``y`` to ``path`` as an .npz (see :func:`npz_bytes`); returns it."""
    path = Path(path)
    path.write_bytes(npz_bytes(X, y))
    return path


def synthetic_regression(
    n: int = 600, d: int = 8, k: int = 1, seed: int = 0, noise: float = 0.1
) -> Arrays:
    """A smooth nonlinear regression set: ``X`` (n, d) float64, ``y`` (n,) if k == 1 else (n, k).

    ``X ~ N(0, 1)``; each target is ``sin(X @ a) + 0.5 * (X @ b)**2`` (random ``a``, ``b`` with
    unit-variance projections), scaled to mean 0 and std 1, plus ``noise * N(0, 1)``.
    The same arguments always give the same arrays.
    """
    if n < 1 or d < 1 or k < 1:
        raise ValueError(f"n, d and k must be at least 1, got n={n}, d={d}, k={k}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    a = rng.standard_normal((d, k)) / np.sqrt(d)
    b = rng.standard_normal((d, k)) / np.sqrt(d)
    signal = np.sin(X @ a) + 0.5 * (X @ b) ** 2
    spread = signal.std(axis=0)
    signal = (signal - signal.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    y = signal + noise * rng.standard_normal((n, k))
    return X, (y[:, 0] if k == 1 else y)


def synthetic_classification(
    n: int, d: int, k: int, seed: int = 0, separation: float = 5.0
) -> Arrays:
    """Gaussian blobs: ``X`` (n, d) float32, ``y`` (n,) int64 labels 0..k-1, balanced.

    Class ``c`` is ``N(center_c, I)``; the centers are random with about ``separation``
    standard deviations between any two: learnable (a nearest-class-mean rule scores about
    95% with the default) but not trivially separable. Float32 throughout and built in place:
    n=60000, d=784 is 188 MB and takes about a second (mostly drawing the noise).
    The same arguments always give the same arrays.
    """
    if d < 1 or k < 2:
        raise ValueError(f"need d >= 1 and k >= 2 classes, got d={d}, k={k}")
    if n < k:
        raise ValueError(f"n ({n}) must be at least k ({k}) so that every class appears")
    rng = np.random.default_rng(seed)
    # Two independent N(0, s²) centers differ by about s * sqrt(2d): s = separation / sqrt(2d).
    scale = np.float32(separation / np.sqrt(2 * d))
    centers = rng.standard_normal((k, d), dtype=np.float32) * scale
    y = rng.permutation(np.arange(n, dtype=np.int64) % k)
    X = rng.standard_normal((n, d), dtype=np.float32)
    chunk = 8192
    for start in range(0, n, chunk):
        X[start : start + chunk] += centers[y[start : start + chunk]]
    return X, y
