"""The ``stepnet`` command: train on the local engine, in memory, or on a deployed stack."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from trainer.config import ConfigError, RunConfig, parse_config
from trainer.data.errors import DatasetError
from trainer.data.shards import DEFAULT_SHARD_MB
from trainer.training.memory import MemoryFitError

if TYPE_CHECKING:  # the commands import these when they run: moto is slow to import
    from stepnet.client import MetricsRow, StepnetClient
    from stepnet.engine import LocalAccount
    from stepnet.home import Home
    from stepnet.local import LocalRun
    from trainer.contract.functions import Size
    from trainer.training.memory import DatasetShape

console = Console(soft_wrap=True)  # long paths and messages stay whole


def _load_config(path: str) -> RunConfig:
    try:
        document = Path(path).read_bytes()  # parse_config tells a non-UTF-8 file
    except OSError as error:
        raise SystemExit(f"error: cannot read config {path}: {error.strerror}") from None
    try:
        return parse_config(document)
    except ConfigError as error:
        raise SystemExit(f"error: {path}: {error}") from None


def _metric_line(row: MetricsRow) -> str:
    line = f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}"
    if "val_accuracy" in row:
        line += f"  val_accuracy {row['val_accuracy']:.4f}"
    return line


def _steps_per_epoch(config: RunConfig, shard_mb: int = DEFAULT_SHARD_MB) -> int | None:
    """Optimizer steps per epoch, or None when the dataset's size cannot be told here.

    Sized from the dataset files' headers (:func:`stepnet.sources.dataset_shape`: each shard's
    rows, a large file cut as the upload cuts it), before the run starts, rather than from the
    run's dataset record once Start has written it: no polling of the store and no reading of
    its record layout in the CLI, and a bar from the first step. For any dataset the run
    accepts the number is the pipeline's own: the same ``split_blocks`` as the split and the
    same ``step_layout`` as Plan. An ``s3://`` source, or a file the run will reject anyway (it
    reports why), gets no step bar.
    """
    from stepnet.sources import dataset_shape
    from trainer.data.blocks import split_blocks
    from trainer.training.schedule import step_layout

    try:
        rows, _ = dataset_shape(config.dataset.source, shard_mb=shard_mb)
        split = split_blocks(
            rows, config.block_rows, config.dataset.validation_fraction, config.seed
        )
        return step_layout(split.n_train, config.batch_size, config.workers).n_steps
    except (DatasetError, ValueError):
        return None


def _check_memory(
    config: RunConfig,
    shard_mb: int,
    memory_mb: Mapping[str, int] | None = None,
    shape: DatasetShape | None = None,
) -> None:
    """Refuse, before anything runs, a config some function cannot run within its memory
    (``trainer.training.memory``: the formula of docs/data.md), with the contract's sizes
    unless ``memory_mb`` says otherwise. An ``s3://`` dataset without a ``shape`` is not
    checked here (CheckShards checks each shard against its own memory)."""
    from stepnet.sources import dataset_shape
    from trainer.contract.functions import FUNCTIONS
    from trainer.training import memory

    if shape is None:
        try:
            _, shape = dataset_shape(config.dataset.source, shard_mb=shard_mb)
        except DatasetError:
            return  # in S3, or a file the run will reject with its own message
    sizes = {name: spec.memory_mb for name, spec in FUNCTIONS.items()} | dict(memory_mb or {})
    memory.check(config, shape, sizes)


class _StepBar:
    """One bar for the current epoch's steps, fed the run's updates so far (``on_step``)."""

    def __init__(self, progress: Progress, steps: int, epochs: int) -> None:
        self.progress, self.steps, self.epochs = progress, steps, epochs
        self.epoch = 0  # the epoch the bar shows (from 1), 0 before the first
        self.task: TaskID | None = None

    def __call__(self, done: int) -> None:
        epoch, step = divmod(done, self.steps)
        if self.task is None or epoch + 1 != self.epoch:
            if self.task is not None:
                self.progress.remove_task(self.task)
                self.task = None
            if epoch + 1 > self.epochs:
                return
            self.epoch = epoch + 1
            self.task = self.progress.add_task(f"epoch {self.epoch} steps", total=self.steps)
        self.progress.update(self.task, completed=step)


def cmd_reference(args: argparse.Namespace) -> int:
    from stepnet.reference import prepare_dataset, train, write_outputs

    config = _load_config(args.config)
    data = prepare_dataset(config, shard_mb=args.shard_mb)
    with _progress() as progress:
        task = progress.add_task("reference", total=config.epochs)

        def on_epoch(row: MetricsRow) -> None:
            progress.console.print(_metric_line(row))
            progress.advance(task)

        trained = train(config, data, on_epoch=on_epoch)
    write_outputs(Path(args.out), trained, config.run_id)
    if trained.diverged is not None:  # as the workflow: the last good weights, and a failure
        console.print(
            f"[red]run {config.run_id} FAILED:[/] DivergenceError: {trained.diverged.message()}"
        )
        console.print(f"  the last good weights are the model: {args.out} (model.json says where)")
        return 1
    console.print(f"[green]model written to {args.out}[/]")
    return 0


def _fault_rate(text: str) -> float:
    from stepnet.engine.runtime import MAX_FAULT_RATE

    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= MAX_FAULT_RATE:
        raise argparse.ArgumentTypeError(
            f"a share of invocations from 0 to {MAX_FAULT_RATE} (e.g. 0.1), got {text!r}"
        )
    return rate


def _size_overrides(flag: str, size: Size, values: list[str]) -> dict[str, int]:
    """``NAME=AMOUNT`` flags checked by the contract's rule (the stack's context follows it too)."""
    from trainer.contract.functions import SizeOverrideError, size_overrides

    unit = "MB" if size == "memory" else "S"
    parsed: dict[str, object] = {}
    for value in values:
        name, equals, amount = (part.strip() for part in value.partition("="))
        if not equals or not name:
            raise SizeOverrideError(f"{flag}: expected NAME={unit}, got {value!r}")
        if name in parsed:
            raise SizeOverrideError(f"{flag}: {name} is given twice")
        parsed[name] = int(amount) if amount.lstrip("-").isdigit() else amount
    return size_overrides(size, parsed, source=flag)


def cmd_local(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    return _train_locally(config, args)


def cmd_resume(args: argparse.Namespace) -> int:
    """``stepnet resume RUN``: continue a stopped run from its last complete weights version
    (``StepnetClient.resume``): on the local engine by default, on a stack with ``--stack``."""
    if args.stack is not None or args.endpoint_url is not None:
        from trainer.contract.names import DEFAULT_STACK_NAME

        args.stack = args.stack or DEFAULT_STACK_NAME  # --endpoint-url alone: the default stack
        client = _client(args)
        name = client.resume(args.run_id)
        arn = client.execution_arn(name)
        console.print(f"resumed run [bold]{args.run_id}[/] in execution {name}")
        console.print(f"console:   {client.resources.console_url(arn)}")
        console.print(f"follow it: stepnet watch {args.run_id}")
        return 0
    from stepnet.engine import LocalAccount
    from stepnet.local import stored_config, stored_dataset

    memory_mb = _size_overrides("--function-memory", "memory", args.function_memory)
    timeout_s = _size_overrides("--function-timeout", "timeout", args.function_timeout)
    home = _local_home(args.store)
    with LocalAccount(
        memory_mb=memory_mb, timeout_s=timeout_s, isolation=args.isolation, home=home
    ) as local:
        config = stored_config(local, args.run_id)
        # stopped before its dataset was prepared: nothing to continue, so it starts again from
        # its recorded config (every step of its preparation is safe to repeat)
        prepared = stored_dataset(local, args.run_id)
        return _train_locally(config, args, account=local, resume=prepared)


def _train_locally(
    config: RunConfig,
    args: argparse.Namespace,
    *,
    account: LocalAccount | None = None,
    resume: bool = False,
) -> int:
    """Train ``config`` on the local engine with a live view and print the outcome; given an
    ``account`` (sized by ``args`` already), train the run its store holds: ``resume`` it from
    its last complete version, or else start it again."""
    from stepnet.local import run_local
    from stepnet.report.record import USAGE_JSON

    memory_mb = _size_overrides("--function-memory", "memory", args.function_memory)
    timeout_s = _size_overrides("--function-timeout", "timeout", args.function_timeout)
    out = Path(args.out) if args.out else Path("out") / config.run_id
    _check_memory(config, args.shard_mb, memory_mb)
    home = _local_home(args.store)
    if (
        account is None  # a new run (given an account, the stopped run of its store resumes)
        and home is not None
        and _finished_or_replaced(home, config.run_id, out, replace=args.replace)
    ):
        return 0
    steps = _steps_per_epoch(config, args.shard_mb)
    with _progress() as progress:
        epochs = progress.add_task("epochs", total=config.epochs)

        def on_epoch(row: MetricsRow) -> None:
            progress.console.print(_metric_line(row))
            progress.advance(epochs)

        on_step = None if steps is None else _StepBar(progress, steps, config.epochs)
        run = run_local(
            config,
            out,
            on_epoch=on_epoch,
            on_step=on_step,
            account=account,
            memory_mb=None if account else memory_mb,
            timeout_s=None if account else timeout_s,
            isolation=args.isolation,
            shard_mb=args.shard_mb,
            inject_faults=args.inject_faults,
            home=None if account else home,
            resume=resume,
            restart=account is not None and not resume,
        )
    _usage_table(run)
    if args.inject_faults:
        injected = ", ".join(f"{n} {error}" for error, n in sorted(run.faults.items())) or "none"
        console.print(f"faults injected at random (retried by the workflow): {injected}")
    console.print(f"usage: {out / USAGE_JSON}")
    if not run.succeeded:
        from stepnet.client import readable_cause

        cause = readable_cause(run.description)
        console.print(f"[red]run {config.run_id} {run.description['status']}:[/] {cause}")
        if run.diverged:
            console.print(
                f"  the last good weights are the model: {out / 'model.npz'} (model.json says "
                "where it diverged); a smaller learning rate may train"
            )
        for error_type, flag in _LIMITS.items():
            if cause.startswith(error_type):
                console.print(
                    f"  a Lambda over its limit fails so on AWS too; size it with {flag} "
                    "(this run) or the stack's context (a deployment, docs/deploy.md)"
                )
        console.print(f"execution histories: {out / 'executions'}")
        console.print(f"report: {run.report}")
        return 1
    _summary(config, run, out)
    return 0


STORE_VARIABLE: Final = "STEPNET_STORE"  # stepnet local's store when --store is not given
STORES: Final = ("home", "emulated")


def _local_home(store: str | None) -> Path | None:
    """The home folder ``stepnet local`` keeps its runs in, or None for the emulated store."""
    import os

    from stepnet.home import home_dir

    chosen = store or os.environ.get(STORE_VARIABLE) or "home"
    if chosen not in STORES:
        raise ConfigError(f"{STORE_VARIABLE}={chosen!r}: choose one of {', '.join(STORES)}")
    return home_dir() if chosen == "home" else None


def _finished_or_replaced(home: Path, run_id: str, out: Path, *, replace: bool) -> bool:
    """For a run id the home holds: with ``replace``, forget it (False: train it again); if it
    finished, report it and write its outputs to ``out`` again (True: nothing to train).
    Anything else is for ``run_local`` to refuse."""
    from stepnet.home import open_home
    from stepnet.home.lifecycle import check_new_run, run_state

    found = open_home(home)
    if run_id not in found.runs.list_runs():
        return False
    if replace:
        if run_state(found, run_id) == "RUNNING":
            return False  # refused by run_local: its owner is alive
        found.delete_run(run_id)
        console.print(f"replacing run {run_id} (its records and tensors in {home} are gone)")
        return False
    if run_state(found, run_id) != "SUCCEEDED":
        check_new_run(found, run_id)  # refused, naming its state and the way out
    _print_run(found, run_id)
    written = _copy_model(found, run_id, out)
    console.print(
        f"[green]run {run_id} finished already[/]; its model is in {out} "
        f"({', '.join(p.name for p in written)}). Train it again: --replace"
    )
    return True


def _copy_model(home: Home, run_id: str, out: Path) -> list[Path]:
    from stepnet.home.summary import run_details

    model = run_details(home, run_id).model
    if model is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(model.iterdir()):
        if path.is_file():
            (out / path.name).write_bytes(path.read_bytes())
            written.append(out / path.name)
    return written


def cmd_runs(args: argparse.Namespace) -> int:
    """The home's runs: a table."""
    from stepnet.home import home_dir, open_home
    from stepnet.home.summary import list_rows

    home = home_dir()
    rows = list_rows(open_home(home)) if home.is_dir() else []
    table = Table(title=f"runs in {home}")
    for column in ("run", "status", "epochs", "loss", "accuracy", "created"):
        table.add_column(
            column, justify="right" if column in ("epochs", "loss", "accuracy") else "left"
        )
    for row in rows:
        last = row.last or {}
        table.add_row(
            row.run_id, _state(row.state), f"{row.epochs_done}/{row.epochs}",
            _metric(last.get("val_loss")), _metric(last.get("val_accuracy")), row.created_at[:19].replace("T", " "),
        )  # fmt: skip
    console.print(table if rows else f"no runs in {home}")
    return 0


