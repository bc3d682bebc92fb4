"""The training schedule: who sees which examples, in which step, and how steps are chunked.

Pure functions shared by the pipeline's handlers and the single-process reference trainer, so that
both walk the very same schedule.

Random streams (numpy ``default_rng`` seeded by a sequence, so streams never overlap):
- the train/validation split: ``default_rng(seed)`` (see ``trainer.data.prepare.prepare``);
- the initial weights: ``default_rng([seed, 0])``;
- the shuffle of epoch ``e`` (numbered from 1): ``default_rng([seed, e])``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.contract import workflow
from trainer.contract.names import HISTORY_EVENT_BUDGET


def init_rng(seed: int) -> np.random.Generator:
    """The generator that draws the initial weights."""
    return np.random.default_rng([seed, 0])


def epoch_order(n_train: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` (≥ 1) visits the training examples.

    Returns an int64 permutation of ``range(n_train)``.
    """
    if epoch < 1:
        raise ValueError(f"epochs are numbered from 1, got {epoch}")
    return np.random.default_rng([seed, epoch]).permutation(n_train)


@dataclass(frozen=True)
class StepLayout:
    """How one epoch is cut: ``steps[s][w]`` is the (start, stop) slice of the epoch order that
    micro-batch ``w`` of step ``s`` trains on."""

    steps: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def sizes(self, step: int) -> list[int]:
        """Examples in each micro-batch of ``step``, in worker order."""
        return [stop - start for start, stop in self.steps[step]]


def step_layout(n_train: int, batch_size: int, workers: int) -> StepLayout:
    """Cut ``n_train`` ordered examples into steps of ``workers × batch_size`` examples.

    Each step is split into micro-batches of ``batch_size`` in worker order. The last step may be
    short: it has ``ceil(rest / batch_size)`` micro-batches, the last of which may be short too.
    """
    if n_train < 1 or batch_size < 1 or workers < 1:
        raise ValueError("n_train, batch_size and workers must all be ≥ 1")
    per_step = batch_size * workers
    steps = []
    for step_start in range(0, n_train, per_step):
        step_stop = min(step_start + per_step, n_train)
        steps.append(
            tuple(
                (start, min(start + batch_size, step_stop))
                for start in range(step_start, step_stop, batch_size)
            )
        )
    return StepLayout(steps=tuple(steps))


def events_per_step(*, workers: int, layers: int, mode: str) -> int:
    """The history events one training step adds to an epoch execution (no retries), as
    :func:`trainer.contract.workflow.events_per_step` derives them from the workflow's paths:
    ``W(14L + 11) + 11`` per layer, ``9W + 11`` fused. ``tests/engine`` checks this count on
    real histories."""
    return workflow.events_per_step(workers=workers, layers=layers, mode=mode)


def steps_per_execution(
    *, workers: int, layers: int, mode: str, budget: int = HISTORY_EVENT_BUDGET
) -> int:
    """How many steps one epoch execution may run before it continues in a new execution, so
    that its history stays within ``budget`` events, far from Step Functions' 25,000 limit."""
    steps = budget // events_per_step(workers=workers, layers=layers, mode=mode)
    if steps < 1:
        raise ValueError(
            f"one step of {workers} workers × {layers} layers in {mode} mode does not fit an "
            f"execution's {budget}-event budget (the run config rejects this)"
        )
    return steps
