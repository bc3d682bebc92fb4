"""Where a run and an epoch stand: the small records that travel through Step Functions state.

Pure functions from the schedule to the next ``Cursor`` / ``RunProgress``.
"""

from __future__ import annotations

import re

import numpy as np

from trainer.config import RunConfig
from trainer.contract import workflow
from trainer.contract.names import HISTORY_EVENT_BUDGET
from trainer.messages import Cursor, RunProgress
from trainer.training.schedule import step_seconds_bound, steps_per_chunk


def epoch_name(run_id: str, epoch: int, attempt: int = 0) -> str:
    """The execution name of an epoch, e.g. ``digits-demo-epoch-003`` (lists in order); an
    epoch that a resumed run trains (its ``attempt``-th resume, 1-based) is named
    ``digits-demo-epoch-003-r1``: a Standard execution's name is taken for 90 days, and the
    attempt that stopped may have used the plain one."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    resumed = f"-r{attempt}" if attempt else ""
    return f"{run_id}-epoch-{epoch:03d}{resumed}"


def continuation_name(run_id: str, epoch: int, part: int, attempt: int = 0) -> str:
    """The Express execution that runs chunk ``part`` of an epoch's steps, e.g.
    ``digits-demo-epoch-003-part-02`` (``digits-demo-epoch-003-r1-part-01`` resumed)."""
    return f"{epoch_name(run_id, epoch, attempt)}-part-{part:02d}"


def resume_name(run_id: str, attempt: int) -> str:
    """The Training execution of a run's ``attempt``-th resume (1-based), e.g.
    ``digits-demo-resume-1``: the run's first execution, named ``run_id``, keeps its name."""
    if attempt < 1:
        raise ValueError(f"a resume's attempt is >= 1, got {attempt}")
    return f"{run_id}-resume-{attempt}"


def training_attempt(run_id: str, name: str) -> int | None:
    """Which of ``run_id``'s Training executions ``name`` is: 0 for the run's first
    (``run_id``), ``k`` for :func:`resume_name` ``(run_id, k)``, None for another run's."""
    if name == run_id:
        return 0
    found = re.fullmatch(rf"{re.escape(run_id)}-resume-([1-9]\d*)", name)
    return int(found.group(1)) if found else None


def _parse(run_id: str, name: str) -> re.Match[str] | None:
    return re.fullmatch(rf"{re.escape(run_id)}-epoch-(\d{{3,}})(?:-r\d+)?(-part-\d{{2,}})?", name)


def parse_epoch_name(run_id: str, name: str) -> int | None:
    """The epoch of an execution named by :func:`epoch_name` or :func:`continuation_name` for
    ``run_id`` (``digits-demo-epoch-003-part-02`` → 3); None for any other name."""
    found = _parse(run_id, name)
    return int(found.group(1)) if found else None


def is_chunk_name(run_id: str, name: str) -> bool:
    """Whether ``name`` is one of ``run_id``'s Express chunks (:func:`continuation_name`), not
    an epoch's own Standard execution."""
    found = _parse(run_id, name)
    return bool(found and found.group(2))


def step_seconds(config: RunConfig, n_features: int) -> float:
    """The assumed bound of one step's duration on AWS for ``config`` on ``n_features`` inputs
    (``trainer.training.schedule.step_seconds_bound``), which sizes the epoch's chunks."""
    return step_seconds_bound(
        sizes=[n_features, *(layer.units for layer in config.model.layers)],
        batch_size=config.batch_size,
        workers=config.workers,
        mode=config.mode,
    )


def _microbatches(schedule: np.ndarray, step: int) -> list[int]:
    if step >= schedule.shape[0]:
        return []
    return [int(w) for w in np.flatnonzero(schedule[step] > 0)]


