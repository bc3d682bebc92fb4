"""Calls the Lambda handlers in the order the workflow does, without Step Functions.

Mirrors ``statemachine/training.asl.json`` (Initialize run -> Check shards (a Map over groups of
shards) -> Prepare shards (a Map) -> Start run -> Train epoch -> More epochs? -> Export model ->
Register model -> Promote if better) and ``statemachine/epoch.asl.json`` (Plan epoch -> per step a Map over the cursor's
micro-batches whose items are built like the Map's ``ItemSelector`` -> Update weights (with the
Map's losses) -> More steps? -> at the end Evaluate shards (a Map) -> Evaluate epoch). Each
micro-batch invokes the functions of its path in ``trainer.contract.workflow`` (the handlers'
results move ``layer`` as the ASL's Choices expect; the engine tests run the real Choices). A
"Continue in a new execution" goes straight back to "Train step" with the same cursor, which is
what the continuation execution does.

Every event is a plain dict, as Step Functions delivers it; every result is passed on as-is.
With ``retry=True`` each task is invoked twice with the same event (what a Step Functions retry
after a lost response does) and both results must be equal.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from stepnet.engine.runtime import LambdaContext
from trainer.contract import workflow
from trainer.contract.functions import FUNCTIONS, in_workflow

Event = dict[str, Any]
Handler = Callable[[Event, Any], Event]


def _handler(path: str) -> Handler:
    module, function = path.rsplit(".", 1)
    handler: Handler = getattr(importlib.import_module(module), function)
    return handler


HANDLERS: dict[str, Handler] = {
    logical: _handler(spec.handler) for logical, spec in FUNCTIONS.items() if in_workflow(logical)
}


def invoke(name: str, event: Event) -> Event:
    """One Lambda invocation of the handler ``name`` with a fresh context."""
    return HANDLERS[name](event, LambdaContext(function_name=f"stepnet-{name}"))


def microbatch_task(cursor: Event, microbatch: int) -> Event:
    """One Map item, exactly as the "Train step" state's ``ItemSelector`` builds it."""
    return {
        "run_id": cursor["run_id"],
        "epoch": cursor["epoch"],
        "step": cursor["step"],
        "version": cursor["version"],
        "microbatch": microbatch,
        "layer": 1,
        "layers": cursor["layers"],
        "mode": cursor["mode"],
    }


@dataclass
class Pipeline:
    """Runs one training through the handlers and records what happened."""

    threads: int = 0  # > 0: a step's micro-batches run concurrently in this many threads
    retry: bool = False  # invoke every task twice with the same event
    calls: Counter[str] = field(default_factory=Counter)
    cursors: list[Event] = field(default_factory=list)  # every cursor Plan / Update returned
    progress: list[Event] = field(default_factory=list)  # Start's and Evaluate's results
    plans: list[Event] = field(default_factory=list)  # Initialize's results
    losses: list[float] = field(default_factory=list)  # the micro-batch losses Loss reported
    registered: Event = field(default_factory=dict)  # Register's result
    promotion: Event = field(default_factory=dict)  # Promote's result

    def task(self, name: str, event: Event) -> Event:
        self.calls[name] += 1
        result = invoke(name, event)
        if self.retry:
            again = invoke(name, event)
            assert again == result, f"a retried {name} returned {again}, first {result}"
        return result

    def microbatch(self, task: Event) -> Event:
        """One Map iteration: the functions of the micro-batch path in the workflow's order
        (``trainer.contract.workflow``, checked against the ItemProcessor)."""
        for function in workflow.microbatch_functions(task["mode"], task["layers"]):
            task = self.task(function, task)
            if function == "Loss":
                self.losses.append(task["loss"])
        return task

    def map(self, function: Callable[[Event], Event], items: list[Event]) -> list[Event]:
        """An inline Map: its iterations' results in item order."""
        if self.threads:
            with ThreadPoolExecutor(max_workers=self.threads) as pool:
                return list(pool.map(function, items))  # re-raises a failed iteration
        return [function(item) for item in items]

    def train_step(self, cursor: Event) -> Event:
        """ "Train step" (the Map) then "Update weights" (mode per_step: "Train whole step"):
        returns the next cursor."""
        if cursor["mode"] == "per_step":
            cursor = self.task("TrainStep", {"cursor": cursor})
            self.cursors.append(cursor)
            return cursor
        items = [microbatch_task(cursor, m) for m in cursor["microbatches"]]
        results = self.map(self.microbatch, items)
        cursor = self.task("Update", {"cursor": cursor, "losses": [r["loss"] for r in results]})
        self.cursors.append(cursor)
        return cursor

    def train_epoch(self, run: Event) -> Event:
        """One Epoch execution (and its continuations); returns the run's progress after it."""
        start = {"run_id": run["run_id"], "epoch": run["epoch"], "version": run["version"]}
        cursor = self.task("Plan", start)
        self.cursors.append(cursor)
        while True:
            cursor = self.train_step(cursor)
            if cursor["done"]:  # "More steps?" -> "Evaluate shards"
                break
            # chunk_full: "Continue in a new execution", which goes straight to "Train step"
        items = [
            {"run_id": cursor["run_id"], "epoch": cursor["epoch"], "version": cursor["version"],
             "group": group}
            for group in cursor["groups"]
        ]  # fmt: skip
        self.map(lambda item: self.task("EvaluateShards", item), items)
        end = {
            "run_id": cursor["run_id"], "epoch": cursor["epoch"], "version": cursor["version"],
            "loss_sum": cursor["loss_sum"],
        }  # fmt: skip
        return self.task("Evaluate", end)

    def initialize(self, config: Event, execution_name: str) -> Event:
        """Initialize run, Check shards, Prepare shards, Start run: the run's progress."""
        plan = self.task("Initialize", {"config": config, "execution_name": execution_name})
        self.plans.append(plan)
        common = {"run_id": plan["run_id"], "config": plan["config"]}
        checks = self.map(
            lambda item: self.task("CheckShards", item),
            [common | {"group": group} for group in plan["groups"]],
        )
        self.map(
            lambda item: self.task("PrepareShards", item),
            [common | {"group": group, "checks": checks} for group in plan["groups"]],
        )
        return self.task("Start", {"run_id": plan["run_id"], "checks": checks})

    def train(self, config: Event, execution_name: str) -> Event:
        """The Training execution: returns Finalize's result (the run summary); the registry's
        results are kept in ``registered`` and ``promotion``."""
        run = self.initialize(config, execution_name)
        self.progress.append(run)
        while True:
            run = self.train_epoch(run)
            self.progress.append(run)
            if run["done"]:  # "More epochs?"
                break
        summary = self.task("Finalize", {"run_id": run["run_id"], "version": run["version"]})
        # "Register model" -> "Promote if better" -> "Promoted?" (either outcome ends the run)
        request = {"run_id": summary["run_id"], "version": summary["version"]}
        self.registered = self.task("Register", request)
        request = {"pipeline": self.registered["pipeline"], "run_id": summary["run_id"]}
        self.promotion = self.task("Promote", request)
        return summary
