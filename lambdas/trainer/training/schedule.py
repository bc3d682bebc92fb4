"""The training schedule: who sees which examples, in which step, and how steps are chunked.

Pure functions shared by the pipeline's handlers and the single-process reference trainer, so that
both walk the very same schedule.

The data are blocks of consecutive rows of the dataset's shards (``trainer.data.blocks``); an
epoch visits the training blocks in a seeded order and cuts that row sequence into steps and
micro-batches. Nothing of it is stored: any task recomputes its own rows in O(blocks) from the
dataset's shard sizes, the block size, the seed and the epoch (docs/data.md).

Random streams (numpy ``default_rng`` seeded by a sequence, so streams never overlap):
- a single-file source's one-time row shuffle: ``default_rng(0)`` (``trainer.data.shards``);
- the train/validation split of the blocks: ``default_rng(seed)`` (``trainer.data.blocks``);
- the initial weights: ``default_rng([seed, 0])``;
- the shuffle of epoch ``e`` (numbered from 1): ``default_rng([seed, e])``, a permutation of the
  training blocks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np

from trainer.contract import workflow
from trainer.contract.names import EXPRESS_CHUNK_SECONDS, HISTORY_EVENT_BUDGET
from trainer.data.blocks import MAX_SHARD_GROUPS, Segment, Split, order_segments


def init_rng(seed: int) -> np.random.Generator:
    """The generator that draws the initial weights."""
    return np.random.default_rng([seed, 0])


def epoch_blocks(split: Split, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` (≥ 1) visits the training blocks: the training part's
    blocks (in the split's order) permuted by ``default_rng([seed, epoch])``. With one shard and
    one row per block it is a permutation of the training rows, as a global row shuffle."""
    order: np.ndarray = split.train[epoch_permutation(len(split.train), seed, epoch)]
    return order


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """``default_rng([seed, epoch]).permutation(n)``: epoch ``epoch``'s shuffle of ``n`` items."""
    if epoch < 1:
        raise ValueError(f"epochs are numbered from 1, got {epoch}")
    return np.random.default_rng([seed, epoch]).permutation(n)


@lru_cache(maxsize=4)
def _epoch_order(split: Split, seed: int, epoch: int) -> np.ndarray:
    order = epoch_blocks(split, seed, epoch)
    order.flags.writeable = False
    return order


def microbatch_segments(
    split: Split, seed: int, epoch: int, layout: StepLayout, step: int, microbatch: int
) -> list[Segment]:
    """The rows micro-batch ``microbatch`` of step ``step`` of epoch ``epoch`` trains on, as
    segments of shards in the epoch's order (consecutive rows of a block stay together)."""
    start, stop = layout.steps[step][microbatch]
    return order_segments(split.blocks, _epoch_order(split, seed, epoch), start, stop)


def layout_sizes(layout: StepLayout, workers: int) -> np.ndarray:
    """int64 (steps, workers): examples per micro-batch, 0 where a short last step has fewer."""
    sizes = np.zeros((layout.n_steps, workers), dtype=np.int64)
    for step, slices in enumerate(layout.steps):
        for microbatch, (start, stop) in enumerate(slices):
            sizes[step, microbatch] = stop - start
    return sizes


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


@lru_cache(maxsize=8)
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
    ``W(14L + 11) + 11`` per layer, ``9W + 11`` fused, 7 per_step. ``tests/engine`` checks this count on
    real histories."""
    return workflow.events_per_step(workers=workers, layers=layers, mode=mode)


EVALUATION_EVENTS: Final = workflow.evaluation_events(MAX_SHARD_GROUPS)
"""The most history events an epoch's evaluation adds to the execution that ends the epoch: the
Map "Evaluate shards" (4), each of its at most ``MAX_SHARD_GROUPS`` iterations (2, and its Task's
5) and the Task "Evaluate epoch" (5): 289. Every execution reserves them out of its budget."""


def steps_per_execution(
    *, workers: int, layers: int, mode: str, budget: int = HISTORY_EVENT_BUDGET
) -> int:
    """How many steps one epoch execution may run before it continues in a new execution, so
    that its history — its steps, and the epoch's evaluation if it ends the epoch
    (``EVALUATION_EVENTS``) — stays within ``budget`` events, far from Step Functions' 25,000
    limit."""
    steps = (budget - EVALUATION_EVENTS) // events_per_step(
        workers=workers, layers=layers, mode=mode
    )
    if steps < 1:
        raise ValueError(
            f"one step of {workers} workers × {layers} layers in {mode} mode and the epoch's "
            f"evaluation do not fit an execution's {budget}-event budget (the run config "
            "rejects this)"
        )
    return steps


# A deliberately pessimistic duration of one step on AWS, to size Express chunks: every Task on
# the step's critical path (one micro-batch's chain, then the Update) takes TASK_SECONDS_BOUND
# (state dispatch, Lambda invoke, store requests; warm Lambda invokes take tens of ms), and the
# arithmetic runs at ARITHMETIC_FLOPS_BOUND (numpy float32 on one Lambda vCPU does several
# GFLOP/s).
TASK_SECONDS_BOUND: Final = 1.0
ARITHMETIC_FLOPS_BOUND: Final = 1e9


def step_seconds_bound(*, sizes: list[int], batch_size: int, workers: int, mode: str) -> float:
    """An upper bound, by assumption, of one training step's duration on AWS (``sizes``:
    ``[n_features, units_1, …, units_L]``): ``TASK_SECONDS_BOUND`` per Task on the critical
    path (``2L + 1`` per layer, 1 fused, plus the Update; per_step its one Task) and the
    arithmetic on that path, at ``ARITHMETIC_FLOPS_BOUND``: ``(6·batch + (workers + 20)) ·
    Σ n_in·n_out`` (one micro-batch, the micro-batches in parallel), per_step
    ``(6·batch·workers + (workers + 20)) · Σ n_in·n_out`` (one after the other)."""
    layers = len(sizes) - 1
    tasks = len(workflow.microbatch_functions(mode, layers)) + len(
        workflow.functions(workflow.step_path(mode))
    )
    macs = sum(a * b for a, b in itertools.pairwise(sizes))
    serial = workers if mode == "per_step" else 1  # micro-batches one after the other
    flops = 6 * batch_size * serial * macs + (workers + 20) * macs
    return tasks * TASK_SECONDS_BOUND + flops / ARITHMETIC_FLOPS_BOUND


def steps_per_chunk(
    *,
    workers: int,
    layers: int,
    mode: str,
    budget: int = HISTORY_EVENT_BUDGET,
    step_seconds: float = 0.0,
    chunk_seconds: float = EXPRESS_CHUNK_SECONDS,
) -> int:
    """How many steps one Express chunk (an execution of the Steps machine) runs: at most
    ``steps_per_execution`` (its history, as the engine keeps it) and at most
    ``chunk_seconds / step_seconds`` (``step_seconds``: :func:`step_seconds_bound`; 0: no time
    bound), so that no chunk nears Express's 5-minute limit; at least 1."""
    steps = steps_per_execution(workers=workers, layers=layers, mode=mode, budget=budget)
    if step_seconds > 0:
        steps = min(steps, max(1, int(chunk_seconds // step_seconds)))
    return steps