def first_cursor(
    config: RunConfig,
    epoch: int,
    version: int,
    schedule: np.ndarray,
    *,
    groups: int = 1,
    budget: int = HISTORY_EVENT_BUDGET,
    step_seconds: float = 0.0,
    step: int = 0,
    loss_sum: float = 0.0,
    attempt: int = 0,
) -> Cursor:
    """The cursor of an epoch's first step to train: ``step`` (0 unless a resumed run continues
    the epoch where it stopped, with ``loss_sum`` of the steps before it; ``attempt``: the
    resume, which names the executions). ``schedule``: (steps, workers) micro-batch sizes;
    ``groups``: the evaluation Map's groups of shards; ``budget``: history events one chunk
    may use; ``step_seconds``: a step's assumed duration (see ``steps_per_chunk``).
    ``continuation_name`` names the chunk to run: part 1 first. An epoch whose chunks would
    take its Standard execution's history past ``budget`` is refused, naming the fix."""
    chunk = steps_per_chunk(
        workers=config.workers, layers=config.n_layers, mode=config.mode, budget=budget,
        step_seconds=step_seconds,
    )  # fmt: skip
    steps = int(schedule.shape[0])
    if not 0 <= step < steps:
        raise ValueError(f"an epoch of {steps} steps has no step {step} to train")
    chunks = -(-steps // chunk)
    events = workflow.standard_epoch_events(executions=chunks, groups=groups)
    if events > budget:
        raise ValueError(
            f"an epoch of {steps:,} steps runs in {chunks:,} chunks of {chunk} steps, whose "
            f"starts take the epoch execution's history to {events:,} events, over its "
            f"{budget:,}-event budget: raise batch_size or workers (fewer, larger steps)"
        )
    return Cursor(
        run_id=config.run_id,
        epoch=epoch,
        step=step,
        steps=steps,
        version=version,
        layers=config.n_layers,
        workers=config.workers,
        mode=config.mode,
        microbatches=_microbatches(schedule, step),
        chunk_start=step,
        chunk_steps=chunk,
        part=1,
        continuation_name=continuation_name(config.run_id, epoch, 1, attempt),
        done=False,
        chunk_full=False,
        loss_sum=loss_sum,
        groups=list(range(groups)),
        attempt=attempt,
    )


def next_cursor(
    cursor: Cursor,
    schedule: np.ndarray,
    loss_sum: float | None = None,
    losses: list[float] | None = None,
) -> Cursor:
    """The cursor after ``cursor.step`` was applied (one more weights version); ``loss_sum``:
    the epoch's ``Σ loss × examples`` with this step's micro-batches, ``losses``: theirs (each
    unchanged if None)."""
    step = cursor.step + 1
    done = step >= cursor.steps
    chunk_full = not done and step - cursor.chunk_start >= cursor.chunk_steps
    part = cursor.part + 1 if chunk_full else cursor.part
    return cursor.model_copy(
        update={
            "step": step,
            "version": cursor.version + 1,
            "microbatches": _microbatches(schedule, step),
            "done": done,
            "chunk_full": chunk_full,
            "chunk_start": step if chunk_full else cursor.chunk_start,
            "part": part,
            # the chunk to start next, which runs part ``part`` of the epoch
            "continuation_name": continuation_name(
                cursor.run_id, cursor.epoch, part, cursor.attempt
            )
            if chunk_full
            else cursor.continuation_name,
            "loss_sum": cursor.loss_sum if loss_sum is None else loss_sum,
            "losses": cursor.losses if losses is None else list(losses),
        }
    )


def run_progress(
    config: RunConfig,
    *,
    next_epoch: int,
    version: int,
    metrics: dict[str, float] | None = None,
    attempt: int = 0,
) -> RunProgress:
    """Where the run stands before ``next_epoch`` (done when all epochs are trained);
    ``attempt``: the resume that continues ``next_epoch`` (its execution's name)."""
    done = next_epoch > config.epochs
    return RunProgress(
        run_id=config.run_id,
        epochs=config.epochs,
        epoch=next_epoch,
        epoch_name=epoch_name(config.run_id, min(next_epoch, config.epochs), attempt),
        version=version,
        done=done,
        metrics=metrics,
        attempt=attempt,
    )
