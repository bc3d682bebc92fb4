"""Where a stopped run continues: the last weights version it completed, and from it the epoch,
step and version to train next (``stepnet resume``, the ``Resume`` handler).

A run writes weights versions ``0, 1, 2, …`` in order, one per step, each complete once its
optimizer bundle (written after the weights) is stored; an epoch of ``S`` steps takes weights
``(e-1)·S`` to ``e·S`` and is then evaluated (its metrics row). Every Task is safe to run twice
and every version immutable, so continuing at the last complete version, or re-running the
step that wrote it, rewrites nothing differently: the weights equal an uninterrupted run's.

Pure functions of integers and a predicate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ResumePoint:
    """What a resumed run trains next: ``epoch`` (``epochs + 1`` when every epoch is trained
    and evaluated: only the export is left) from weights ``version``, at ``step`` of the epoch
    (``version = (epoch - 1)·S + step``)."""

    epoch: int
    step: int
    version: int


def last_version(is_complete: Callable[[int], bool], last: int) -> int:
    """The largest ``v`` in ``[0, last]`` with ``is_complete(v)``, for a predicate true from 0 up
    to some version and false after it (versions are written in order): a binary search,
    ``⌈log2(last + 1)⌉`` probes. Raises ``ValueError`` if version 0 is not complete."""
    if last < 0:
        raise ValueError(f"last must be >= 0, got {last}")
    if not is_complete(0):
        raise ValueError("weights version 0 is not stored: the run never started")
    low, high = 0, last  # is_complete(low) holds; the answer is in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if is_complete(middle):
            low = middle
        else:
            high = middle - 1
    return low


def resume_point(*, version: int, steps: int, epochs: int, evaluated: int) -> ResumePoint:
    """Where to continue from the last complete weights ``version`` of a run of ``epochs``
    epochs of ``steps`` steps whose first ``evaluated`` epochs have metrics.

    * inside epoch ``e`` (``version`` not a multiple of ``steps``): epoch ``e`` at its step
      ``version mod steps``;
    * at the end of an evaluated epoch: the next epoch's step 0;
    * at the end of an epoch not yet evaluated: that epoch's last step again, from the version
      before (it rewrites the same version, then the epoch is evaluated).
    """
    if steps < 1 or epochs < 1:
        raise ValueError(f"a run has at least one epoch of one step, got {epochs} × {steps}")
    if not 0 <= version <= epochs * steps:
        raise ValueError(f"version {version} is not one of a run of {epochs} × {steps} steps")
    done, step = divmod(version, steps)  # epochs whose every step is applied, and the next step
    # an epoch starts once the one before is evaluated; one trained to its end may not be yet
    if not (evaluated == done or (evaluated == done - 1 and step == 0)):
        raise ValueError(
            f"{evaluated} evaluated epochs do not fit weights version {version} "
            f"({done} epochs of {steps} steps trained)"
        )
    if step or evaluated == done:
        return ResumePoint(epoch=done + 1, step=step, version=version)
    return ResumePoint(epoch=done, step=steps - 1, version=version - 1)
