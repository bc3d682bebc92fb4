"""What a run costs on AWS, before anything is deployed: ``stepnet cost CONFIG``.

The estimate is derived from the code, not mirrored by it:

* **Store traffic** (DynamoDB and S3 requests, capacity units, bytes): the handlers' own
  ``run()`` on a store of shapes (:mod:`stepnet.billing.dryrun`), once per representative
  invocation: Plan, Evaluate, Initialize and Finalize once; per mode the first and last
  micro-batch of the epoch (each of its functions) and the first and last step's Update. Each
  is weighted by how often the epoch repeats it, from
  ``trainer.training.schedule.step_layout`` (``M`` micro-batches in ``S`` steps): the full
  micro-batch ``M − 1`` times, the last once; the full step's Update ``S − 1`` times, the last
  once. Reads are counted cold, as if no Lambda container had the tensor cached (an upper
  bound: a warm container re-reads neither what it wrote nor immutable weights it read).
* **State transitions and invocations**: the workflow's paths (``trainer.contract.workflow``):
  ``3`` per Epoch execution, ``3`` per step (per_step ``2``), ``4L + 3`` (per layer),
  ``2`` (fused) or none (per_step) per micro-batch, plus 3 per epoch and 2 per run in the Training execution; an epoch takes
  ``ceil(S / steps_per_execution)`` Epoch executions.
* **Lambda duration** (GB-seconds): assumed (:class:`~stepnet.billing.bills.DurationModel`)
  from each invocation's store traffic and assumed arithmetic, not measured.

:func:`estimate` returns a :class:`CostEstimate` for both modes (``stepnet.billing.report``
renders it); :func:`model` the usage alone. ``tests/engine/test_metering.py`` checks the counts
against a metered local run, exactly.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepnet.billing import prices
from stepnet.billing.bills import (
    CONCURRENCY,
    TELEMETRY,
    Bill,
    DurationModel,
    all_standard_bill,
    m5_bill,
    multiply_adds,
    seed_bill,
    standard_bill,
    task_flops,
)
from stepnet.billing.dryrun import (
    DRY_RUN_BUCKET,
    DatasetInput,
    DryRun,
    EstimateError,
    Invocation,
    dry_run,
)
from stepnet.billing.usage import (
    DEFAULT_MEMORY_MB,
    FUNCTION_MEMORY_MB,
    FunctionUsage,
    StoreUsage,
    Usage,
)
from trainer.config import RunConfig, parse_config
from trainer.contract import workflow
from trainer.contract.names import HISTORY_EVENT_BUDGET, INLINE_LIMIT_BYTES
from trainer.data.errors import DatasetError
from trainer.data.rows import GETS_PER_SEGMENT
from trainer.messages import MicroBatchTask, StepEnd, StepTask
from trainer.training.schedule import step_seconds_bound, steps_per_chunk

MODES = workflow.MODES

__all__ = [
    "CostEstimate",
    "Entry",
    "EstimateError",
    "ModeEstimate",
    "Model",
    "Shapes",
    "epoch_parts",
    "estimate",
    "larger_blocks",
    "model",
    "ways_to_run",
]


@dataclass(frozen=True)
class Shapes:
    """The data and the network, as the dry run's Initialize recorded them, and the epoch's
    cut (``trainer.training.schedule.step_layout``)."""

    run_id: str
    n_train: int
    n_val: int
    n_features: int
    n_outputs: int
    units: tuple[int, ...]  # per layer
    batch_size: int
    workers: int
    steps: int  # per epoch
    microbatches: int  # per epoch
    history_event_budget: int = HISTORY_EVENT_BUDGET  # the deployment's (see Limits)

    @classmethod
    def of(cls, dry: DryRun, history_event_budget: int = HISTORY_EVENT_BUDGET) -> Shapes:
        config, info = dry.config, dry.info
        return cls(
            run_id=config.run_id,
            n_train=int(info["n_train"]),
            n_val=int(info["n_val"]),
            n_features=int(info["n_features"]),
            n_outputs=int(info["n_outputs"]),
            units=tuple(layer.units for layer in config.model.layers),
            batch_size=config.batch_size,
            workers=config.workers,
            steps=dry.layout.n_steps,
            microbatches=sum(len(step) for step in dry.layout.steps),
            history_event_budget=history_event_budget,
        )

    @property
    def layers(self) -> int:
        return len(self.units)

    @property
    def sizes(self) -> list[int]:
        """``[n_features, units_1, …, units_L]``."""
        return [self.n_features, *self.units]

    @property
    def multiply_adds(self) -> int:
        """Σ_l n_in·n_out: one example's multiply-adds through every layer."""
        return multiply_adds(self.sizes)


