"""Tensor keys: the one place that spells where every tensor bundle of a run lives.

Layers are numbered from 1. Numbers are zero-padded so that keys sort in numeric order.

Immutable (written once, kept)::

    <run_id>/weights/v000012                 every layer's parameters after 12 updates
    <run_id>/optimizer/v000012               the optimizer state that goes with them

    <run_id>/data/dataset                    the prepared dataset: shards, statistics, classes
    <run_id>/shards/s00003                   shard 3's layout, training moments and classes

Scratch (expire after the scratch TTL)::

    <run_id>/scratch/v000012/mb003/A1        layer 1's activation for micro-batch 3
    <run_id>/scratch/v000012/mb003/dZ2       gradient of the loss w.r.t. layer 2's pre-activation
    <run_id>/scratch/v000012/mb003/grad1     layer 1's parameter gradients
    <run_id>/scratch/v000012/mb003/grads     fused mode: every layer's gradients in one bundle
    <run_id>/batches/e0003/s000042/mb003     the micro-batch's X and Y (per-layer mode)
    <run_id>/evaluations/e0003/g07           an evaluation group's per-shard sums
"""

from __future__ import annotations


def _run(run_id: str) -> str:
    if not isinstance(run_id, str) or not run_id or "/" in run_id:
        raise ValueError(f"run_id must be a non-empty string without '/', got {run_id!r}")
    return run_id


def _count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _scratch(run_id: str, version: int, microbatch: int) -> str:
    return (
        f"{_run(run_id)}/scratch/v{_count('version', version, 0):06d}"
        f"/mb{_count('microbatch', microbatch, 0):03d}"
    )


def weights_key(run_id: str, version: int) -> str:
    """Every layer's parameters ({"W1", "b1", …}) after ``version`` updates: one bundle per
    version, one write per step. Immutable."""
    return f"{_run(run_id)}/weights/v{_count('version', version, 0):06d}"


def optimizer_key(run_id: str, version: int) -> str:
    """Every layer's optimizer state that goes with weights ``version`` ({"l1_m_W", …}): one
    bundle per version. Immutable."""
    return f"{_run(run_id)}/optimizer/v{_count('version', version, 0):06d}"


def dataset_key(run_id: str) -> str:
    """The prepared dataset (shards, split size, statistics, classes). Immutable."""
    return f"{_run(run_id)}/data/dataset"


def shard_key(run_id: str, shard: int) -> str:
    """One shard as prepared: where its rows are, its training moments, its classes. Immutable."""
    return f"{_run(run_id)}/shards/s{_count('shard', shard, 0):05d}"


def evaluation_key(run_id: str, epoch: int, group: int) -> str:
    """The per-shard loss sums of one evaluation group for one epoch. Scratch."""
    return (
        f"{_run(run_id)}/evaluations/e{_count('epoch', epoch, 0):04d}"
        f"/g{_count('group', group, 0):02d}"
    )


def activation_key(run_id: str, version: int, microbatch: int, layer: int) -> str:
    """Layer ``layer``'s activation A for a micro-batch under weights ``version``. Scratch."""
    return f"{_scratch(run_id, version, microbatch)}/A{_count('layer', layer, 1)}"


def output_grad_key(run_id: str, version: int, microbatch: int, layer: int) -> str:
    """dLoss/dZ of layer ``layer`` for a micro-batch under weights ``version``. Scratch."""
    return f"{_scratch(run_id, version, microbatch)}/dZ{_count('layer', layer, 1)}"


def gradient_key(run_id: str, version: int, microbatch: int, layer: int) -> str:
    """Layer ``layer``'s parameter gradients for a micro-batch under ``version``. Scratch."""
    return f"{_scratch(run_id, version, microbatch)}/grad{_count('layer', layer, 1)}"


def gradients_key(run_id: str, version: int, microbatch: int) -> str:
    """Every layer's parameter gradients for a micro-batch under ``version``, in one bundle
    (``dW1, db1, dW2, …``), as fused mode writes them. Scratch."""
    return f"{_scratch(run_id, version, microbatch)}/grads"


def batch_key(run_id: str, epoch: int, step: int, microbatch: int) -> str:
    """A micro-batch's X and Y for one step of one epoch. Scratch."""
    return (
        f"{_run(run_id)}/batches/e{_count('epoch', epoch, 0):04d}"
        f"/s{_count('step', step, 0):06d}/mb{_count('microbatch', microbatch, 0):03d}"
    )