def _state(state: str) -> str:
    colour = {"SUCCEEDED": "green", "FAILED": "red", "INTERRUPTED": "yellow"}.get(state)
    return f"[{colour}]{state}[/]" if colour else state


def cmd_show(args: argparse.Namespace) -> int:
    """One run of the home: config, dataset, status, epochs, weights, model."""
    from stepnet.home import home_dir, open_home
    from trainer.store import RunNotFoundError

    home = home_dir()
    if not home.is_dir():
        raise RunNotFoundError(args.run_id)
    _print_run(open_home(home), args.run_id)
    return 0


def _print_run(home: Home, run_id: str) -> None:
    from stepnet.home.summary import run_details

    details = run_details(home, run_id)
    config, row = details.config, details.row
    layers = " → ".join(
        f"{layer.get('units')} {layer.get('activation')}"
        for layer in config.get("model", {}).get("layers", [])
    )
    optimizer = config.get("optimizer", {})
    facts = Table(title=f"run {run_id}", show_header=False)
    facts.add_column(justify="left", no_wrap=True)
    facts.add_column(justify="left", overflow="fold")
    facts.add_row("status", _state(row.state))
    status = details.status or {}
    if "cause" in status:
        facts.add_row("cause", f"[red]{status['cause']}[/]")
    facts.add_row("created", row.created_at)
    if status:
        facts.add_row("updated", str(status.get("updated_at")))
    if details.owner:
        owner = details.owner
        facts.add_row("process", f"{owner['pid']} on {owner['host']} (since {owner['started_at']})")
    facts.add_row("dataset", str(config.get("dataset", {}).get("source")))
    if details.dataset:
        d = details.dataset
        facts.add_row(
            "rows",
            f"{d.get('n')} ({d.get('n_train')} training, {d.get('n_val')} validation), "
            f"{d.get('n_features')} features, {d.get('n_outputs')} outputs, {d.get('shards')} shards",
        )
    facts.add_row("model", f"{layers}; loss {config.get('loss')}")
    facts.add_row(
        "training",
        f"{config.get('epochs')} epochs, batch {config.get('batch_size')}, "
        f"{config.get('workers')} workers, {optimizer.get('name')} "
        f"lr {optimizer.get('learning_rate')}, seed {config.get('seed')}",
    )
    facts.add_row("epochs done", f"{row.epochs_done}/{row.epochs}")
    version = details.latest_version
    facts.add_row("latest weights", "none" if version is None else f"version {version}")
    facts.add_row("exported model", str(details.model) if details.model else "none")
    console.print(facts)
    if details.metrics:
        table = Table(title="per epoch")
        names = [n for n in ("train_loss", "val_loss", "val_accuracy", "version")
                 if any(n in m for m in details.metrics)]  # fmt: skip
        for column in ("epoch", *names):
            table.add_column(column, justify="right")
        for metrics in details.metrics:
            values = [str(metrics.get(n, "-")) if n == "version" else _metric(metrics.get(n))
                      for n in names]  # fmt: skip
            table.add_row(str(metrics["epoch"]), *values)
        console.print(table)


