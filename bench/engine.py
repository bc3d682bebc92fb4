"""``stepnet local`` measured: time per epoch, cost per Lambda task, metered AWS usage, profile.

Each measurement runs in a fresh :class:`~stepnet.engine.LocalAccount` with a
:class:`~stepnet.billing.meter.Meter` and a :class:`~bench.profiler.CpuSampler` attached.

* **Whole epochs**: the time of an epoch is read from the Training execution's history, from
  entering *Train epoch* to leaving it (the child Epoch execution, its Express chunks and the
  evaluation — what the reference's epoch includes too).
* **A fixed number of steps** (for epochs too long to run here): the bench replaces the Update
  function with one that fails the epoch once ``steps`` updates are done (the ASL's Catch ends the
  run). The epoch is then *extrapolated*: the time from entering *Train epoch* to *Plan epoch*,
  plus Plan, plus ``steps_per_epoch ×`` the measured time per step (from the first chunk's first
  step to the failed one's end, chunk starts included), plus an Evaluate invoked directly on the
  weights reached. Counts: per-micro-batch functions are scaled by micro-batches
  per epoch over micro-batches run, Update by steps; transitions come from the model
  (``stepnet.billing.estimate``, from the handlers' dry run and the workflow's paths), which
  ``tests/engine/test_metering.py`` checks exactly against whole runs (and the bench checks
  against the partial history here).
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.profiler import CpuSampler
from stepnet.billing import estimate
from stepnet.billing.meter import Meter, history_usage
from stepnet.billing.usage import FUNCTION_MEMORY_MB, FunctionUsage, Usage
from stepnet.client import epoch_counts, readable_cause
from stepnet.engine import LocalAccount
from stepnet.local import run_local
from trainer.config import RunConfig
from trainer.contract import names, workflow
from trainer.contract.functions import functions_in
from trainer.training.cursor import epoch_name, parse_epoch_name

_STEP_LIMIT: dict[str, int | None] = {"steps": None}
MICROBATCH_FUNCTIONS = functions_in("microbatch")
STOP_MESSAGE = "bench: epoch stopped after the measured steps"


class BenchStepLimitError(Exception):
    """Raised by the bench's Update wrapper to end an epoch after the measured steps."""


