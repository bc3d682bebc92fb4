"""``stepnet local``: a whole training on the local engine, through the same client as on AWS."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypedDict

from stepnet.client import HistoryEvent, MetricsRow, epoch_counts
from stepnet.engine import LocalAccount
from stepnet.engine.runtime import Isolation, UsageReport
from stepnet.home.lifecycle import check_new_run, check_resumable, claim, record_failure
from stepnet.report.page import write as write_report
from stepnet.report.record import (
    EXECUTIONS_DIR,
    REPORT_HTML,
    USAGE_JSON,
    RunRecord,
    contract_memory,
)
from trainer.config import RunConfig, parse_config
from trainer.contract import names
from trainer.data.shards import DEFAULT_SHARD_MB
from trainer.executions import ResumeError
from trainer.store import RunNotFoundError
from trainer.training.cursor import parse_epoch_name
from trainer.training.divergence import DIVERGED

EpochCallback = Callable[[MetricsRow], None]
"""Called with each evaluated epoch's metrics row (``epoch``, ``train_loss``, ``val_loss``…)."""
StepCallback = Callable[[int], None]
"""Called with the number of optimizer updates the run has done so far, across epochs."""


class EpochCounts(TypedDict):
    """One epoch's executions and what they did: its Standard execution (what
    ``GetExecutionHistory`` shows, as on AWS) and its Express chunks (the engine's own
    histories; on AWS only in CloudWatch Logs)."""

    epoch: int
    executions: int  # the epoch's Standard execution (1)
    transitions: int  # in it (billed each)
    lambda_invocations: int  # in it (Plan, the evaluation)
    max_events: int  # the longest of the epoch's execution histories, chunks too, in events
    express_executions: int  # its chunks
    express_transitions: int
    express_lambda_invocations: int


@dataclass
class LocalRun:
    """What a local training produced and what it took."""

    description: dict[str, Any]  # the Training execution's describe_execution
    metrics: list[MetricsRow]
    per_epoch: list[EpochCounts] = field(default_factory=list)
    invocations: dict[str, int] = field(default_factory=dict)
    usage: dict[str, UsageReport] = field(default_factory=dict)  # per logical function name
    handler_seconds: float = 0.0
    wall_seconds: float = 0.0
    histories: dict[str, list[HistoryEvent]] = field(default_factory=dict)  # Standard ones
    express_histories: dict[str, list[HistoryEvent]] = field(default_factory=dict)  # chunks
    report: Path | None = None  # report.html, when an output folder was given
    faults: dict[str, int] = field(default_factory=dict)  # injected at random, by error type

    @property
    def every_history(self) -> dict[str, list[HistoryEvent]]:
        """The Standard executions' histories and the Express chunks'."""
        return self.histories | self.express_histories

    @property
    def succeeded(self) -> bool:
        return bool(self.description["status"] == "SUCCEEDED")

    @property
    def diverged(self) -> bool:
        """The divergence guard stopped it: it failed, and exported its last good weights."""
        return bool(self.description.get("error") == DIVERGED)