# what a run failed of -> the flag that sizes the function
_LIMITS: Final = {
    "Runtime.OutOfMemory": "--function-memory NAME=MB",
    "Sandbox.Timedout": "--function-timeout NAME=S",
}


def _usage_table(run: LocalRun) -> None:
    """Per function: its sizes and the most its invocations used (``usage.json``)."""
    table = Table(title="per function: sizes and the most one invocation used")
    for column in ("function", "invocations", "memory MB", "max memory used MB", "timeout s",
                   "max duration s"):  # fmt: skip
        table.add_column(column, justify="left" if column == "function" else "right")
    for function, usage in run.usage.items():
        used, duration = usage["max_memory_used_mb"], usage["max_duration_s"]
        over_memory = used is not None and used > usage["memory_mb"]
        over_time = duration is not None and duration >= usage["timeout_s"]
        table.add_row(
            function,
            str(usage["invocations"]),
            str(usage["memory_mb"]),
            _flagged("-" if used is None else str(used), over_memory),
            str(usage["timeout_s"]),
            _flagged("-" if duration is None else f"{duration:.2f}", over_time),
        )
    console.print(table)


def _flagged(text: str, over: bool) -> str:
    return f"[bold red]{text}[/]" if over else text


def _summary(config: RunConfig, run: LocalRun, out: Path) -> None:
    table = Table(title=f"run {config.run_id}: per epoch")
    for column in (
        "epoch",
        "Express chunks",
        "state transitions (Standard / Express)",
        "Lambda invocations",
        "largest history",
    ):
        table.add_column(column, justify="right")
    for row in run.per_epoch:
        table.add_row(
            str(row["epoch"]), str(row["express_executions"]),
            f"{row['transitions']} / {row['express_transitions']}",
            str(row["lambda_invocations"] + row["express_lambda_invocations"]),
            str(row["max_events"]),
        )  # fmt: skip
    console.print(table)
    tasks = sum(run.invocations.values())
    console.print(_metric_line(run.metrics[-1]) if run.metrics else "no epochs")
    console.print(
        f"{tasks} Lambda tasks in {run.wall_seconds:.1f} s "
        f"({1000 * run.wall_seconds / max(tasks, 1):.1f} ms per task; handlers busy "
        f"{1000 * run.handler_seconds / max(tasks, 1):.1f} ms per task, summed over parallel tasks)"
    )
    console.print(
        f"[green]outputs in {out}[/] (model.npz, model.json, metrics.json, executions/, "
        "report.html)"
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )  # fmt: skip