def epoch_parts(shapes: Shapes, mode: str) -> int:
    """Express chunks one epoch's steps take (``trainer.training.schedule.steps_per_chunk``)."""
    seconds = step_seconds_bound(
        sizes=shapes.sizes, batch_size=shapes.batch_size, workers=shapes.workers, mode=mode
    )
    chunk = steps_per_chunk(
        workers=shapes.workers,
        layers=shapes.layers,
        mode=mode,
        budget=shapes.history_event_budget,
        step_seconds=seconds,
    )
    return -(-shapes.steps // chunk)


@dataclass(frozen=True)
class _Weighted:
    """A dry-run invocation, how many times per epoch (or run) it stands for, its arithmetic."""

    invocation: Invocation
    count: int
    flops: float


def _flops(invocation: Invocation, shapes: Shapes, rows: int = 0, examples: int = 0) -> float:
    message = invocation.message
    stepping = message.cursor.microbatches if isinstance(message, (StepEnd, StepTask)) else []
    return task_flops(
        invocation.function,
        shapes.sizes,
        rows=rows,
        layer=message.layer if isinstance(message, MicroBatchTask) else 0,
        microbatches=len(stepping),
        examples=examples,
    )


def _evaluated_rows(dry: DryRun, shapes: Shapes) -> int:
    """The rows an epoch's evaluation scores: the validation part, and the training part unless
    the train loss is ``running``."""
    final = dry.config.evaluation.train_loss == "final"
    return shapes.n_val + (shapes.n_train if final else 0)


def _epoch_invocations(dry: DryRun, shapes: Shapes, mode: str) -> list[_Weighted]:
    """One epoch in ``mode``: Plan once; each group's EvaluateShards once (the evaluated rows
    shared evenly), Evaluate once; the full micro-batch's invocations ``M − 1`` times and the
    last one's once; the full step's Update (per_step: its TrainStep) ``S − 1`` times, the
    last step's once."""
    first, last = dry.steps[mode][0], dry.steps[mode][-1]
    per_group = _evaluated_rows(dry, shapes) // max(1, dry.groups)
    weighted = [
        _Weighted(dry.plan, 1, _flops(dry.plan, shapes)),
        *(_Weighted(i, 1, _flops(i, shapes, examples=per_group)) for i in dry.evaluate_shards),
        _Weighted(dry.evaluate, 1, _flops(dry.evaluate, shapes)),
    ]
    if first.microbatches:  # the Map modes
        full_chain, last_chain = first.microbatches[0], last.microbatches[-1]
        for chain, count in ((full_chain, shapes.microbatches - 1), (last_chain, 1)):
            for invocation in chain.invocations:
                flops = _flops(invocation, shapes, chain.rows)
                weighted.append(_Weighted(invocation, count, flops))
    for step, count in ((first, shapes.steps - 1), (last, 1)):
        weighted.append(_Weighted(step.update, count, _flops(step.update, shapes, step.rows)))
    return [w for w in weighted if w.count > 0]


def _row_reads(dry: DryRun, shapes: Shapes, mode: str) -> tuple[str, float]:
    """The function that reads a micro-batch's rows in ``mode`` (per layer: Forward, at layer
    1; per_step: TrainStep, every micro-batch of its step) and the S3 GETs per epoch its
    micro-batches send beyond those of the two the dry run ran, weighted as every full one and
    the last (per_step: every full step and the last): the segments of rows vary with where each
    micro-batch's blocks fall (``DryRun.row_segments``, the run's mean per epoch)."""
    chain = workflow.microbatch_functions(mode, shapes.layers)
    if chain:
        first, last = dry.representative_segments
        weighted = (shapes.microbatches - 1) * first + last
        function = chain[0]
    else:
        first, last = dry.representative_step_segments
        weighted = (shapes.steps - 1) * first + last
        function = workflow.functions(workflow.step_path(mode))[0]
    mean = sum(dry.row_segments) / len(dry.row_segments) if dry.row_segments else weighted
    return function, GETS_PER_SEGMENT * (mean - weighted)


def _ms(weighted: _Weighted, duration: DurationModel, memory_mb: Mapping[str, int]) -> float:
    function = weighted.invocation.function
    memory = memory_mb.get(function, DEFAULT_MEMORY_MB)
    store = weighted.invocation.store
    return duration.task_ms(store, weighted.flops, memory, CONCURRENCY.get(function, 1))


def _usage(
    weighted: Sequence[_Weighted], duration: DurationModel, memory_mb: Mapping[str, int]
) -> Usage:
    """Per function: invocations, billed ms (each invocation's assumed duration rounded up to
    1 ms) and store traffic, each weighted by its count."""
    functions: dict[str, FunctionUsage] = {}
    for w in weighted:
        ms = math.ceil(_ms(w, duration, memory_mb))
        usage = FunctionUsage(w.count, ms * w.count, w.invocation.store.scaled(w.count))
        name = w.invocation.function
        functions[name] = functions.get(name, FunctionUsage()) + usage
    return Usage(functions=functions)


def _epoch_seconds(
    weighted: Sequence[_Weighted],
    shapes: Shapes,
    mode: str,
    duration: DurationModel,
    memory_mb: Mapping[str, int],
    chunks: int,
) -> tuple[float, float]:
    """The assumed duration of one epoch on AWS, and of its Express chunks: the step's
    micro-batches run in parallel, so each step takes one micro-batch chain (the mean duration
    of each function on the micro-batch path), the Update (per_step: its one task, which
    computes the micro-batches one after the other), and a dispatch per task, and each
    chunk a start (``duration.child_start_ms``); the evaluation's groups run ``workers`` at a
    time, then its merge."""
    total: dict[str, float] = defaultdict(float)
    count: dict[str, float] = defaultdict(float)
    for w in weighted:
        total[w.invocation.function] += _ms(w, duration, memory_mb) * w.count
        count[w.invocation.function] += w.count
    mean = {name: total[name] / count[name] for name in total}
    chain = workflow.microbatch_functions(mode, shapes.layers)
    per_step = [*chain, *workflow.functions(workflow.step_path(mode))]
    groups = count.get("EvaluateShards", 0.0)
    waves = math.ceil(groups / shapes.workers) if groups else 0
    steps_ms = shapes.steps * (
        sum(mean[f] for f in per_step) + len(per_step) * duration.task_dispatch_ms
    )
    ms = (
        mean["Plan"]
        + duration.task_dispatch_ms
        + chunks * duration.child_start_ms
        + steps_ms
        + waves * (mean.get("EvaluateShards", 0.0) + duration.task_dispatch_ms)
        + mean.get("Evaluate", 0.0)
        + duration.task_dispatch_ms
    )
    return ms / 1000, steps_ms / 1000


@dataclass(frozen=True)
class Model:
    """The usage of one config: per mode, one epoch's and the fixed part of a run's.

    Both modes share one dry run (``stepnet.billing.dryrun``), so the fixed part is the
    configured mode's Initialize and Finalize in both (they differ only by the config record's
    ``"mode"``)."""

    shapes: Shapes
    epoch: dict[str, Usage]
    run: dict[str, Usage]
    parts: dict[str, int]
    dry_run: DryRun


def model(
    config: RunConfig,
    *,
    base: Path = Path(),
    n_train: int | None = None,
    n_features: int | None = None,
    modes: Sequence[str] = MODES,
    duration: DurationModel | None = None,
    memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB,
    inline_limit: int = INLINE_LIMIT_BYTES,
    history_event_budget: int = HISTORY_EVENT_BUDGET,
    bucket: str = DRY_RUN_BUCKET,
) -> Model:
    """Dry-run ``config`` and weigh what its handlers did into usage per epoch and per run.

    ``n_train`` (training examples, after the validation split) and ``n_features`` override
    the dataset's (a stand-in of that shape is trained on; an ``s3://`` dataset needs both).
    ``inline_limit`` and ``history_event_budget``: the deployment's limits; ``bucket``: the
    bucket name the model's URI carries (its length is in the records)."""
    duration = duration or DurationModel()
    dataset = DatasetInput.of(
        config, base=base, bucket=bucket, n_train=n_train, n_features=n_features
    )
    try:
        dry = dry_run(
            config,
            dataset,
            modes=modes,
            inline_limit=inline_limit,
            bucket=bucket,
            history_event_budget=history_event_budget,
        )
    except DatasetError as error:
        raise EstimateError(str(error)) from None
    shapes = Shapes.of(dry, history_event_budget)
    fixed = [_Weighted(i, 1, 0.0) for i in dry.fixed]
    epoch, run, parts = {}, {}, {}
    for mode in modes:
        weighted = _epoch_invocations(dry, shapes, mode)
        parts[mode] = epoch_parts(shapes, mode)
        counts = {
            "steps": shapes.steps,
            "microbatches": shapes.microbatches,
            "executions": parts[mode],
        }
        standard = workflow.standard_epoch_transitions(groups=dry.groups, **counts)
        usage = _usage(weighted, duration, memory_mb)
        reader, extra = _row_reads(dry, shapes, mode)
        usage.functions[reader] = usage.functions[reader] + FunctionUsage(
            store=StoreUsage(s3_gets=extra)
        )
        usage.transitions = standard + workflow.TRAINING_TRANSITIONS_PER_EPOCH
        usage.epoch_transitions = standard
        usage.epoch_executions = 1
        usage.express_transitions = workflow.express_epoch_transitions(
            mode=mode, layers=shapes.layers, **counts
        )
        usage.express_executions = parts[mode]
        usage.express_history_events = workflow.express_epoch_events(
            mode=mode, layers=shapes.layers, **counts
        )
        usage.history_events = (
            workflow.standard_epoch_events(executions=parts[mode], groups=dry.groups)
            + usage.express_history_events
            + workflow.TRAINING_EVENTS_PER_EPOCH
        )
        usage.epoch_seconds, usage.express_seconds = _epoch_seconds(
            weighted, shapes, mode, duration, memory_mb, parts[mode]
        )
        epoch[mode] = usage
        run[mode] = _usage(fixed, duration, memory_mb)
        run[mode].transitions = workflow.training_transitions_per_run(dry.groups)
    return Model(shapes, epoch, run, parts, dry)


# --- the estimate -------------------------------------------------------------------------------


@dataclass
class ModeEstimate:
    mode: str
    usage: Usage  # one epoch
    run_usage: Usage  # the fixed part of a run (DryRun.fixed, and its Training transitions)
    standard: Bill  # one epoch, the stack as built (Standard epoch, Express chunks)
    all_standard: Bill  # one epoch, hypothetical: every transition billed as Standard
    parts: int  # Express chunks per epoch
    tasks_per_microbatch: int

    def transitions_per_example(self, n_train: int) -> float:
        """Standard (billed) state transitions per training example."""
        return self.usage.transitions / n_train

    def all_transitions_per_example(self, n_train: int) -> float:
        """Every state transition per training example, Express chunks' included (what the
        epoch would be billed on Standard alone)."""
        return (self.usage.transitions + self.usage.express_transitions) / n_train

    def run_total(self, epochs: int, memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB) -> float:
        fixed = standard_bill(self.run_usage, self.mode, memory_mb, TELEMETRY).total
        return epochs * self.standard.total + fixed


@dataclass(frozen=True)
class Entry:
    """One way to run a config: the config fields that select it (merged into the config,
    nested objects field by field, they run exactly that way) and what one epoch takes."""

    name: str
    select: dict[str, Any]
    mode: ModeEstimate
    n_train: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        usage, bill = self.mode.usage, self.mode.standard
        return {
            "name": self.name,
            "select": self.select,
            "transitions_per_epoch": usage.transitions,
            "express_transitions_per_epoch": usage.express_transitions,
            "express_chunks_per_epoch": self.mode.parts,
            "invocations_per_epoch": usage.invocations,
            "dollars_per_epoch": bill.total,
            "dollars_per_epoch_parts": dict(bill.items),
            "seconds_per_epoch_estimate": usage.epoch_seconds,
            "transitions_per_example": self.mode.transitions_per_example(self.n_train),
            "all_transitions_per_example": self.mode.all_transitions_per_example(self.n_train),
            "n_train": self.n_train,
            "note": self.note,
        }


@dataclass
class CostEstimate:
    """The estimate of one config, both modes, per epoch (and per run)."""

    config: RunConfig
    shapes: Shapes
    modes: dict[str, ModeEstimate]
    seed: Bill
    m5_large: Bill
    reference_seconds: float
    duration: DurationModel
    memory_mb: dict[str, int]
    entries: list[Entry] = field(default_factory=list)  # the ways to run, cheapest first

    @property
    def mode(self) -> ModeEstimate:
        """The config's own mode."""
        return self.modes[self.config.mode]

    def cheapest(self) -> Bill:
        bills = [m.standard for m in self.modes.values()]
        return min(bills, key=lambda b: b.total)

    def as_dict(self) -> dict[str, Any]:
        s = self.shapes
        return {
            "run_id": self.config.run_id,
            "mode": self.config.mode,
            "epochs": self.config.epochs,
            "n_train": s.n_train,
            "n_val": s.n_val,
            "n_features": s.n_features,
            "layers": s.sizes,
            "batch_size": s.batch_size,
            "workers": s.workers,
            "steps_per_epoch": s.steps,
            "microbatches_per_epoch": s.microbatches,
            "modes": {
                name: {
                    "express_chunks": m.parts,
                    "transitions_per_example": m.transitions_per_example(s.n_train),
                    "all_transitions_per_example": m.all_transitions_per_example(s.n_train),
                    "usage_per_epoch": m.usage.as_dict(self.memory_mb),
                    "usage_per_run_fixed": m.run_usage.as_dict(self.memory_mb),
                    "standard_per_epoch": m.standard.as_dict(),
                    "all_standard_per_epoch": m.all_standard.as_dict(),
                    "run_total_usd": m.run_total(self.config.epochs, self.memory_mb),
                }
                for name, m in self.modes.items()
            },
            "seed_per_epoch": self.seed.as_dict(),
            "m5_large_per_epoch": self.m5_large.as_dict(),
            "reference_seconds_assumed": self.reference_seconds,
            "memory_mb": self.memory_mb,
            "duration_model": self.duration.__dict__,
            "prices": {"source": prices.SOURCE, "recorded": prices.RECORDED},
            "entries": [entry.as_dict() for entry in self.entries],
        }


def estimate(
    config: RunConfig,
    n_train: int | None = None,
    *,
    n_features: int | None = None,
    base: Path = Path(),
    duration: DurationModel | None = None,
    memory_mb: Mapping[str, int] | None = None,
    reference_seconds: float | None = None,
    inline_limit: int = INLINE_LIMIT_BYTES,
    history_event_budget: int = HISTORY_EVENT_BUDGET,
) -> CostEstimate:
    """The cost of one epoch of ``config`` on AWS, in both modes, before deploying anything.

    ``n_train`` (training examples, after the validation split) and ``n_features`` default to
    the dataset's (builtin and local files; an ``s3://`` source needs both).
    ``reference_seconds`` (one epoch of the reference trainer) prices the m5.large; without it
    the time is assumed from ``duration.m5_large_gflops``: ``(6·n_train + 2·(n_train + n_val))
    · Σ n_in·n_out`` FLOPs (a training step's forward and backward, then the evaluation).
    """
    duration = duration or DurationModel()
    memory = dict(memory_mb or FUNCTION_MEMORY_MB)
    result = model(
        config,
        base=base,
        n_train=n_train,
        n_features=n_features,
        duration=duration,
        memory_mb=memory,
        inline_limit=inline_limit,
        history_event_budget=history_event_budget,
    )
    shapes = result.shapes
    modes: dict[str, ModeEstimate] = {}
    for mode in MODES:
        usage = result.epoch[mode]
        modes[mode] = ModeEstimate(
            mode=mode,
            usage=usage,
            run_usage=result.run[mode],
            standard=standard_bill(usage, mode, memory, TELEMETRY),
            all_standard=all_standard_bill(usage, mode, memory, TELEMETRY),
            parts=result.parts[mode],
            tasks_per_microbatch=len(workflow.microbatch_functions(mode, shapes.layers)),
        )
    entries = [
        Entry(mode, {"mode": mode}, modes[mode], shapes.n_train)
        for mode in sorted(MODES, key=lambda m: modes[m].standard.total)
    ]
    measured = reference_seconds is not None
    if reference_seconds is None:
        flops = (
            6 * shapes.n_train * shapes.multiply_adds
            + 2 * (shapes.n_train + shapes.n_val) * shapes.multiply_adds
        )
        reference_seconds = flops / (duration.m5_large_gflops * 1e9)
    return CostEstimate(
        config=config,
        shapes=shapes,
        modes=modes,
        seed=seed_bill(modes["per_layer"].usage, memory),
        m5_large=m5_bill(reference_seconds, measured=measured),
        reference_seconds=reference_seconds,
        duration=duration,
        memory_mb=memory,
        entries=entries,
    )


def larger_blocks(config: RunConfig) -> RunConfig | None:
    """``config`` with blocks of ``batch_size`` rows (a micro-batch then reads one or two
    blocks: fewer S3 GETs), or None if its blocks are that large already. The split and the
    shuffle are by blocks, so it trains on another split: weights equal the reference's for
    that config, not for ``config``."""
    if config.block_rows >= config.batch_size:
        return None
    document = json.loads(config.to_json())
    document["dataset"]["block_rows"] = config.batch_size
    return parse_config(document)


def ways_to_run(
    config: RunConfig,
    n_train: int | None = None,
    *,
    n_features: int | None = None,
    base: Path = Path(),
    **options: Any,
) -> CostEstimate:
    """:func:`estimate` of ``config``, its entries extended by the same modes with blocks of
    ``batch_size`` rows (:func:`larger_blocks`), all sorted cheapest first."""
    result = estimate(config, n_train, n_features=n_features, base=base, **options)
    variant = larger_blocks(config)
    if variant is None:
        return result
    other = estimate(variant, n_train, n_features=n_features, base=base, **options)
    select = {"dataset": {"block_rows": variant.block_rows}}
    note = (
        f"blocks of {variant.block_rows} rows: the split and shuffle are by blocks, so it trains "
        f"on {other.shapes.n_train:,} examples (weights equal the reference for that config)"
    )
    extra = [
        Entry(
            f"{e.name}, blocks of {variant.block_rows}", e.select | select, e.mode, e.n_train, note
        )
        for e in other.entries
    ]
    result.entries = sorted([*result.entries, *extra], key=lambda e: e.mode.standard.total)
    return result
