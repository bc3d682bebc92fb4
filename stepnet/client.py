"""The client of a deployed stepnet stack: start a run, watch it, fetch its outputs; list the
model registry's pipelines, promote a run, roll a pipeline back.

One code path, two accounts: ``stepnet start/watch/fetch`` use it against AWS (resources from the
stack's CloudFormation outputs) and ``stepnet local`` against the local engine's emulated account.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import boto3

from stepnet import sources
from trainer import dal
from trainer.config import RunConfig
from trainer.contract import names
from trainer.data.shards import DEFAULT_SHARD_MB
from trainer.executions import Executions, ResumeError, console_url, readable_cause
from trainer.registry import service
from trainer.registry.records import Production
from trainer.registry.service import PipelineView
from trainer.store import RunNotFoundError, Store
from trainer.store.runs import SUCCEEDED
from trainer.training import exports
from trainer.training.cursor import parse_epoch_name, resume_name

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


HistoryEvent = dict[str, Any]
"""One event of ``get_execution_history`` as boto3 returns it (``type``, ``timestamp``, …)."""
MetricsRow = dict[str, Any]
"""One epoch's row of ``metrics.json`` (``trainer.training.exports.epoch_metrics``)."""


class HistoryCounts(TypedDict):
    """What one execution's history did."""

    transitions: int  # states entered
    lambda_invocations: int  # Lambda tasks scheduled
    events: int  # the history's length


@dataclass(frozen=True)
class StackResources:
    """What a stack's outputs tell a client: where to start runs and find their data."""

    stack_name: str
    region: str
    training_arn: str
    bucket: str
    runs_table: str
    tensors_table: str

    @property
    def epoch_arn(self) -> str:
        """The Epoch machine's ARN, named like the Training machine's (same stack prefix)."""
        training = names.state_machine_name(self.stack_name, "Training")
        epoch = names.state_machine_name(self.stack_name, "Epoch")
        return self.training_arn.removesuffix(training) + epoch

    def console_url(self, execution_arn: str) -> str:
        return console_url(execution_arn)


def resources_from_stack(
    stack_name: str, region: str | None = None, endpoint_url: str | None = None
) -> StackResources:
    """Read the stack's outputs (``cdk deploy`` printed them too)."""
    cloudformation = boto3.client("cloudformation", region_name=region, endpoint_url=endpoint_url)
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [key for key in names.STACK_OUTPUTS.values() if key not in outputs]
    if missing:
        raise RuntimeError(f"stack {stack_name} has no outputs {missing}; is it a stepnet stack?")
    keys = names.STACK_OUTPUTS
    return StackResources(
        stack_name=stack_name,
        region=cloudformation.meta.region_name,
        training_arn=outputs[keys["training_arn"]],
        bucket=outputs[keys["bucket"]],
        runs_table=outputs[keys["runs_table"]],
        tensors_table=outputs[keys["tensors_table"]],
    )


@dataclass(frozen=True)
class EpochExecution:
    epoch: int
    name: str
    arn: str
    status: str