def _client(args: argparse.Namespace) -> StepnetClient:
    from stepnet.client import StepnetClient, resources_from_stack

    resources = resources_from_stack(args.stack, args.region, args.endpoint_url)
    return StepnetClient(resources, endpoint_url=args.endpoint_url)


def cmd_start(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    _check_memory(config, args.shard_mb)  # the contract's sizes: a stack's own may be larger
    client = _client(args)
    config = client.upload_dataset(config, shard_mb=args.shard_mb)
    arn = client.start(config)
    console.print(f"started run [bold]{config.run_id}[/]")
    console.print(f"execution: {arn}")
    console.print(f"console:   {client.resources.console_url(arn)}")
    console.print(f"follow it: stepnet watch {config.run_id}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """``stepnet watch RUN``: live progress until the run ends (:mod:`stepnet.watch`)."""
    from stepnet.watch import Snapshot, follow

    client = _client(args)
    printed = 0

    def on_snapshot(snap: Snapshot) -> None:  # a line per evaluated epoch, kept above the view
        nonlocal printed
        for row in snap.metrics[printed:]:
            console.print(_metric_line(row))
        printed = len(snap.metrics)

    last = follow(client, args.run_id, console, poll_seconds=args.poll, on_snapshot=on_snapshot)
    for epoch in client.epoch_executions(args.run_id):
        console.print(f"  {epoch.name}: {epoch.status}")
    if last.status != "SUCCEEDED":
        console.print(f"[red]run {args.run_id} {last.status}:[/] {last.cause or ''}")
        console.print(f"what it did: stepnet report {args.run_id}")
        return 1
    console.print(
        f"[green]run {args.run_id} SUCCEEDED[/]: stepnet fetch {args.run_id} --out DIR; "
        f"stepnet report {args.run_id}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``stepnet report RUN_OR_DIR``: the run's page (:mod:`stepnet.report`), from the folder
    ``stepnet local`` wrote, or from the account the run ran in."""
    from stepnet.report import page, record

    folder = Path(args.run_or_dir)
    try:
        if folder.is_dir():
            found = record.from_dir(folder)
            default = folder / record.REPORT_HTML
        else:
            found = record.from_client(_client(args), args.run_or_dir)
            default = Path("out") / args.run_or_dir / record.REPORT_HTML
    except record.ReportError as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    path = page.write(found, Path(args.out) if args.out else default)
    console.print(f"[green]report written to {path}[/] (run {found.run_id}, {found.status})")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    for path in _client(args).fetch(args.run_id, Path(args.out)):
        console.print(f"wrote {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from inference.errors import ModelError
    from stepnet.predict import (
        check_source,
        is_model_dir,
        model_from_run,
        predict_file,
        write_predictions,
    )

    check_source(args.model)
    if is_model_dir(args.model):
        from inference.model import Model

        model = Model.from_dir(Path(args.model).expanduser())
    else:
        from trainer.store.objects import ObjectNotFoundError

        try:
            model = model_from_run(_client(args), args.model)
        except ObjectNotFoundError as error:
            raise ModelError(
                f"run {args.model} has no exported model ({error}); is it finished?"
            ) from None
    prediction = predict_file(model, Path(args.input))
    out = write_predictions(prediction, Path(args.out))
    console.print(
        f"[green]{prediction.n_rows} predictions written to {out}[/] "
        f"(model of run {model.run_id}, version {model.version})"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import threading

    from stepnet.engine import LocalAccount
    from stepnet.engine.api import LocalApi

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    api_port = args.port + 1 if args.api_port is None else args.api_port
    with (
        LocalAccount(stack_name=args.stack, port=args.port) as account,
        LocalApi(account.runtime, stack_name=args.stack, port=api_port) as api,
    ):
        assert account.resources is not None
        console.print(
            f"local account at {account.endpoint_url} (stack {args.stack!r}, region us-east-1)"
        )
        console.print(f"training state machine: {account.resources.training_arn}")
        console.print(
            f"try: aws --endpoint-url {account.endpoint_url} stepfunctions start-execution "
            f"--state-machine-arn {account.resources.training_arn} --name digits-demo "
            "--input file://examples/digits.json"
        )
        _print_api(api.url, account.resources.bucket)
        console.print("Ctrl-C stops it", style="dim")
        threading.Event().wait(args.seconds)
    return 0


def _metric(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def cmd_models(args: argparse.Namespace) -> int:
    """``stepnet models [PIPELINE]``: the registry's pipelines, or one pipeline's models."""
    client = _client(args)
    if args.pipeline is None:
        _print_pipelines(client)
    else:
        _print_pipeline(client, args.pipeline, history=args.history)
    return 0


def _print_pipelines(client: StepnetClient) -> None:
    names = client.pipelines()
    if not names:
        console.print(
            "no pipeline has a registered model yet (a run registers its model when it ends)"
        )
        return
    table = Table(title="pipelines")
    for column in ("pipeline", "models", "production", "version", "since"):
        table.add_column(column)
    for name in names:
        view = client.pipeline(name)
        served = view.production
        table.add_row(
            name, str(len(view.models)), served.run_id if served else "-",
            str(served.version) if served else "-", served.since if served else "-",
        )  # fmt: skip
    console.print(table)
    console.print("one pipeline's models: stepnet models PIPELINE")


def _print_pipeline(client: StepnetClient, name: str, *, history: int) -> None:
    view = client.pipeline(name)
    served = view.production
    table = Table(title=f"pipeline {name}: model versions, oldest first")
    for column in ("run", "version", "registered", "val_loss", "val_accuracy", "status"):
        table.add_column(column)
    for model in view.models:
        decision = view.decisions.get(model.run_id)
        if served is not None and served.run_id == model.run_id:
            status = "[green]production[/]"
        elif decision is None:
            status = "-"
        elif decision.promoted:
            status = "was promoted"
        else:
            status = "not promoted"
        table.add_row(
            model.run_id, str(model.version), model.created_at,
            _metric(model.metrics.get("val_loss")), _metric(model.metrics.get("val_accuracy")),
            status,
        )  # fmt: skip
    console.print(table)
    for model in view.models:
        decision = view.decisions.get(model.run_id)
        if decision is not None:
            outcome = "promoted" if decision.promoted else "not promoted"
            console.print(f"  {model.run_id} {outcome} ({decision.decided_at}): {decision.reason}")
    if served is None:
        console.print(f"pipeline {name} serves nothing: stepnet promote RUN")
        return
    console.print(
        f"production: run [bold]{served.run_id}[/] (version {served.version}), since "
        f"{served.since} ({served.action}): {served.reason}"
    )
    for entry in served.history[-history:]:
        previous = entry.previous["run_id"] if entry.previous else "nothing"
        console.print(
            f"  {entry.at}  {entry.action:<8} {entry.run_id} (replacing {previous}): {entry.reason}"
        )


def cmd_promote(args: argparse.Namespace) -> int:
    """``stepnet promote RUN``: the run's model becomes its pipeline's production model."""
    served = _client(args).promote(args.run_id, args.reason or "")
    console.print(
        f"[green]pipeline {served.pipeline} serves run {served.run_id}[/] (version "
        f"{served.version}); rollback: stepnet rollback {served.pipeline}"
    )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """``stepnet rollback PIPELINE``: serve again the model the current one replaced."""
    served = _client(args).rollback(args.pipeline, args.reason or "")
    console.print(
        f"[green]pipeline {served.pipeline} serves run {served.run_id} again[/] (version "
        f"{served.version}): {served.reason}"
    )
    return 0


def _print_api(url: str, bucket: str) -> None:
    console.print(f"API at {url} (requests must be SigV4-signed, as on AWS; any credentials do)")
    sign = '--aws-sigv4 "aws:amz:us-east-1:execute-api" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"'
    console.print(
        f"try: curl {sign} -H 'Content-Type: application/json' -d @examples/digits.json {url}runs"
    )
    console.print(f"     curl {sign} {url}runs/digits-demo")
    console.print(f"batch predictions: aws s3 cp rows.csv s3://{bucket}/inference/<pipeline>/in/")


def cmd_cost(args: argparse.Namespace) -> int:
    from stepnet.billing.estimate import EstimateError, ways_to_run
    from stepnet.billing.report import format_estimate

    config = _load_config(args.config)
    shape = None
    if args.n_train is not None and args.n_features is not None:
        shape = _assumed_shape(config, args.n_train, args.n_features)
    _check_memory(config, args.shard_mb, shape=shape)
    try:
        result = ways_to_run(config, args.n_train, n_features=args.n_features)
    except EstimateError as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    if args.json:
        print(json.dumps(result.as_dict(), indent=1))
    else:
        print(format_estimate(result))
    return 0


def _assumed_shape(config: RunConfig, n_train: int, n_features: int) -> DatasetShape:
    """A dataset of ``n_train`` training rows of float32 features, in shards of the default
    size (for the memory check of an ``s3://`` dataset whose counts were given)."""
    from stepnet.sources import shard_bytes
    from trainer.training.memory import DatasetShape

    rows = math.ceil(n_train / (1 - config.dataset.validation_fraction))
    row_bytes = 4 * n_features + 8
    largest = min(rows * row_bytes, shard_bytes(DEFAULT_SHARD_MB))
    return DatasetShape(
        rows=rows, n_features=n_features, row_bytes=row_bytes, x_itemsize=4,
        shards=math.ceil(rows * row_bytes / largest), largest_shard_bytes=largest,
    )  # fmt: skip


def _shard_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard-mb",
        type=int,
        default=DEFAULT_SHARD_MB,
        help=f"cut a local dataset file larger than this into shards of this size, MiB "
        f"(default {DEFAULT_SHARD_MB}); a folder's shards are used as they are",
    )


def _stack_options(parser: argparse.ArgumentParser) -> None:
    from trainer.contract.names import DEFAULT_STACK_NAME

    parser.add_argument("--stack", default=DEFAULT_STACK_NAME, help="the CloudFormation stack")
    parser.add_argument("--region", default=None, help="AWS region (default: your profile's)")
    parser.add_argument(
        "--endpoint-url", default=None, help="e.g. http://127.0.0.1:5000 (stepnet serve)"
    )


def _engine_options(parser: argparse.ArgumentParser) -> None:
    """The local engine's options (``stepnet local``, ``stepnet resume``)."""
    parser.add_argument(
        "--function-memory", action="append", default=[], metavar="NAME=MB",
        help="size a function's memory for this run, like the stack's memory context (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--function-timeout", action="append", default=[], metavar="NAME=S",
        help="size a function's timeout for this run, like the stack's timeout context (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--isolation", choices=("processes", "threads"), default="processes",
        help="processes (default): each function in worker processes held to its memory and "
        "timeout, as on Lambda; threads: the handlers in this process, faster, nothing enforced",
    )  # fmt: skip
    parser.add_argument(
        "--inject-faults", type=_fault_rate, default=0.0, metavar="RATE",
        help="fail this share of Lambda invocations at random with transient errors (Lambda "
        "service errors, lost responses) that the workflow must retry: the weights stay the same",
    )  # fmt: skip
    parser.add_argument(
        "--store", choices=STORES, default=None,
        help=f"home (default; or ${STORE_VARIABLE}): runs kept in ./.stepnet/ ($STEPNET_HOME), "
        "to inspect (stepnet runs, stepnet show) and resume after; emulated: in the emulated "
        "account's DynamoDB and S3, gone when the command ends",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from trainer.contract.names import DEFAULT_STACK_NAME

    parser = argparse.ArgumentParser(prog="stepnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reference", help="train in memory, single process (no AWS)")
    p.add_argument("config")
    p.add_argument("--out", required=True, help="folder for model.npz, model.json, metrics.json")
    _shard_option(p)
    p.set_defaults(func=cmd_reference)

    p = sub.add_parser("local", help="train on the local engine: the real workflow, no AWS")
    p.add_argument("config")
    p.add_argument("--out", help="output folder (default out/<run_id>)")
    _shard_option(p)
    _engine_options(p)
    p.add_argument(
        "--replace", action="store_true",
        help="a run id the home holds already: forget that run and train it again",
    )  # fmt: skip
    p.set_defaults(func=cmd_local)

    p = sub.add_parser("runs", help="the local runs kept in the home (./.stepnet/, $STEPNET_HOME)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="one local run of the home: config, status, epochs, model")
    p.add_argument("run_id")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "resume", help="continue a stopped run from its last complete step (local, or a stack)"
    )
    p.add_argument("run_id")
    p.add_argument("--out", help="output folder, as stepnet local's (default out/<run_id>)")
    _shard_option(p)
    _engine_options(p)
    p.add_argument(
        "--stack",
        default=None,
        help="resume a run of this deployed stack instead (with --endpoint-url alone: "
        f"{DEFAULT_STACK_NAME})",
    )
    p.add_argument("--region", default=None, help="AWS region (default: your profile's)")
    p.add_argument(
        "--endpoint-url", default=None, help="e.g. http://127.0.0.1:5000 (stepnet serve)"
    )
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("cost", help="what an epoch and a run would cost on AWS, before deploying")
    p.add_argument("config")
    p.add_argument("--n-train", type=int, default=None, help="training examples (s3:// datasets)")
    p.add_argument("--n-features", type=int, default=None, help="input features (s3:// datasets)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    _shard_option(p)
    p.set_defaults(func=cmd_cost)

    p = sub.add_parser("start", help="start a run on a deployed stack")
    p.add_argument("config")
    _shard_option(p)
    _stack_options(p)
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("watch", help="follow a run live until it ends: epochs, steps, losses")
    p.add_argument("run_id")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between checks")
    _stack_options(p)
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("report", help="write a run's report: one self-contained HTML page")
    p.add_argument("run_or_dir", help="a folder `stepnet local --out` wrote, or a run id")
    p.add_argument("--out", help="the HTML file (default: DIR/report.html, or out/RUN/report.html)")
    _stack_options(p)  # for a run id
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("fetch", help="download a run's model.npz, model.json, metrics.json")
    p.add_argument("run_id")
    p.add_argument("--out", required=True)
    _stack_options(p)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("predict", help="predict the rows of a .csv or .npz file with a model")
    p.add_argument("model", help="a folder with model.npz and model.json, or a run id")
    p.add_argument("input", help=".csv (a header of feature columns, then rows) or .npz (X)")
    p.add_argument("--out", required=True, help="the predictions CSV to write")
    _stack_options(p)  # for a run id
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("models", help="the model registry: pipelines, or one pipeline's models")
    p.add_argument("pipeline", nargs="?", help="a pipeline (default: list the pipelines)")
    p.add_argument("--history", type=int, default=10, help="production changes to show")
    _stack_options(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("promote", help="make a finished run's model its pipeline's production")
    p.add_argument("run_id")
    p.add_argument("--reason", help="why (recorded in the pipeline's history)")
    _stack_options(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="serve again the model the production one replaced")
    p.add_argument("pipeline")
    p.add_argument("--reason", help="why (recorded in the pipeline's history)")
    _stack_options(p)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("serve", help="keep an emulated account running for AWS clients")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument(
        "--api-port", type=int, default=None, help="the HTTP API's port (default: PORT + 1)"
    )
    p.add_argument("--stack", default="stepnet")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    from inference.errors import InputError, ModelError
    from stepnet.home.lifecycle import RunInHomeError
    from trainer.contract.functions import SizeOverrideError
    from trainer.executions import ExecutionExistsError, ResumeError
    from trainer.registry.records import RegistryError
    from trainer.store import RunNotFoundError

    # what a command refuses: one line, exit status 2 (stepnet cost's EstimateError is caught
    # there: its module costs 40 ms to import, which no other command should pay)
    refusals = (
        DatasetError, ConfigError, MemoryFitError, SizeOverrideError, ExecutionExistsError,
        InputError, ModelError, RegistryError, RunNotFoundError, ResumeError, RunInHomeError,
    )  # fmt: skip
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except refusals as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
