"""How much memory each function needs for a config: the formula of docs/data.md.

Per invocation a function holds the runtime (``BASELINE_MB``, measured), the store's cache of
immutable bundles (at most ``min(256 MB, memory / 8)``), the model — parameters, and for
Update the optimizer's moments and every micro-batch's gradients — and one unit of data: a
micro-batch, a chunk of ``CHUNK_ROWS`` rows, or one shard for the shard passes. Never the
dataset: the only terms that grow with it are the block table (``BLOCK_BYTES`` per block of
``block_rows`` rows) and the shards' list, both tiny.

:func:`estimate` gives every function's need in bytes; :func:`check` compares it with the
functions' sizes (the contract's, or a deployment's) and names each function that would use
more than ``HEADROOM`` of its memory, with the fix. ``stepnet cost`` and the CLI call it before
anything runs; ``CheckShards`` checks each shard it is about to read against its own memory.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from trainer import settings
from trainer.config import RunConfig
from trainer.contract import workflow
from trainer.contract.names import FULL_VCPU_MEMORY_MB
from trainer.data.blocks import CHUNK_ROWS, MAX_SHARD_GROUPS
from trainer.data.errors import fail
from trainer.data.rows import READ_THREADS
from trainer.store import DEFAULT_CACHE_BYTES

MB: Final = 1024 * 1024
BASELINE_MB: Final = 100
"""The runtime before any data: the interpreter with numpy (its BLAS), boto3's clients,
pydantic, Powertools and the handlers' imports — 80 MB measured on the local engine's Python —
plus the Lambda runtime's own client."""
CACHE_MB: Final = DEFAULT_CACHE_BYTES // MB  # the cap of the store's LRU of immutable bundles
CACHE_FRACTION: Final = settings.CACHE_FRACTION  # … and at most 1/8 of the function's memory
HEADROOM: Final = 0.8
"""A config is refused when a function's estimate is above this fraction of its memory."""
BLOCK_BYTES: Final = 64  # the block table, the split and an epoch's order: int64s per block
SHARD_FACTOR: Final = {"npz": 3, "csv": 5}
"""A shard being checked or prepared takes this many times its file's size, at most: the
bytes, the decoded arrays (a CSV's float64 table is about as large as its text, and is copied
once) and the per-chunk float64 statistics."""


@dataclass(frozen=True)
class DatasetShape:
    """What the formula needs to know of a dataset: its rows, features, bytes per stored row
    and per feature, its shards and the largest shard file."""

    rows: int
    n_features: int
    row_bytes: int
    x_itemsize: int
    shards: int
    largest_shard_bytes: int
    shard_format: str = "npz"


@dataclass(frozen=True)
class Need:
    """One function's estimate, in bytes, and what it is made of."""

    function: str
    bytes: int
    parts: dict[str, int]

    @property
    def mb(self) -> float:
        return self.bytes / MB


def _params(config: RunConfig, n_features: int) -> list[tuple[int, int]]:
    sizes = [n_features, *(layer.units for layer in config.model.layers)]
    return list(itertools.pairwise(sizes))


def parameter_bytes(config: RunConfig, n_features: int) -> int:
    """float32 weights and biases of every layer."""
    return 4 * sum(n_in * n_out + n_out for n_in, n_out in _params(config, n_features))


def optimizer_slots(config: RunConfig) -> int:
    return {"sgd": 0, "momentum": 1, "adam": 2}[config.optimizer.name]


def rows_bytes(config: RunConfig, shape: DatasetShape, rows: int) -> int:
    """``rows`` rows read and made ready: the bytes read (and their join), the float64
    standardization's temporary, the float32 inputs and the float32 targets."""
    outputs = config.model.layers[-1].units
    return rows * (2 * shape.row_bytes + 8 * shape.n_features + 4 * shape.n_features + 4 * outputs)


def activation_bytes(config: RunConfig, rows: int) -> int:
    """float32 activations of every layer and, backward, about as much again."""
    return 2 * 4 * rows * sum(layer.units for layer in config.model.layers)