def run_local(
    config: RunConfig,
    out_dir: Path | None,
    *,
    base: Path = Path(),
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    account: LocalAccount | None = None,
    memory_mb: Mapping[str, int] | None = None,
    timeout_s: Mapping[str, int] | None = None,
    isolation: Isolation = "processes",
    shard_mb: int = DEFAULT_SHARD_MB,
    inject_faults: float = 0.0,
    home: Path | None = None,
    resume: bool = False,
    restart: bool = False,
) -> LocalRun:
    """Deploy the stack into an emulated account, train ``config``, write the outputs.

    ``on_epoch(row)`` is called per evaluated epoch; ``on_step(updates_done)`` after each
    optimizer update (the local engine can see every Lambda invocation). ``memory_mb`` and
    ``timeout_s`` size functions (by logical name) for this run, as the stack's context does
    for a deployment; they and ``isolation`` (:mod:`stepnet.engine.runtime`) need the account
    to be made here. ``inject_faults``: the share of invocations that fail at random with a
    transient error the workflow retries (``LambdaRuntime.inject_faults``). ``out_dir`` gets the
    model files
    (if the run succeeded, or diverged: then the last good weights, marked in model.json), the
    executions' histories, ``usage.json``
    (:data:`LocalRun.usage`) and ``report.html`` (:mod:`stepnet.report`), whatever the outcome.
    ``home``: keep the run in that folder (:mod:`stepnet.home`) rather than in the emulated
    account's memory (an account made here; a given account has its own, ``LocalAccount.home``);
    the run id must be new there (:func:`check_new_run`). This process is recorded as the run's
    owner, and a failed run's status is FAILED with its cause.
    ``resume``: continue the stopped run ``config.run_id`` of the account's store (with a
    home, a run no live process owns: :func:`check_resumable`) from its last
    complete weights version (``StepnetClient.resume``) instead of starting it; ``restart``:
    start that stopped run again from the beginning (one that stopped before its dataset was
    prepared, :func:`stored_dataset`, has nothing to continue).
    """
    with contextlib.ExitStack() as stack:
        if account is None:
            account = stack.enter_context(
                LocalAccount(
                    memory_mb=memory_mb, timeout_s=timeout_s, isolation=isolation, home=home
                )
            )
        elif memory_mb or timeout_s or home:
            raise ValueError("size the functions (and give the home) of an account when making it")
        if account.resources is None:
            raise RuntimeError("run_local needs an account that is entered (with LocalAccount())")
        if inject_faults:
            account.runtime.inject_faults(inject_faults)
        injected_before = Counter(account.runtime.injected)
        # a run starts with Initialize: its sandbox (and the template it is forked from) starts
        # while the dataset is uploaded
        account.runtime.prewarm(names.function_name(account.stack_name, "Initialize"))
        client = account.stepnet_client()
        home_store = account.home_store
        if home_store is not None:
            if resume or restart:
                check_resumable(home_store, config.run_id)
            else:
                check_new_run(home_store, config.run_id)
            home_store.sweep()
        if not resume:
            config = client.upload_dataset(config, base, shard_mb)
        started = time.perf_counter()
        updates = _UpdateCounter(account)  # counted from here: a shared account ran others
        recording = stack.enter_context(account.runtime.recording())
        if home_store is not None:  # before the start: a kill from now on leaves it INTERRUPTED
            claim(home_store, config.run_id)
        if resume:
            execution = client.resume(config.run_id)
        else:
            client.start(config)
            execution = config.run_id
        stop = threading.Event()
        if on_step is not None:
            threading.Thread(
                target=_report_steps, args=(updates, on_step, stop), daemon=True
            ).start()
        try:
            description = client.watch(
                config.run_id, on_epoch=on_epoch, poll_seconds=0.5, execution=execution
            )
        finally:
            stop.set()
        if home_store is not None and description["status"] != "SUCCEEDED":
            record_failure(home_store, config.run_id, description)
        run = LocalRun(
            description=description,
            metrics=client.metrics(config.run_id),
            wall_seconds=time.perf_counter() - started,
            invocations=dict(account.runtime.invocations),
            handler_seconds=sum(account.runtime.seconds.values()),
            faults=dict(Counter(account.runtime.injected) - injected_before),
        )
        physical = {f: names.function_name(account.stack_name, f) for f in account.functions}
        recorded = recording.functions(list(physical.values()))
        run.usage = {f: recorded[name].as_dict() for f, name in physical.items()}
        run.histories = {
            name: account.history(arn) for name, arn in client.run_executions(config.run_id)
        }
        run.express_histories = {
            name: account.history(arn)
            for name, arn in account.express_executions()
            if parse_epoch_name(config.run_id, name) is not None
        }
        run.per_epoch = _per_epoch_counts(config.run_id, run.histories, run.express_histories)
        if out_dir is not None:
            _write_histories(out_dir / EXECUTIONS_DIR, run.histories)
            _write_histories(out_dir / EXECUTIONS_DIR / EXPRESS_DIR, run.express_histories)
            write_usage(out_dir / USAGE_JSON, run.usage)
            if run.succeeded or run.diverged:
                client.fetch(config.run_id, out_dir)
            run.report = write_report(_record(config.run_id, run), out_dir / REPORT_HTML)
        return run