def update_with_step_limit(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Update handler, failing the epoch once the bench's step limit is reached."""
    from trainer.handlers.update import handler

    result: dict[str, Any] = handler(event, context)
    limit = _STEP_LIMIT["steps"]
    if limit is not None and result["step"] >= limit and not result["done"]:
        raise BenchStepLimitError(f"{STOP_MESSAGE} ({limit})")
    return result


# --- reading histories -------------------------------------------------------------------------


def _ts(event: dict[str, Any]) -> float:
    stamp = event["timestamp"]
    return (
        stamp.timestamp()
        if isinstance(stamp, datetime)
        else datetime.fromisoformat(stamp).timestamp()
    )


def _entered(events: list[dict[str, Any]], state: str) -> list[float]:
    return [
        _ts(e)
        for e in events
        if e["type"].endswith("StateEntered")
        and e.get("stateEnteredEventDetails", {}).get("name") == state
    ]


def _exited(events: list[dict[str, Any]], state: str) -> list[float]:
    return [
        _ts(e)
        for e in events
        if e["type"].endswith("StateExited")
        and e.get("stateExitedEventDetails", {}).get("name") == state
    ]


def training_epoch_seconds(training: list[dict[str, Any]]) -> list[float]:
    """Per epoch: entering *Train epoch* to leaving it (the Epoch execution evaluates too)."""
    starts, ends = _entered(training, "Train epoch"), _exited(training, "Train epoch")
    return [end - start for start, end in zip(starts, ends, strict=False)]


def execution_seconds(events: list[dict[str, Any]]) -> float:
    return _ts(events[-1]) - _ts(events[0])


# --- one measurement ---------------------------------------------------------------------------


def _scaled_usage(
    functions: dict[str, Any], factors: dict[str, float], model: Usage, seconds: float
) -> tuple[Usage, Usage, float]:
    cold, local, handler = {}, {}, 0.0
    for name, meter in functions.items():
        factor = factors.get(name)
        if factor is None:
            continue
        cold[name] = meter.usage(cold=True).scaled(factor)
        local[name] = meter.usage(cold=False).scaled(factor)
        handler += meter.seconds * factor

    def usage(f: dict[str, FunctionUsage]) -> Usage:
        return Usage(
            transitions=model.transitions,
            epoch_transitions=model.epoch_transitions,
            epoch_executions=model.epoch_executions,
            epoch_seconds=seconds,
            express_transitions=model.express_transitions,
            express_executions=model.express_executions,
            express_seconds=seconds,
            history_events=model.history_events,
            express_history_events=model.express_history_events,
            functions=f,
        )

    return usage(cold), usage(local), handler


def _function_rows(
    usage: Usage, functions: dict[str, Any], factors: dict[str, float]
) -> list[dict[str, Any]]:
    rows = []
    for name in workflow.EPOCH_FUNCTIONS:
        u = usage.functions.get(name)
        if u is None or u.invocations == 0:
            continue
        meter = functions[name]
        rows.append(
            {
                "function": name,
                "invocations_per_epoch": u.invocations,
                "handler_ms_mean": 1000 * meter.seconds / max(meter.invocations, 1),
                "gb_seconds_per_epoch": u.billed_ms / 1000 * FUNCTION_MEMORY_MB[name] / 1024,
                "memory_mb": FUNCTION_MEMORY_MB[name],
                "store_requests_cold_per_task": u.store.requests / u.invocations,
                "tensor_bytes_per_task": (u.store.bytes_written + u.store.bytes_read)
                / u.invocations,
                "scaled_by": factors.get(name, 1.0),
            }
        )
    return rows


def measure_local(
    config: RunConfig,
    *,
    steps: int | None = None,
    base: Path = Path(),
    reference_metrics: list[dict[str, Any]] | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Run ``config`` on the local engine (whole epochs, or ``steps`` steps of epoch 1)."""
    mode = config.mode
    # threads: the meter and the profiler observe the handlers from inside this process, and the
    # step limit is this module's global, which a worker process would not see
    with LocalAccount(isolation="threads") as account:
        # the model first, in the account's environment (the handlers log at its level)
        modeled = estimate.model(config, base=base, modes=(mode,))
        shapes, model = modeled.shapes, modeled.epoch[mode]
        if steps is not None and steps >= shapes.steps:
            steps = None  # the whole epoch is no longer than the steps asked for
        if steps is not None:
            update = names.function_name(account.stack_name, "Update")
            account.runtime.register(update, f"{__name__}.update_with_step_limit")
            _STEP_LIMIT["steps"] = steps
        sampler = CpuSampler()
        sampler.attach(account.runtime)
        evaluate_seconds = 0.0
        evaluated: dict[str, Any] = {}
        try:
            with Meter(account) as meter:
                # profile the training, not the setup before it or the history download after
                updates = steps if steps is not None else shapes.steps * config.epochs

                def on_step(done: int) -> None:  # first called once the run has started
                    if not sampler.started:
                        sampler.start()
                    if done >= updates:
                        sampler.stop()

                run = run_local(config, None, base=base, account=account, on_step=on_step)
                if steps is not None:
                    # the epoch's evaluation on the weights reached: each group of shards (one
                    # after the other here), then the merge
                    started = time.perf_counter()
                    at = {"run_id": config.run_id, "epoch": 1, "version": steps}
                    calls = [
                        ("EvaluateShards", at | {"group": g}) for g in range(modeled.dry_run.groups)
                    ]
                    for function, event in [*calls, ("Evaluate", at)]:
                        payload, error = account.runtime.invoke(
                            names.function_name(account.stack_name, function), event
                        )
                        if error:
                            raise RuntimeError(f"bench: evaluating after {steps} steps: {payload}")
                    evaluate_seconds = time.perf_counter() - started
                    evaluated = payload
                sampler.stop()
        finally:
            _STEP_LIMIT["steps"] = None
        functions = meter.functions()
    training = run.histories[config.run_id]
    result: dict[str, Any] = {
        "system": f"local_{mode}",
        "label": f"stepnet local, {mode}"
        + (f", blocks of {config.block_rows}" if config.dataset.block_rows else ""),
        "mode": mode,
        "run_wall_seconds": run.wall_seconds,
        "profile": sampler.summary(),
    }
    if steps is None:
        if not run.succeeded:
            raise RuntimeError(f"bench: local run failed: {readable_cause(run.description)}")
        epochs = config.epochs
        spans = training_epoch_seconds(training)
        chunks = [
            execution_seconds(events)
            for name, events in run.every_history.items()
            if (epoch := parse_epoch_name(config.run_id, name)) is not None
            and name != epoch_name(config.run_id, epoch)  # a chunk, not the epoch's own
        ]
        factors = {name: 1 / epochs for name in workflow.EPOCH_FUNCTIONS}
        usage, local, handler = _scaled_usage(functions, factors, model, sum(chunks) / epochs)
        counted = history_usage(run.every_history, config.run_id, epochs=epochs)
        for each in (usage, local):
            each.transitions, each.epoch_transitions = (
                counted.transitions,
                counted.epoch_transitions,
            )
            each.epoch_executions = counted.epoch_executions
            each.express_transitions = counted.express_transitions
            each.express_executions = counted.express_executions
            each.history_events = counted.history_events
            each.express_history_events = counted.express_history_events
        epoch_seconds = statistics.fmean(spans)
        metrics = run.metrics
        result |= {
            "measured": f"{epochs} whole epoch{'s' if epochs > 1 else ''}",
            "extrapolated": False,
            "epochs": epochs,
            "epoch_seconds": epoch_seconds,
            "epoch_seconds_each": spans,
            "val_accuracy": metrics[-1].get("val_accuracy") if metrics else None,
            "metrics": metrics,
        }
        if reference_metrics is not None:
            pairs = list(zip(metrics, reference_metrics, strict=False))
            worst = max(
                abs(a[k] - b[k])
                for a, b in pairs
                for k in ("train_loss", "val_loss", "val_accuracy")
                if k in a
            )
            result["max_metric_difference_to_reference"] = worst
    else:
        epoch_events = run.histories[epoch_name(config.run_id, 1)]
        chunk_events = [
            run.express_histories[name]
            for name in sorted(run.express_histories)
            if name.startswith(epoch_name(config.run_id, 1) + "-part-")
        ]
        cause = readable_cause(run.description)
        if STOP_MESSAGE not in cause:
            raise RuntimeError(f"bench: local run failed before the step limit: {cause}")
        plan_in, plan_out = (
            _entered(epoch_events, "Plan epoch")[0],
            _exited(epoch_events, "Plan epoch")[0],
        )
        first_map = _entered(chunk_events[0], "Train step")[0]
        stopped = _entered(chunk_events[-1], "Chunk failed")[0]
        per_step = (stopped - first_map) / steps
        start = plan_in - _entered(training, "Train epoch")[0]
        exec_seconds = (
            (plan_in - _ts(epoch_events[0])) + (plan_out - plan_in) + shapes.steps * per_step
        )
        epoch_seconds = start + (plan_out - plan_in) + shapes.steps * per_step + evaluate_seconds
        mb_function = "Loss" if mode == "per_layer" else "Gradients"
        measured_mbs = functions[mb_function].invocations
        factors = {name: shapes.microbatches / measured_mbs for name in MICROBATCH_FUNCTIONS}
        factors |= {
            "Update": shapes.steps / steps,
            "Plan": 1.0,
            "EvaluateShards": 1.0,
            "Evaluate": 1.0,
        }
        usage, local, handler = _scaled_usage(functions, factors, model, exec_seconds)
        per_mb = workflow.transitions_per_microbatch(mode, shapes.layers)
        started = len(chunk_events)
        # Standard: Plan, per chunk its Task and Choice (the failed one's Catch: Epoch failed);
        # Express: each chunk's first Choice, 3 per step (the failed one's Choice: Chunk
        # failed), the micro-batches, and the Succeed of each chunk before the failed one
        predicted = (1 + 2 * started) + (started + 3 * steps + measured_mbs * per_mb + started - 1)
        result |= {
            "measured": f"{steps} of {shapes.steps} steps of one epoch, extrapolated",
            "extrapolated": True,
            "steps_measured": steps,
            "epochs": 1,
            "epoch_seconds": epoch_seconds,
            "seconds_per_step": per_step,
            "plan_seconds": plan_out - plan_in,
            "start_seconds": start,
            "evaluate_seconds": evaluate_seconds,
            "val_accuracy_after_steps": (evaluated.get("metrics") or {}).get("val_accuracy"),
            "partial_transitions": {
                "counted": sum(
                    epoch_counts(events)["transitions"] for events in [epoch_events, *chunk_events]
                ),
                "model": predicted,
            },
        }
    tasks = usage.invocations
    result |= {
        "tasks_per_epoch": tasks,
        "n_train": shapes.n_train,
        "ms_per_task": 1000 * epoch_seconds / tasks,
        "handler_seconds_per_epoch": handler,
        "handler_ms_per_task": 1000 * handler / tasks,
        "handler_busy_per_wall": handler / epoch_seconds,
        "express_epoch_seconds": usage.epoch_seconds,
        "usage_cold": usage.as_dict(),
        "usage_local": local.as_dict(),
        "functions": _function_rows(usage, functions, factors),
        "model_check": {
            "transitions": {"metered": usage.transitions, "model": model.transitions},
            "express_transitions": {
                "metered": usage.express_transitions,
                "model": model.express_transitions,
            },
            "invocations": {"metered": usage.invocations, "model": model.invocations},
            "store_requests_cold": {"metered": usage.store.requests, "model": model.store.requests},
        },
        "_usage": usage,
    }
    log(
        f"    {result['label']}: {epoch_seconds:.2f} s/epoch ({result['measured']}), "
        f"{tasks:,.0f} tasks, {result['ms_per_task']:.1f} ms/task"
    )
    return result
