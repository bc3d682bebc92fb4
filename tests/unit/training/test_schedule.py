"""trainer.training.schedule: how an epoch is shuffled, cut into steps and chunked into executions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.contract.names import EXPRESS_CHUNK_SECONDS, EXPRESS_MAX_SECONDS, HISTORY_EVENT_BUDGET
from trainer.data.blocks import block_segments, split_blocks
from trainer.training.schedule import (
    ARITHMETIC_FLOPS_BOUND,
    EVALUATION_EVENTS,
    TASK_SECONDS_BOUND,
    epoch_blocks,
    epoch_permutation,
    events_per_step,
    init_rng,
    microbatch_segments,
    step_layout,
    step_seconds_bound,
    steps_per_chunk,
    steps_per_execution,
)

# --- step_layout ---------------------------------------------------------------------------------

LAYOUTS = [(1, 1, 1), (10, 3, 2), (96, 32, 3), (100, 32, 3), (150, 32, 3), (7, 10, 4), (5, 1, 5)]


@pytest.mark.parametrize(("n_train", "batch_size", "workers"), LAYOUTS)
def test_step_layout_covers_every_index_exactly_once_in_order(
    n_train: int, batch_size: int, workers: int
) -> None:
    # When
    layout = step_layout(n_train, batch_size, workers)

    # Then: the slices, read step by step and worker by worker, tile range(n_train)
    covered = [i for step in layout.steps for start, stop in step for i in range(start, stop)]
    assert covered == list(range(n_train))
    assert layout.n_steps == math.ceil(n_train / (batch_size * workers))
    for step in layout.steps:
        assert 1 <= len(step) <= workers
        assert all(stop > start for start, stop in step)


@pytest.mark.parametrize(("n_train", "batch_size", "workers"), LAYOUTS)
def test_every_step_but_the_last_has_workers_full_micro_batches(
    n_train: int, batch_size: int, workers: int
) -> None:
    # When
    layout = step_layout(n_train, batch_size, workers)

    # Then
    for step in range(layout.n_steps - 1):
        assert layout.sizes(step) == [batch_size] * workers
    assert sum(layout.sizes(layout.n_steps - 1)) == n_train - (layout.n_steps - 1) * (
        batch_size * workers
    )


@pytest.mark.parametrize(
    ("n_train", "batch_size", "workers", "last"),
    [
        (96, 32, 3, [32, 32, 32]),  # no short step
        (100, 32, 3, [4]),  # one short micro-batch
        (150, 32, 3, [32, 22]),  # fewer micro-batches, the last one short
        (160, 32, 3, [32, 32]),  # fewer micro-batches, all full
        (7, 10, 4, [7]),  # a single short step
    ],
)
def test_the_last_step_may_be_short(
    n_train: int, batch_size: int, workers: int, last: list[int]
) -> None:
    # When
    layout = step_layout(n_train, batch_size, workers)

    # Then
    assert layout.sizes(layout.n_steps - 1) == last


def test_micro_batch_slices_are_contiguous_and_in_worker_order() -> None:
    # When
    layout = step_layout(10, 3, 2)

    # Then
    assert layout.steps == (((0, 3), (3, 6)), ((6, 9), (9, 10)))


@pytest.mark.parametrize(("n_train", "batch_size", "workers"), [(0, 1, 1), (5, 0, 1), (5, 1, 0)])
def test_step_layout_rejects_empty_arguments(n_train: int, batch_size: int, workers: int) -> None:
    # When / Then
    with pytest.raises(ValueError, match="must all be ≥ 1"):
        step_layout(n_train, batch_size, workers)


# --- the epoch's order -----------------------------------------------------------------------


def test_epoch_permutation_is_a_permutation_by_seed_and_epoch() -> None:
    # When
    first = epoch_permutation(500, seed=7, epoch=3)
    again = epoch_permutation(500, seed=7, epoch=3)

    # Then
    assert first.dtype == np.int64
    assert sorted(first.tolist()) == list(range(500))
    np.testing.assert_array_equal(first, again)


def test_epoch_orders_differ_across_epochs_and_seeds() -> None:
    # When
    orders = {
        (seed, epoch): tuple(epoch_permutation(500, seed=seed, epoch=epoch).tolist())
        for seed in (0, 7)
        for epoch in (1, 2, 3)
    }

    # Then: all six orders are different
    assert len(set(orders.values())) == 6


def test_the_epoch_order_uses_the_documented_stream() -> None:
    # Given: the stream documented in trainer.training.schedule, which the initial weights do not share
    expected = np.random.default_rng([7, 2]).permutation(100)

    # When
    order = epoch_permutation(100, seed=7, epoch=2)

    # Then
    np.testing.assert_array_equal(order, expected)
    assert init_rng(7).permutation(100).tolist() != epoch_permutation(100, 7, 1).tolist()


@pytest.mark.parametrize("epoch", [0, -1])
def test_epochs_below_one_are_refused(epoch: int) -> None:
    # When / Then
    with pytest.raises(ValueError, match="epochs are numbered from 1"):
        epoch_permutation(10, seed=0, epoch=epoch)


def test_one_shard_of_one_row_blocks_is_a_plain_global_shuffle() -> None:
    # Given one shard of 100 rows, blocks of one row, 20 validation rows
    split = split_blocks((100,), 1, 0.2, seed=7)
    perm = np.random.default_rng(7).permutation(100)

    # When
    order = epoch_blocks(split, seed=7, epoch=2)

    # Then: the split is the permutation's head and tail, the order a permutation of the tail
    np.testing.assert_array_equal(split.val, perm[:20])
    np.testing.assert_array_equal(split.train, perm[20:])
    np.testing.assert_array_equal(order, perm[20:][np.random.default_rng([7, 2]).permutation(80)])


@pytest.mark.parametrize("block_rows", [1, 3, 16])
def test_an_epoch_visits_every_training_row_once_in_blocks(block_rows: int) -> None:
    # Given three shards of unequal sizes
    shards = (37, 5, 61)
    split = split_blocks(shards, block_rows, 0.25, seed=3)
    layout = step_layout(split.n_train, 8, 3)

    # When: every micro-batch's rows
    rows = []
    for step, slices in enumerate(layout.steps):
        for microbatch in range(len(slices)):
            for shard, lo, hi in microbatch_segments(split, 3, 1, layout, step, microbatch):
                rows.extend((shard, row) for row in range(lo, hi))

    # Then: each training row once, no validation row, and block by block
    val = {(s, r) for s, lo, hi in block_segments(split.blocks, split.val) for r in range(lo, hi)}
    everything = {(s, r) for s, n in enumerate(shards) for r in range(n)}
    assert len(rows) == len(set(rows)) == split.n_train
    assert set(rows) == everything - val
    starts = [i for i, (shard, row) in enumerate(rows) if row % block_rows == 0]
    assert all(
        rows[i + 1] == (rows[i][0], rows[i][1] + 1)
        for i in range(len(rows) - 1)
        if i + 1 not in starts and rows[i][1] + 1 < shards[rows[i][0]]
    )


# --- the history event budget ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["per_layer", "fused"])
@pytest.mark.parametrize(("workers", "layers"), [(1, 1), (3, 2), (4, 2), (10, 5), (40, 8)])
def test_steps_per_execution_fills_but_never_exceeds_the_budget(
    workers: int, layers: int, mode: str
) -> None:
    # When
    per_step = events_per_step(workers=workers, layers=layers, mode=mode)
    steps = steps_per_execution(workers=workers, layers=layers, mode=mode)

    # Then: the steps and the epoch's evaluation fit, and no more steps would
    assert steps >= 1
    assert per_step * steps + EVALUATION_EVENTS <= HISTORY_EVENT_BUDGET
    assert per_step * (steps + 1) + EVALUATION_EVENTS > HISTORY_EVENT_BUDGET


def test_events_per_step_grows_with_workers_and_layers() -> None:
    # When
    count = {
        (workers, layers, mode): events_per_step(workers=workers, layers=layers, mode=mode)
        for workers in (1, 2, 3)
        for layers in (1, 2, 3)
        for mode in ("per_layer", "fused")
    }

    # Then: per_layer costs more than fused and more with every layer; fused ignores layers;
    # each worker adds the same number of events
    for workers in (1, 2, 3):
        for layers in (1, 2):
            per_layer, deeper = (
                count[workers, layers, "per_layer"],
                count[workers, layers + 1, "per_layer"],
            )
            assert count[workers, layers, "fused"] < per_layer < deeper
            assert count[workers, layers, "fused"] == count[workers, layers + 1, "fused"]
    for layers in (1, 2, 3):
        for mode in ("per_layer", "fused"):
            one, two, three = (count[w, layers, mode] for w in (1, 2, 3))
            assert two - one == three - two > 0


@pytest.mark.parametrize(("workers", "layers"), [(40, 64), (40, 36), (28, 64)])
def test_a_step_too_large_for_one_execution_is_refused(workers: int, layers: int) -> None:
    # Given a step whose events alone exceed an execution's budget in per-layer mode
    assert events_per_step(workers=workers, layers=layers, mode="per_layer") > HISTORY_EVENT_BUDGET

    # When / Then the schedule refuses it rather than planning a failing execution
    with pytest.raises(ValueError, match="do not fit"):
        steps_per_execution(workers=workers, layers=layers, mode="per_layer")
    # and fused mode fits with room to spare
    fused = steps_per_execution(workers=workers, layers=layers, mode="fused")
    assert fused * events_per_step(workers=workers, layers=layers, mode="fused") <= (
        HISTORY_EVENT_BUDGET
    )


# --- Express chunks: their assumed duration ------------------------------------------------------


@pytest.mark.parametrize("mode", ["per_layer", "fused", "per_step"])
@pytest.mark.parametrize(
    ("sizes", "batch_size", "workers"),
    [([64, 64, 10], 32, 4), ([784, 256, 128, 10], 128, 4), ([2048, 1024, 512, 10], 512, 8)],
)
def test_a_chunk_that_would_near_the_express_limit_is_split(
    sizes: list[int], batch_size: int, workers: int, mode: str
) -> None:
    # Given a step's assumed duration and an epoch far longer than one Express execution may run
    seconds = step_seconds_bound(sizes=sizes, batch_size=batch_size, workers=workers, mode=mode)
    layers = len(sizes) - 1
    epoch_steps = math.ceil(10 * EXPRESS_MAX_SECONDS / seconds)

    # When
    chunk = steps_per_chunk(workers=workers, layers=layers, mode=mode, step_seconds=seconds)

    # Then the epoch takes several chunks, none assumed longer than the chunk target (itself well
    # below Express's 5 minutes), and one more step would exceed it
    assert math.ceil(epoch_steps / chunk) >= 10
    assert chunk * seconds <= EXPRESS_CHUNK_SECONDS < EXPRESS_MAX_SECONDS
    assert (chunk + 1) * seconds > EXPRESS_CHUNK_SECONDS or chunk == steps_per_execution(
        workers=workers, layers=layers, mode=mode
    )


def test_one_task_per_step_is_bounded_as_its_micro_batches_one_after_the_other() -> None:
    # Given the MNIST-sized network, batch 128 × 4 workers
    sizes, macs = [784, 256, 128, 10], 784 * 256 + 256 * 128 + 128 * 10

    # When
    fused = step_seconds_bound(sizes=sizes, batch_size=128, workers=4, mode="fused")
    per_step = step_seconds_bound(sizes=sizes, batch_size=128, workers=4, mode="per_step")

    # Then fused: its Gradients and Update tasks, one micro-batch's arithmetic (the Map runs
    # them side by side) and the update's; per_step: its one task and the four micro-batches'
    # arithmetic one after the other, and the same update's
    update = (4 + 20) * macs / 1e9
    assert fused == pytest.approx(2 * 1.0 + 6 * 128 * macs / 1e9 + update)
    assert per_step == pytest.approx(1.0 + 4 * 6 * 128 * macs / 1e9 + update)


def test_a_step_longer_than_the_chunk_target_still_runs_alone() -> None:
    # Given a step assumed to take longer than a chunk's target
    # When
    chunk = steps_per_chunk(
        workers=2, layers=2, mode="fused", step_seconds=EXPRESS_CHUNK_SECONDS + 1
    )

    # Then each chunk runs one step (the Lambda timeouts bound it; Express's limit is 2.5× more)
    assert chunk == 1


def test_the_step_duration_bound_counts_the_critical_path_and_the_arithmetic() -> None:
    # Given a 2-layer network (per_layer: Forward ×2, Loss, Backward ×2; fused: Gradients)
    sizes, batch, workers = [10, 20, 5], 8, 3
    macs = 10 * 20 + 20 * 5

    # When
    per_layer = step_seconds_bound(sizes=sizes, batch_size=batch, workers=workers, mode="per_layer")
    fused = step_seconds_bound(sizes=sizes, batch_size=batch, workers=workers, mode="fused")

    # Then: the tasks on the path (and the Update), and the step's arithmetic
    arithmetic = (6 * batch + workers + 20) * macs / ARITHMETIC_FLOPS_BOUND
    assert per_layer == pytest.approx(6 * TASK_SECONDS_BOUND + arithmetic)
    assert fused == pytest.approx(2 * TASK_SECONDS_BOUND + arithmetic)