def cache_bytes(memory_mb: int) -> int:
    """The most the store's cache holds in a function of ``memory_mb``."""
    return min(CACHE_MB, memory_mb // CACHE_FRACTION) * MB


def estimate(
    config: RunConfig, shape: DatasetShape, memory_mb: Mapping[str, int]
) -> dict[str, Need]:
    """Every function's need (bytes) for ``config`` on a dataset of ``shape``, with the
    functions sized ``memory_mb`` (their cache is bounded by their size)."""
    base = BASELINE_MB * MB
    P = parameter_bytes(config, shape.n_features)
    slots = optimizer_slots(config)
    blocks = math.ceil(shape.rows / config.block_rows) + shape.shards
    table = BLOCK_BYTES * blocks + 64 * shape.shards + 16 * shape.n_features
    batch = config.batch_size
    widest = max(shape.n_features, *(layer.units for layer in config.model.layers))
    layers = _params(config, shape.n_features)
    largest_layer = 4 * max(n_in * n_out + n_out for n_in, n_out in layers)
    shard = SHARD_FACTOR.get(shape.shard_format, 5) * shape.largest_shard_bytes
    # byte ranges in flight while a batch is read: at most READ_THREADS segments of a batch
    reads = min(batch, READ_THREADS * config.block_rows) * shape.row_bytes
    chunk = min(CHUNK_ROWS, shape.rows)

    parts: dict[str, dict[str, int]] = {
        "Initialize": {},
        "CheckShards": {"one shard": shard},
        "PrepareShards": {"one shard": shard, "its converted copy": shape.largest_shard_bytes},
        "Start": {
            "shards' moments": shape.shards * 16 * shape.n_features,
            "block table": table,
            "weights v0": P * (1 + slots),
        },
        "Plan": {"block table": table},
        "Forward": {
            "block table": table,
            "micro-batch": rows_bytes(config, shape, batch) + reads,
            "one layer": largest_layer + 3 * 4 * batch * widest,
        },
        "Loss": {"outputs and targets": 4 * 4 * batch * config.model.layers[-1].units},
        "Backward": {"one layer": 2 * largest_layer + 3 * 4 * batch * widest},
        "Gradients": {
            "block table": table,
            "micro-batch": rows_bytes(config, shape, batch) + reads,
            "weights and gradients": 2 * P,
            "activations": activation_bytes(config, batch),
        },
        "Update": {"weights, moments, gradients": P * (2 + 2 * slots + config.workers)},
        # per_step: Update's model terms, and one micro-batch at a time as Gradients holds it
        "TrainStep": {
            "block table": table,
            "micro-batch": rows_bytes(config, shape, batch) + reads,
            "weights, moments, gradients": P * (2 + 2 * slots + config.workers),
            "activations": activation_bytes(config, batch),
        },
        "EvaluateShards": {
            "block table": table,
            "weights": P,
            "chunk": rows_bytes(config, shape, chunk) + activation_bytes(config, chunk),
        },
        "Evaluate": {"block table": table, "sums": 64 * shape.shards + 64 * MAX_SHARD_GROUPS},
        "Finalize": {"weights": 2 * P, "statistics": 16 * shape.n_features},
    }
    needs = {}
    for function, working in parts.items():
        memory = memory_mb.get(function)
        cached = cache_bytes(memory) if memory is not None else CACHE_MB * MB
        every = {"runtime": base, "cache": cached, **working}
        needs[function] = Need(function=function, bytes=sum(every.values()), parts=every)
    return needs


class MemoryFitError(ValueError):
    """A config some function cannot run within its memory; the message names each one."""


def check(config: RunConfig, shape: DatasetShape, memory_mb: Mapping[str, int]) -> None:
    """Raise :class:`MemoryFitError` if any function the config runs (the step's functions of
    its mode only) has an estimate above ``HEADROOM`` of its memory, naming the function,
    the estimate, its memory and the fixes."""
    problems = []
    for function, need in estimate(config, shape, memory_mb).items():
        memory = memory_mb.get(function)
        if memory is None or need.bytes <= HEADROOM * memory * MB:
            continue
        if function in _other_mode(config.mode):
            continue  # the other mode's micro-batch functions do not run
        largest = max(
            (p for p in need.parts if p not in ("runtime", "cache")),
            key=need.parts.__getitem__,
            default="",
        )
        wanted = math.ceil(need.bytes / HEADROOM / MB)
        problems.append(
            f"{function} needs about {need.mb:,.0f} MB ({largest}: "
            f"{need.parts.get(largest, 0) / MB:,.0f} MB) but has {memory:,} MB, of which "
            f"{HEADROOM:.0%} may be used; give it {wanted:,} MB or more (the stack's `memory` "
            f"context: -c 'memory={{\"{function}\": {wanted}}}'; stepnet local "
            f"--function-memory {function}={wanted})"
            + (", or lower batch_size" if function in _BATCH_BOUND else "")
            + (
                ", or cut the dataset into smaller shards (--shard-mb)"
                if "shard" in largest
                else ""
            )
        )
    if problems:
        raise MemoryFitError(
            "the config does not fit its functions' memory (docs/data.md):\n  "
            + "\n  ".join(problems)
        )


_BATCH_BOUND: Final = frozenset({"Forward", "Loss", "Backward", "Gradients", "TrainStep"})


def _mode_functions(mode: str) -> set[str]:
    """The functions a step runs in ``mode``: its micro-batches' and its step path's."""
    return set(workflow.microbatch_functions(mode, 1)) | set(
        workflow.functions(workflow.step_path(mode))
    )


def _other_mode(mode: str) -> set[str]:
    """The step's functions only the other modes run."""
    return {f for m in workflow.MODES for f in _mode_functions(m)} - _mode_functions(mode)


def own_memory_mb(environ: Mapping[str, str] = os.environ) -> int:
    """The memory of the function running this code: Lambda's ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``,
    else (the local engine, tests) the shard passes' size in the contract, one full vCPU."""
    value = environ.get(settings.LAMBDA_MEMORY_VARIABLE, "")
    return int(value) if value.isdigit() else FULL_VCPU_MEMORY_MB


def largest_shard_bytes(function: str, shard_format: str, memory_mb: int) -> int:
    """The largest shard file ``function`` (CheckShards, PrepareShards) can take within
    ``HEADROOM`` of ``memory_mb``: what is left beside the runtime and the cache, over the
    format's factor (and a converted copy for PrepareShards)."""
    room = HEADROOM * memory_mb * MB - BASELINE_MB * MB - cache_bytes(memory_mb)
    factor = SHARD_FACTOR.get(shard_format, 5) + (1 if function == "PrepareShards" else 0)
    return max(0, int(room // factor))


def check_shard_fits(function: str, name: str, size: int, memory_mb: int) -> None:
    """Refuse, before reading it, a shard file too large for ``function``'s memory: a
    DatasetError naming the shard, its size, the limit and the fixes."""
    shard_format = "csv" if name.lower().endswith(".csv") else "npz"
    limit = largest_shard_bytes(function, shard_format, memory_mb)
    if size <= limit:
        return
    raise fail(
        f"shard {name} is {size / MB:,.0f} MB, more than {function} can read within its "
        f"{memory_mb:,} MB ({limit / MB:,.0f} MB for a .{shard_format} shard, docs/data.md); "
        "cut the dataset into smaller shards (stepnet start --shard-mb, or write smaller files) "
        f"or give {function} more memory (the stack's `memory` context)"
    )
