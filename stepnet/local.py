"""``stepnet local``: a whole training on the local engine, through the same client as on AWS."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepnet.client import StepnetClient, epoch_counts, resources_from_stack
from stepnet.engine import LocalAccount
from stepnet.engine.account import REGION
from trainer.config import RunConfig


@dataclass
class LocalRun:
    """What a local training produced and what it took."""

    description: dict[str, Any]
    metrics: list[dict[str, Any]]
    per_epoch: list[dict[str, Any]] = field(default_factory=list)
    invocations: dict[str, int] = field(default_factory=dict)
    handler_seconds: float = 0.0
    wall_seconds: float = 0.0
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.description["status"] == "SUCCEEDED"


def run_local(
    config: RunConfig,
    out_dir: Path | None,
    *,
    base: Path = Path(),
    on_epoch: Any = None,
    on_step: Any = None,
    account: LocalAccount | None = None,
) -> LocalRun:
    """Deploy the stack into an emulated account, train ``config``, write the outputs.

    ``on_epoch(row)`` is called per evaluated epoch; ``on_step(updates_done)`` after each
    optimizer update (the local engine can see every Lambda invocation).
    """
    with contextlib.ExitStack() as stack:
        if account is None:
            account = stack.enter_context(LocalAccount())
        resources = resources_from_stack(account.stack_name, REGION, account.endpoint_url)
        client = StepnetClient(resources, endpoint_url=account.endpoint_url)
        config = client.upload_dataset(config, base)
        started = time.perf_counter()
        client.start(config)
        stop = threading.Event()
        if on_step is not None:
            threading.Thread(
                target=_report_steps, args=(account, on_step, stop), daemon=True
            ).start()
        try:
            description = client.watch(config.run_id, on_epoch=on_epoch, poll_seconds=0.5)
        finally:
            stop.set()
        run = LocalRun(
            description=description,
            metrics=client.metrics(config.run_id),
            wall_seconds=time.perf_counter() - started,
            invocations=dict(account.runtime.invocations),
            handler_seconds=sum(account.runtime.seconds.values()),
        )
        run.histories = {
            name: account.history(arn) for name, arn in client.run_executions(config.run_id)
        }
        run.per_epoch = _per_epoch_counts(config.run_id, run.histories)
        if out_dir is not None:
            _write_histories(out_dir / "executions", run.histories)
            if run.succeeded:
                client.fetch(config.run_id, out_dir)
        return run


def _report_steps(account: LocalAccount, on_step: Any, stop: threading.Event) -> None:
    seen = -1
    while not stop.wait(0.1):
        done = sum(n for name, n in account.runtime.invocations.items() if name.endswith("-Update"))
        if done != seen:
            on_step(done)
            seen = done


def _per_epoch_counts(
    run_id: str, histories: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Transitions and Lambda invocations per epoch, over the epoch's execution and its parts."""
    totals: dict[int, dict[str, Any]] = {}
    for name, events in histories.items():
        if not name.startswith(f"{run_id}-epoch-"):
            continue
        epoch = int(name.removeprefix(f"{run_id}-epoch-")[:3])
        counts = epoch_counts(events)
        row = totals.setdefault(
            epoch,
            {
                "epoch": epoch,
                "executions": 0,
                "transitions": 0,
                "lambda_invocations": 0,
                "max_events": 0,
            },
        )
        row["executions"] += 1
        row["transitions"] += counts["transitions"]
        row["lambda_invocations"] += counts["lambda_invocations"]
        row["max_events"] = max(row["max_events"], counts["events"])
    return [totals[e] for e in sorted(totals)]


def _write_histories(folder: Path, histories: dict[str, list[dict[str, Any]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, events in histories.items():
        (folder / f"{name}.json").write_text(json.dumps(events, indent=1, default=str) + "\n")