class StepnetClient:
    """Starts and follows runs on one stack, through boto3."""

    def __init__(
        self,
        resources: StackResources,
        endpoint_url: str | None = None,
        *,
        store: Store | None = None,
    ) -> None:
        """``store``: where the runs' data is, if not in the account's DynamoDB and S3 (the
        local engine's home, ``stepnet.home``)."""
        self.resources = resources
        kwargs: dict[str, str] = {"region_name": resources.region}
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        self.sfn = boto3.client("stepfunctions", **kwargs)
        self.lambda_ = boto3.client("lambda", **kwargs)
        self.store = store or Store.from_clients(
            boto3.client("dynamodb", **kwargs),
            boto3.client("s3", **kwargs),
            runs_table=resources.runs_table,
            tensors_table=resources.tensors_table,
            bucket=resources.bucket,
        )

    # --- start -----------------------------------------------------------------------------

    def upload_dataset(
        self, config: RunConfig, base: Path = Path(), shard_mb: int = DEFAULT_SHARD_MB
    ) -> RunConfig:
        """A config whose dataset the functions can read. A local folder's shards go to the
        bucket as they are (:func:`stepnet.sources.folder_prefix`); a local file larger than
        ``shard_mb`` MiB is shuffled once and cut into shards of that size
        (:func:`stepnet.sources.file_shards`, under :func:`stepnet.sources.sharded_prefix`); a
        smaller file goes as it is (:func:`stepnet.sources.upload_key`). Keys follow the
        contents, so re-uploads are idempotent."""
        plan = sources.upload_plan(config.dataset.source, config.dataset.label, base, shard_mb)
        if plan is None:
            return config
        for key, data in plan.objects():
            self.store.objects.put_bytes(key, data)
        update: dict[str, Any] = {"source": self.store.objects.uri(plan.key)}
        if not plan.csv_label:
            update["label"] = None  # the shards are .npz files
        dataset = config.dataset.model_copy(update=update)
        return config.model_copy(update={"dataset": dataset})

    @property
    def executions(self) -> Executions:
        """The stack's Training executions (``trainer.executions``), through this client."""
        return Executions(self.sfn, training_arn=self.resources.training_arn)

    def start(self, config: RunConfig) -> str:
        """Start the Training execution named after the run; returns its ARN. A run of that id
        that exists already is refused (:class:`~trainer.executions.ExecutionExistsError`)."""
        return self.executions.start(config.run_id, config.to_json(), retry_of_running=False).arn

    def resume(self, run_id: str) -> str:
        """Continue a stopped run (failed, or whose process died) from its last complete
        weights version, in a new Training execution (``Executions.resume``); returns that
        execution's name. Refused, naming why, for a run that is unknown, has not finished
        its preparation (start it again: every step of it is safe to repeat), still runs, or
        succeeded."""
        try:
            status = self.store.runs.get_status(run_id)
            self.store.runs.get_dataset_info(run_id)
        except RunNotFoundError:
            raise ResumeError(
                f"run {run_id!r} has no status: it is unknown here, or it stopped before its "
                "dataset was prepared, with nothing to continue; start it again (on a stack, "
                "under another run_id: execution names stay taken for 90 days)"
            ) from None
        if status["status"] == SUCCEEDED:
            raise ResumeError(
                f"run {run_id!r} has finished (SUCCEEDED): nothing to resume; its model is at "
                f"{status.get('model_uri', '?')}"
            )
        attempts = self.executions.attempts(run_id)
        running = [e.run_id for _, e in attempts if e.status == "RUNNING"]
        if running:
            raise ResumeError(
                f"run {run_id!r} is running (execution {running[-1]}): follow it with "
                f"stepnet watch {run_id}, or stop that execution before resuming"
            )
        attempt = 1 + max([int(status.get("attempt", 0)), *(a for a, _ in attempts)])
        return self.executions.resume(run_id, attempt).run_id

    # --- follow ----------------------------------------------------------------------------

    def execution_arn(self, run_id: str) -> str:
        """The Training execution of a run (the execution is named after the run)."""
        base = self.resources.training_arn.replace(":stateMachine:", ":execution:")
        return f"{base}:{run_id}"

    def describe(self, run_id: str, execution: str | None = None) -> dict[str, Any]:
        """The run's Training ``execution`` (by name), by default its latest
        (:meth:`latest_execution`)."""
        name = execution or self.latest_execution(run_id)
        return dict(self.sfn.describe_execution(executionArn=self.execution_arn(name)))

    def latest_execution(self, run_id: str) -> str:
        """The name of the run's latest Training execution: its first, named ``run_id``, or
        its latest resume — the one its status names, or the next, which starts before its
        first state records it."""
        try:
            attempt = int(self.store.runs.get_status(run_id).get("attempt", 0))
        except RunNotFoundError:
            attempt = 0
        following = resume_name(run_id, attempt + 1)
        try:
            self.sfn.describe_execution(executionArn=self.execution_arn(following))
        except self.sfn.exceptions.ExecutionDoesNotExist:
            return resume_name(run_id, attempt) if attempt else run_id
        return following

    def epoch_executions(self, run_id: str) -> list[EpochExecution]:
        """The run's epoch executions (the Standard ones; their Express chunks have no history
        in Step Functions: ``GetExecutionHistory`` and ``DescribeExecution`` refuse them), in
        order."""
        found = []
        for page in self.sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.resources.epoch_arn
        ):
            for execution in page["executions"]:
                name = execution["name"]
                epoch = parse_epoch_name(run_id, name)
                if epoch is not None:
                    found.append(
                        EpochExecution(epoch, name, execution["executionArn"], execution["status"])
                    )
        return sorted(found, key=lambda e: e.name)

    def metrics(self, run_id: str) -> list[MetricsRow]:
        """The run's evaluated epochs so far, in order."""
        return self.store.runs.list_epoch_metrics(run_id)

    def watch(
        self,
        run_id: str,
        on_epoch: Callable[[MetricsRow], None] | None = None,
        poll_seconds: float = 1.0,
        timeout_seconds: float | None = None,
        execution: str | None = None,
    ) -> dict[str, Any]:
        """Wait for the run to end, calling ``on_epoch`` once per evaluated epoch, in order.

        Returns the final description of its Training ``execution`` (by name; the run's first,
        named ``run_id``, by default).
        """
        seen = 0
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        while True:
            description = self.describe(run_id, execution)
            rows = self.metrics(run_id)
            for row in rows[seen:]:
                if on_epoch is not None:
                    on_epoch(row)
            seen = len(rows)
            if description["status"] in TERMINAL:
                return description
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still running after {timeout_seconds} s")
            time.sleep(poll_seconds)

    # --- outputs ---------------------------------------------------------------------------

    def fetch(self, run_id: str, out_dir: Path) -> list[Path]:
        """Download ``model.npz``, ``model.json`` and ``metrics.json`` into ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"{names.S3_RUNS_PREFIX}{run_id}/model/"
        written = []
        for name in (exports.MODEL_NPZ, exports.MODEL_JSON, exports.METRICS_JSON):
            data = self.store.objects.get_bytes(self.store.objects.uri(prefix + name))
            (out_dir / name).write_bytes(data)
            written.append(out_dir / name)
        return written

    # --- the model registry (trainer.registry, on this client's store) ----------------------

    def pipelines(self) -> list[str]:
        """Every pipeline with a registered model."""
        return dal.pipelines(self.store)

    def pipeline(self, name: str) -> PipelineView:
        """A pipeline's model versions, decisions and production (RegistryError if none)."""
        return service.pipeline_view(self.store, name)

    def promote(self, run_id: str, reason: str = "") -> Production:
        """Make the run's registered model its pipeline's production model."""
        return service.promote(self.store, run_id, reason)

    def rollback(self, pipeline: str, reason: str = "") -> Production:
        """Serve again the model the pipeline's production model replaced."""
        return service.rollback(self.store, pipeline, reason)

    def history(self, execution_arn: str, *, newest: int | None = None) -> list[HistoryEvent]:
        """An execution's history, oldest first; with ``newest`` (at most 1,000) only its
        newest events, in one request read newest first. Sorted by event id either way: the
        emulator (moto 5.2) ignores ``reverseOrder`` and ``maxResults`` and answers the whole
        history, oldest first."""
        if newest is not None:
            page = self.sfn.get_execution_history(
                executionArn=execution_arn, reverseOrder=True, maxResults=newest
            )
            tail = sorted((dict(event) for event in page["events"]), key=lambda e: e["id"])
            return tail[-newest:]
        events: list[HistoryEvent] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution_arn
        ):
            events.extend(dict(event) for event in page["events"])
        return events

    def function_memory(self, logical_names: list[str]) -> dict[str, int]:
        """The deployed memory size, MB, of each of the stack's functions that exists."""
        sizes = {}
        for logical in logical_names:
            name = names.function_name(self.resources.stack_name, logical)
            try:
                configuration = self.lambda_.get_function_configuration(FunctionName=name)
            except self.lambda_.exceptions.ResourceNotFoundException:
                continue
            sizes[logical] = int(configuration["MemorySize"])
        return sizes

    def run_executions(self, run_id: str) -> Iterator[tuple[str, str]]:
        """(name, arn) of the run's Training executions (its first and its resumes) and every
        epoch execution of the run."""
        for _, execution in self.executions.attempts(run_id):
            yield execution.run_id, execution.arn
        for epoch in self.epoch_executions(run_id):
            yield epoch.name, epoch.arn


def epoch_counts(events: list[HistoryEvent]) -> HistoryCounts:
    """State transitions, Lambda invocations and events of one execution's history."""
    transitions = sum(1 for e in events if e["type"].endswith("StateEntered"))
    invocations = sum(
        1
        for e in events
        if e["type"] == "TaskScheduled"
        and e.get("taskScheduledEventDetails", {}).get("resourceType") == "lambda"
    )
    return HistoryCounts(
        transitions=transitions, lambda_invocations=invocations, events=len(events)
    )


__all__ = [
    "HistoryCounts",
    "HistoryEvent",
    "MetricsRow",
    "StackResources",
    "StepnetClient",
    "epoch_counts",
    "readable_cause",
]
