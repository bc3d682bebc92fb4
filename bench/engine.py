"""``stepnet local`` measured: time per epoch, cost per Lambda task, metered AWS usage, profile.

Each measurement runs in a fresh :class:`~stepnet.engine.LocalAccount` with a
:class:`~stepnet.billing.meter.Meter` and a :class:`~bench.profiler.CpuSampler` attached.

* **Whole epochs**: the time of an epoch is read from the Training execution's history, from
  entering *Train epoch* to leaving *Evaluate epoch* (the child Epoch executions, their
  continuations and the evaluation — what the reference's epoch includes too).
* **A fixed number of steps** (for epochs too long to run here): the bench replaces the Update
  function with one that fails the epoch once ``steps`` updates are done (the ASL's Catch ends the
  run). The epoch is then *extrapolated*: the time from entering *Train epoch* to *Plan epoch*,
  plus Plan, plus ``steps_per_epoch ×`` the measured time per step, plus an Evaluate invoked
  directly on the weights reached. Counts: per-micro-batch functions are scaled by micro-batches
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
from stepnet.billing.meter import Meter
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
    """Per epoch: entering *Train epoch* to leaving *Evaluate epoch*."""
    starts, ends = _entered(training, "Train epoch"), _exited(training, "Evaluate epoch")
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
    with LocalAccount() as account:
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
                    started = time.perf_counter()
                    payload, error = account.runtime.invoke(
                        names.function_name(account.stack_name, "Evaluate"),
                        {"run_id": config.run_id, "epoch": 1, "version": steps},
                    )
                    evaluate_seconds = time.perf_counter() - started
                    if error:
                        raise RuntimeError(f"bench: evaluating after {steps} steps: {payload}")
                    evaluated = payload
                sampler.stop()
        finally:
            _STEP_LIMIT["steps"] = None
        functions = meter.functions()
    training = run.histories[config.run_id]
    result: dict[str, Any] = {
        "system": f"local_{mode}",
        "label": f"stepnet local, {mode}",
        "mode": mode,
        "run_wall_seconds": run.wall_seconds,
        "profile": sampler.summary(),
    }
    if steps is None:
        if not run.succeeded:
            raise RuntimeError(f"bench: local run failed: {readable_cause(run.description)}")
        epochs = config.epochs
        spans = training_epoch_seconds(training)
        tops = [
            execution_seconds(events)
            for name, events in run.histories.items()
            if (epoch := parse_epoch_name(config.run_id, name)) is not None
            and name == epoch_name(config.run_id, epoch)  # the epoch's own, not a continuation
        ]
        factors = {name: 1 / epochs for name in workflow.EPOCH_FUNCTIONS}
        usage, local, handler = _scaled_usage(functions, factors, model, statistics.fmean(tops))
        measured_transitions = sum(row["transitions"] for row in run.per_epoch) / epochs
        usage.transitions = measured_transitions + workflow.TRAINING_TRANSITIONS_PER_EPOCH
        usage.epoch_transitions = measured_transitions
        usage.epoch_executions = sum(row["executions"] for row in run.per_epoch) / epochs
        local.transitions, local.epoch_transitions = usage.transitions, usage.epoch_transitions
        local.epoch_executions = usage.epoch_executions
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
        epoch_events = run.histories[f"{config.run_id}-epoch-001"]
        cause = readable_cause(run.description)
        if STOP_MESSAGE not in cause:
            raise RuntimeError(f"bench: local run failed before the step limit: {cause}")
        plan_in, plan_out = (
            _entered(epoch_events, "Plan epoch")[0],
            _exited(epoch_events, "Plan epoch")[0],
        )
        first_map = _entered(epoch_events, "Train step")[0]
        stopped = _entered(epoch_events, "Epoch failed")[0]
        per_step = (stopped - first_map) / steps
        start = plan_in - _entered(training, "Train epoch")[0]
        exec_seconds = (
            (plan_in - _ts(epoch_events[0])) + (plan_out - plan_in) + shapes.steps * per_step
        )
        epoch_seconds = start + (plan_out - plan_in) + shapes.steps * per_step + evaluate_seconds
        mb_function = "Loss" if mode == "per_layer" else "Gradients"
        measured_mbs = functions[mb_function].invocations
        factors = {name: shapes.microbatches / measured_mbs for name in MICROBATCH_FUNCTIONS}
        factors |= {"Update": shapes.steps / steps, "Plan": 1.0, "Evaluate": 1.0}
        usage, local, handler = _scaled_usage(functions, factors, model, exec_seconds)
        per_mb = workflow.transitions_per_microbatch(mode, shapes.layers)
        predicted = 2 + 3 * steps - 1 + measured_mbs * per_mb + 1  # …, Epoch failed
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
                "counted": epoch_counts(epoch_events)["transitions"],
                "model": predicted,
            },
        }
    tasks = usage.invocations
    result |= {
        "tasks_per_epoch": tasks,
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