def stored_config(account: LocalAccount, run_id: str) -> RunConfig:
    """The config of run ``run_id`` as the account's store recorded it (what ``stepnet resume``
    continues); unknown there: :class:`~stepnet.client.ResumeError`, naming the run."""
    if account.resources is None:
        raise RuntimeError("stored_config needs an account that is entered")
    client = account.stepnet_client()
    try:
        return parse_config(client.store.runs.get_config_json(run_id))
    except RunNotFoundError:
        raise ResumeError(
            f"run {run_id!r} is unknown to the local engine's store: check the run id "
            "(stepnet runs lists them)"
        ) from None


def stored_dataset(account: LocalAccount, run_id: str) -> bool:
    """Whether run ``run_id`` of the account's store got as far as recording its prepared
    dataset: before that, a stopped run has nothing to continue, and starts again."""
    try:
        account.stepnet_client().store.runs.get_dataset_info(run_id)
    except RunNotFoundError:
        return False
    return True


def _record(run_id: str, run: LocalRun) -> RunRecord:
    """The report's record of a run trained here: what ``stepnet report DIR`` reads back."""
    memory = contract_memory() | {name: row["memory_mb"] for name, row in run.usage.items()}
    return RunRecord(run_id, run.histories, run.metrics, memory, run.usage)


def write_usage(path: Path, usage: Mapping[str, UsageReport]) -> None:
    """``usage.json``: per function, its sizes and the most its invocations used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(usage), indent=1) + "\n")


class _UpdateCounter:
    """Optimizer updates since construction, read off the engine's invocation counter of the
    Update function: the one signal that costs nothing. The cursor travels in the execution and
    only whole epochs get a run record; the weights versions in the tensors table would tell,
    but polling them adds store requests to the account being run (and metered)."""

    def __init__(self, account: LocalAccount) -> None:
        self._invocations = account.runtime.invocations
        self._name = names.function_name(account.stack_name, "Update")
        self._start = self._invocations[self._name]

    def done(self) -> int:
        return self._invocations[self._name] - self._start


def _report_steps(updates: _UpdateCounter, on_step: StepCallback, stop: threading.Event) -> None:
    seen = -1
    while not stop.wait(0.1):
        done = updates.done()
        if done != seen:
            on_step(done)
            seen = done


EXPRESS_DIR: Final = "express"  # under executions/: the chunks' histories (no report reads them)


def _per_epoch_counts(
    run_id: str,
    histories: dict[str, list[HistoryEvent]],
    express: dict[str, list[HistoryEvent]],
) -> list[EpochCounts]:
    """Transitions and Lambda invocations per epoch: in its Standard execution, and in its
    Express chunks."""
    totals: dict[int, EpochCounts] = {}
    for chunk, found in ((False, histories), (True, express)):
        for name, events in found.items():
            epoch = parse_epoch_name(run_id, name)
            if epoch is None:
                continue
            counts = epoch_counts(events)
            row = totals.setdefault(
                epoch,
                EpochCounts(
                    epoch=epoch, executions=0, transitions=0, lambda_invocations=0,
                    max_events=0, express_executions=0, express_transitions=0,
                    express_lambda_invocations=0,
                ),
            )  # fmt: skip
            prefix = "express_" if chunk else ""
            row[prefix + "executions"] += 1  # type: ignore[literal-required]
            row[prefix + "transitions"] += counts["transitions"]  # type: ignore[literal-required]
            row[prefix + "lambda_invocations"] += counts["lambda_invocations"]  # type: ignore[literal-required]
            row["max_events"] = max(row["max_events"], counts["events"])
    return [totals[e] for e in sorted(totals)]


def _write_histories(folder: Path, histories: dict[str, list[HistoryEvent]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, events in histories.items():
        (folder / f"{name}.json").write_text(json.dumps(events, indent=1, default=str) + "\n")
