"""trainer.training.cursor: the cursor an epoch execution carries and where the run stands."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from trainer.config import RunConfig, parse_config
from trainer.contract import workflow
from trainer.messages import Cursor
from trainer.training.cursor import (
    continuation_name,
    epoch_name,
    first_cursor,
    next_cursor,
    parse_epoch_name,
    run_progress,
)
from trainer.training.schedule import step_layout, steps_per_execution

RUN = "digits-demo"


def config(**overrides: Any) -> RunConfig:
    document = {
        "run_id": RUN,
        "dataset": {"source": "builtin:digits"},
        "model": {
            "layers": [{"units": 8, "activation": "relu"}, {"units": 3, "activation": "softmax"}]
        },
        "loss": "cross_entropy",
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 5,
        "batch_size": 4,
        "workers": 3,
    } | overrides
    return parse_config(document)


def schedule_of(n_train: int, batch_size: int, workers: int) -> np.ndarray:
    """The (steps, workers) micro-batch sizes Plan stores (0 where a short step has fewer)."""
    layout = step_layout(n_train, batch_size, workers)
    schedule = np.zeros((layout.n_steps, workers), dtype=np.int64)
    for step in range(layout.n_steps):
        sizes = layout.sizes(step)
        schedule[step, : len(sizes)] = sizes
    return schedule


def walk(cursor: Cursor, schedule: np.ndarray) -> list[Cursor]:
    """Every cursor from ``cursor`` to the done one, as Update hands them out."""
    cursors = [cursor]
    while not cursors[-1].done:
        assert len(cursors) <= schedule.shape[0], "the epoch never got done"
        cursors.append(next_cursor(cursors[-1], schedule))
    return cursors


# --- names ---------------------------------------------------------------------------------------


def test_epoch_and_continuation_names() -> None:
    # When / Then
    assert epoch_name(RUN, 3) == "digits-demo-epoch-003"
    assert epoch_name(RUN, 999) == "digits-demo-epoch-999"
    assert continuation_name(RUN, 3, 2) == "digits-demo-epoch-003-part-02"
    assert continuation_name(RUN, 12, 10) == "digits-demo-epoch-012-part-10"


@pytest.mark.parametrize("epoch", [1, 3, 12, 999])
@pytest.mark.parametrize("part", [None, 2, 10])
def test_parse_epoch_name_reads_back_what_the_formatters_write(
    epoch: int, part: int | None
) -> None:
    # Given an epoch execution, or one of its continuations
    name = epoch_name(RUN, epoch) if part is None else continuation_name(RUN, epoch, part)

    # When
    parsed = parse_epoch_name(RUN, name)

    # Then
    assert parsed == epoch


@pytest.mark.parametrize(
    "name",
    [
        RUN,  # the Training execution
        "other-run-epoch-001",  # another run's epoch
        f"{RUN}-x-epoch-001",  # a run whose id merely starts like this one's
        f"{RUN}-epoch-01",  # too few digits
        f"{RUN}-epoch-001-part-2",
        f"{RUN}-epoch-001-extra",
        f"{RUN}-epoch-abc",
        f"x{RUN}-epoch-001",
    ],
)
def test_parse_epoch_name_refuses_other_names(name: str) -> None:
    # When / Then
    assert parse_epoch_name(RUN, name) is None


def test_parse_epoch_name_treats_the_run_id_literally() -> None:
    # Given a run id with a character that is special in a regular expression
    run_id = "a.b"

    # When / Then
    assert parse_epoch_name(run_id, epoch_name(run_id, 4)) == 4
    assert parse_epoch_name(run_id, "axb-epoch-004") is None


def test_names_of_the_longest_run_id_fit_an_execution_name() -> None:
    # Given: Step Functions execution names are at most 80 characters
    run_id = "r" * 40

    # When
    name = continuation_name(run_id, 999, 99)

    # Then
    assert len(name) <= 80
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)


# --- first_cursor --------------------------------------------------------------------------------


def test_first_cursor_starts_the_epoch() -> None:
    # Given: 30 examples in steps of 3 × 4: steps of 12, 12 and 6 (two micro-batches)
    run = config()
    schedule = schedule_of(30, 4, 3)

    # When
    cursor = first_cursor(run, epoch=2, version=17, schedule=schedule)

    # Then
    assert cursor.run_id == RUN
    assert (cursor.epoch, cursor.step, cursor.steps, cursor.version) == (2, 0, 3, 17)
    assert (cursor.layers, cursor.workers, cursor.mode) == (2, 3, "per_layer")
    assert cursor.microbatches == [0, 1, 2]
    assert (cursor.chunk_start, cursor.part) == (0, 1)
    assert cursor.chunk_steps == steps_per_execution(workers=3, layers=2, mode="per_layer")
    assert cursor.continuation_name == "digits-demo-epoch-002-part-01"  # the chunk to run first
    assert not cursor.done
    assert not cursor.chunk_full


def test_first_cursor_of_fused_mode_uses_its_budget() -> None:
    # Given
    run = config(mode="fused")

    # When
    cursor = first_cursor(run, epoch=1, version=0, schedule=schedule_of(30, 4, 3))

    # Then
    assert cursor.mode == "fused"
    assert cursor.chunk_steps == steps_per_execution(workers=3, layers=2, mode="fused")
    assert cursor.chunk_steps > steps_per_execution(workers=3, layers=2, mode="per_layer")


# --- next_cursor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_train", "last_microbatches"),
    [(36, [0, 1, 2]), (30, [0, 1]), (25, [0]), (5, [0, 1])],
)
def test_next_cursor_walks_every_step_and_is_done_at_the_end(
    n_train: int, last_microbatches: list[int]
) -> None:
    # Given
    schedule = schedule_of(n_train, 4, 3)
    start = first_cursor(config(), epoch=1, version=40, schedule=schedule)

    # When
    cursors = walk(start, schedule)

    # Then: one cursor per step plus the done one; step and version advance together
    steps = schedule.shape[0]
    assert len(cursors) == steps + 1
    assert [c.step for c in cursors] == list(range(steps + 1))
    assert [c.version for c in cursors] == list(range(40, 40 + steps + 1))
    assert [c.done for c in cursors] == [False] * steps + [True]
    assert cursors[-2].microbatches == last_microbatches
    assert cursors[-1].microbatches == []
    for cursor in cursors[:-2]:
        assert cursor.microbatches == [0, 1, 2]
    assert all(c.steps == steps and c.epoch == 1 for c in cursors)


def test_a_short_epoch_never_fills_a_chunk() -> None:
    # Given: far fewer steps than a chunk holds
    schedule = schedule_of(100, 4, 3)
    start = first_cursor(config(), epoch=1, version=0, schedule=schedule)
    assert start.chunk_steps > schedule.shape[0]

    # When
    cursors = walk(start, schedule)

    # Then
    assert not any(c.chunk_full for c in cursors)
    assert {c.part for c in cursors} == {1}


@pytest.mark.parametrize(("n_steps", "chunk_steps"), [(10, 3), (9, 3), (7, 2), (5, 1), (4, 4)])
def test_a_chunk_is_full_exactly_every_chunk_steps_steps(n_steps: int, chunk_steps: int) -> None:
    # Given: an epoch of n_steps full steps and a small chunk
    schedule = schedule_of(n_steps * 12, 4, 3)
    start = first_cursor(config(), epoch=7, version=0, schedule=schedule)
    start = start.model_copy(update={"chunk_steps": chunk_steps})

    # When
    cursors = walk(start, schedule)

    # Then: full after every chunk_steps steps, unless the epoch is done there
    full = [c.step for c in cursors if c.chunk_full]
    assert full == [s for s in range(chunk_steps, n_steps, chunk_steps)]
    for cursor in cursors:
        part = 1 + (min(cursor.step, n_steps - 1) // chunk_steps)
        assert cursor.part == part, cursor
        assert cursor.chunk_start == (part - 1) * chunk_steps
    for cursor in cursors:
        if cursor.chunk_full:
            # the execution to start now runs this part and is named after it
            assert cursor.continuation_name == f"digits-demo-epoch-007-part-{cursor.part:02d}"
            assert not cursor.done


def test_next_cursor_keeps_the_run_facts() -> None:
    # Given
    schedule = schedule_of(30, 4, 3)
    start = first_cursor(config(mode="fused"), epoch=4, version=3, schedule=schedule)

    # When
    following = next_cursor(start, schedule)

    # Then
    same = ("run_id", "epoch", "steps", "layers", "workers", "mode", "chunk_steps")
    assert {name: getattr(following, name) for name in same} == {
        name: getattr(start, name) for name in same
    }
    assert start.step == 0  # cursors are immutable values


# --- run_progress --------------------------------------------------------------------------------


def test_run_progress_before_the_first_epoch() -> None:
    # When
    progress = run_progress(config(epochs=5), next_epoch=1, version=0)

    # Then
    assert progress.run_id == RUN
    assert (progress.epochs, progress.epoch, progress.version) == (5, 1, 0)
    assert progress.epoch_name == "digits-demo-epoch-001"
    assert not progress.done
    assert progress.metrics is None


def test_run_progress_between_epochs_names_the_next_epoch() -> None:
    # When
    progress = run_progress(
        config(epochs=5), next_epoch=3, version=24, metrics={"epoch": 2, "val_loss": 0.5}
    )

    # Then
    assert progress.epoch_name == "digits-demo-epoch-003"
    assert progress.version == 24
    assert not progress.done
    assert progress.metrics == {"epoch": 2, "val_loss": 0.5}


def test_run_progress_is_done_after_the_last_epoch() -> None:
    # When
    last = run_progress(config(epochs=5), next_epoch=5, version=40)
    after = run_progress(config(epochs=5), next_epoch=6, version=48)

    # Then
    assert not last.done
    assert after.done
    assert after.epoch == 6
    assert after.epoch_name == "digits-demo-epoch-005"  # no execution named past the last epoch


def test_an_epoch_of_more_chunks_than_its_history_holds_is_refused() -> None:
    # Given one-example steps each assumed to take longer than a chunk's target (one step per
    # chunk), more of them than the epoch execution's history budget holds chunk starts
    run = config(batch_size=1, workers=1)
    budget = 2_000
    steps = budget // workflow.EVENTS_PER_CHUNK + 1
    schedule = schedule_of(steps, 1, 1)

    # When / Then: refused with the fix, rather than failing at the history limit
    with pytest.raises(ValueError, match="raise batch_size or workers"):
        first_cursor(run, epoch=1, version=0, schedule=schedule, budget=budget, step_seconds=1e6)
    # and an epoch that fits is planned
    fits = schedule_of(10, 1, 1)
    assert first_cursor(run, epoch=1, version=0, schedule=fits, budget=budget, step_seconds=1e6)
