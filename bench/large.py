"""``python -m bench.large``: data larger than any Lambda, on the local engine.

Two workloads, fused, one epoch, every function at its deployed size (``trainer.contract``):

* ``large``: 1,000,000 × 784 float32 Gaussian blobs (3.1 GB) in uncompressed ``.npz`` shards
  of 64 MiB (read in place by byte ranges),
  784-256-128-10, batch 128 × 4 workers, 10% held out, ``evaluation.train_loss: running``;
* ``mnist``: the MNIST-sized workload of ``make bench`` (70,000 × 784, 1/7 held out) as one file
  the CLI cuts, ``train_loss: final``.

For each: the dataset is written shard by shard (never whole in memory), ``stepnet reference``
trains it in its own process, and the local engine trains it in another
(``python -m bench.large --engine``), while this process samples that process tree's resident
memory (the sum of every process's RSS, and of its PSS, which counts pages the forked sandboxes
share once). The engine process counts every AWS API call its sandboxes make (before the
account's remembered answers: each would reach S3 or DynamoDB on AWS) by function, operation and
what the object is (dataset or tensor). Targets: the run completes; every function's *Max
Memory Used* ≤ 80% of its memory; the tree's peak RSS ≤ 4 GB; S3 dataset bytes read per epoch
≤ 1.2 × the dataset; weights equal the reference's.

Writes ``docs/benchmarks/large.json`` and the section of ``docs/benchmarks.md`` between
:data:`BEGIN` and :data:`END` (``python -m bench`` keeps it). ``--rows`` shrinks ``large`` for a
smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import numpy as np

from bench import sections
from bench.workloads import MNIST_SIZED
from stepnet.datasets import write_npz
from stepnet.engine.service import object_address
from trainer.contract import names, workflow
from trainer.data.shards import DEFAULT_SHARD_MB, encode_shard

SECTION: Final = "bench.large"
BEGIN, END = sections.markers(SECTION)
MB: Final = 2**20
TREE_RSS_TARGET_MB: Final = 4096
MEMORY_HEADROOM: Final = 0.8
READ_TARGET: Final = 1.2
SAMPLE_SECONDS: Final = 0.5
FEATURES, CLASSES = 784, 10


@dataclass(frozen=True)
class LargeWorkload:
    name: str
    title: str
    rows: int
    validation_fraction: float
    train_loss: str
    sharded: bool  # a folder of shards (else one file the CLI cuts)
    seed: int = 0

    def config(self, source: str) -> dict[str, Any]:
        return {
            "run_id": f"bench-{self.name}",
            "dataset": {"source": source, "validation_fraction": self.validation_fraction},
            **MNIST_SIZED,
            "mode": "fused",
            "evaluation": {"train_loss": self.train_loss},
        }


def workloads(rows: int | None = None) -> list[LargeWorkload]:
    return [
        LargeWorkload(
            name="large",
            title=f"{rows or 1_000_000:,} × 784 in shards",
            rows=rows or 1_000_000,
            validation_fraction=0.1,
            train_loss="running",
            sharded=True,
        ),
        LargeWorkload(
            name="mnist",
            title="MNIST-sized (70,000 × 784, one file cut by the CLI)",
            rows=70_000,
            validation_fraction=1 / 7,
            train_loss="final",
            sharded=False,
        ),
    ]


# --- the dataset, shard by shard -------------------------------------------------------------


def blob_shards(
    rows: int, *, shard_rows: int, seed: int = 0, separation: float = 5.0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Gaussian blobs as :func:`stepnet.datasets.synthetic_classification` draws them (the same
    centers), ``shard_rows`` rows at a time: ``X`` (m, 784) float32, ``y`` (m,) int64; each
    shard's rows come from its own generator (seed, shard), so no shard needs another."""
    centers_rng = np.random.default_rng(seed)
    scale = np.float32(separation / np.sqrt(2 * FEATURES))
    centers = centers_rng.standard_normal((CLASSES, FEATURES), dtype=np.float32) * scale
    for index, start in enumerate(range(0, rows, shard_rows)):
        m = min(shard_rows, rows - start)
        rng = np.random.default_rng([seed, index])
        y = rng.permutation(np.arange(m, dtype=np.int64) % CLASSES)
        X = rng.standard_normal((m, FEATURES), dtype=np.float32)
        X += centers[y]
        yield X, y


def write_dataset(workload: LargeWorkload, folder: Path, shard_mb: int) -> tuple[str, int]:
    """The workload's dataset under ``folder``: (the config's source, its bytes)."""
    row_bytes = FEATURES * 4 + 8
    if workload.sharded:
        target = folder / f"{workload.name}-shards"
        target.mkdir(parents=True, exist_ok=True)
        shard_rows = shard_mb * MB // row_bytes
        total = 0
        shards = blob_shards(workload.rows, shard_rows=shard_rows, seed=workload.seed)
        for index, (X, y) in enumerate(shards):
            path = target / f"part-{index:05d}.npz"
            path.write_bytes(encode_shard(X, y))  # uncompressed: read in place by byte ranges
            total += path.stat().st_size
        return str(target), total
    ((X, y),) = blob_shards(workload.rows, shard_rows=workload.rows, seed=workload.seed)
    path = write_npz(folder / f"{workload.name}.npz", X, y)
    return str(path), path.stat().st_size


# --- the process tree's memory -----------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree[parent].append(int(entry))
    return tree


def _field_kb(path: str, name: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_kb(root: int) -> tuple[int, int, int]:
    """(processes, Σ RSS, Σ PSS) in kB of ``root`` and its descendants, now."""
    tree, pending, pids = _children(), [root], []
    while pending:
        pid = pending.pop()
        pids.append(pid)
        pending.extend(tree.get(pid, []))
    rss = sum(_field_kb(f"/proc/{pid}/status", "VmRSS:") for pid in pids)
    pss = sum(_field_kb(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in pids)
    return len(pids), rss, pss


class TreeSampler:
    """The peaks of :func:`tree_memory_kb` while a process runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss_kb = self.peak_pss_kb = self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            processes, rss, pss = tree_memory_kb(self.pid)
            self.peak_processes = max(self.peak_processes, processes)
            self.peak_rss_kb, self.peak_pss_kb = (
                max(self.peak_rss_kb, rss),
                max(self.peak_pss_kb, pss),
            )


# --- the engine's side: every AWS call its sandboxes make --------------------------------------


@dataclass
class Traffic:
    """Calls by (function, operation) and S3 body bytes by (function, direction, object kind)."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    s3_bytes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def as_dict(self) -> dict[str, Any]:
        functions: dict[str, Any] = defaultdict(lambda: {"calls": {}, "s3_bytes": {}})
        for (function, operation), n in sorted(self.calls.items()):
            functions[function]["calls"][operation] = n
        for (function, direction, kind), n in sorted(self.s3_bytes.items()):
            functions[function]["s3_bytes"][f"{direction} {kind}"] = n
        return dict(functions)


def object_kind(key: str) -> str:
    """``dataset`` (uploaded shards, converted shards), ``tensor`` or ``other``."""
    if key.startswith((names.S3_DATASETS_PREFIX, names.S3_UPLOADS_PREFIX)) or (
        key.startswith(names.S3_RUNS_PREFIX) and "/data/" in key
    ):
        return "dataset"
    return "tensor" if key.startswith(names.S3_TENSORS_PREFIX) else "other"


def classify(method: str, url: str, headers: list[tuple[str, str]]) -> tuple[str, str | None]:
    """(operation, the object's key for an object call)."""
    lowered = {k.lower(): v for k, v in headers}
    target = lowered.get("x-amz-target", "")
    if target:
        return target.split(".", 1)[-1], None
    parts = urlsplit(url)
    _, key = object_address(parts.netloc, parts.path)
    if not key or parts.query:
        return f"S3 {method} {'list' if 'list-type' in parts.query else 'other'}", None
    ranged = " (range)" if "range" in lowered else ""
    return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject"}.get(
        method, f"S3 {method}"
    ) + ranged, key


def engine_main(config_path: Path, out: Path) -> int:
    """Train the config on the local engine (processes), writing ``usage.json``,
    ``traffic.json`` and the model under ``out``."""
    from stepnet.engine.account import LocalAccount
    from stepnet.local import run_local
    from trainer.config import parse_config

    config = parse_config(json.loads(config_path.read_text()))
    traffic = Traffic()
    current = threading.local()
    with LocalAccount(isolation="processes") as account:
        service = account.runtime.transport
        assert service is not None

        @contextmanager
        def invocation(function_name: str) -> Iterator[None]:
            current.function = function_name.removeprefix(f"{account.stack_name}-")
            try:
                yield
            finally:
                current.function = None

        def counted(method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Any:
            answer = service(method, url, headers, body)
            function = getattr(current, "function", None) or "(engine)"
            operation, key = classify(method, url, headers)
            with traffic.lock:
                traffic.calls[function, operation] += 1
                if key is not None and method in ("GET", "PUT"):
                    moved = len(answer[2]) if method == "GET" else len(body)
                    direction = "read" if method == "GET" else "written"
                    traffic.s3_bytes[function, direction, object_kind(key)] += moved
            return answer

        account.runtime.transport = counted
        account.runtime.hooks.append(invocation)
        started = time.perf_counter()
        run = run_local(config, out, account=account)
        seconds = time.perf_counter() - started
    (out / "traffic.json").write_text(json.dumps(traffic.as_dict(), indent=1))
    (out / "run.json").write_text(
        json.dumps(
            {
                "succeeded": run.succeeded,
                "status": run.description.get("status"),
                "cause": run.description.get("cause"),
                "wall_seconds": seconds,
                "invocations": sum(run.invocations.values()),
                "per_epoch": run.per_epoch,
                "metrics": run.metrics,
            },
            indent=1,
            default=str,
        )
    )
    return 0 if run.succeeded else 1


# --- one workload --------------------------------------------------------------------------------


def _timed(command: list[str], log: Any) -> tuple[int, float, TreeSampler]:
    started = time.perf_counter()
    process = subprocess.Popen(command)
    with TreeSampler(process.pid) as sampler:
        code = process.wait()
    seconds = time.perf_counter() - started
    log(f"    {' '.join(command[1:4])}…: exit {code} in {seconds:.0f} s")
    return code, seconds, sampler


def _same_weights(a: Path, b: Path) -> bool:
    with np.load(a) as left, np.load(b) as right:
        return sorted(left.files) == sorted(right.files) and all(
            np.array_equal(left[k], right[k]) for k in left.files
        )


def _formula_mb(config: dict[str, Any]) -> dict[str, float]:
    from stepnet.sources import dataset_shape
    from trainer.config import parse_config
    from trainer.contract.functions import FUNCTIONS
    from trainer.training import memory

    parsed = parse_config(config)
    _, shape = dataset_shape(parsed.dataset.source)
    sizes = {name: spec.memory_mb for name, spec in FUNCTIONS.items()}
    return {name: need.mb for name, need in memory.estimate(parsed, shape, sizes).items()}


def _dollars(config: dict[str, Any]) -> dict[str, Any]:
    from stepnet.billing import estimate as cost
    from trainer.config import parse_config

    result = cost.estimate(parse_config(config)).as_dict()
    fused = result["modes"]["fused"]
    return {
        "standard_per_epoch": fused["standard_per_epoch"],
        "usage_per_epoch": fused["usage_per_epoch"],
        "steps_per_epoch": result["steps_per_epoch"],
    }


def measure(workload: LargeWorkload, scratch: Path, shard_mb: int, log: Any) -> dict[str, Any]:
    log(f"== {workload.name}: {workload.title}")
    started = time.perf_counter()
    source, dataset_bytes = write_dataset(workload, scratch, shard_mb)
    log(
        f"    dataset {dataset_bytes / MB:,.0f} MiB written in {time.perf_counter() - started:.0f} s"
    )
    config = workload.config(source)
    config_path = scratch / f"{workload.name}.json"
    config_path.write_text(json.dumps(config))
    python = sys.executable
    stepnet = str(Path(python).with_name("stepnet"))
    reference_out, engine_out = scratch / f"{workload.name}-reference", scratch / workload.name
    ref_code, ref_seconds, ref_tree = _timed(
        [stepnet, "reference", str(config_path), "--out", str(reference_out)], log
    )
    load_before = os.getloadavg()[0]
    code, seconds, tree = _timed(
        [python, "-m", "bench.large", "--engine", str(config_path), str(engine_out)], log
    )
    run = json.loads((engine_out / "run.json").read_text()) if code in (0, 1) else {}
    usage = json.loads((engine_out / "usage.json").read_text()) if run else {}
    traffic = json.loads((engine_out / "traffic.json").read_text()) if run else {}
    equal = (
        code == 0
        and ref_code == 0
        and _same_weights(engine_out / "model.npz", reference_out / "model.npz")
    )
    epoch_functions = set(workflow.EPOCH_FUNCTIONS)
    read = {"epoch": 0, "run": 0}
    requests: Counter[str] = Counter()
    for function, seen in traffic.items():
        dataset_read = seen["s3_bytes"].get("read dataset", 0)
        read["run"] += dataset_read
        if function in epoch_functions:
            read["epoch"] += dataset_read
            requests.update(seen["calls"])
    formula = _formula_mb(config)
    result = {
        "workload": workload.name,
        "title": workload.title,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": sections.checkout_commit(),
        "load_before": load_before,
        "config": config | {"dataset": config["dataset"] | {"source": "<generated>"}},
        "rows": workload.rows,
        "dataset_bytes": dataset_bytes,
        "shard_mb": shard_mb,
        "succeeded": code == 0,
        "cause": run.get("cause"),
        "wall_seconds": seconds,
        "reference_seconds": ref_seconds,
        "reference_tree_peak_rss_mb": ref_tree.peak_rss_kb / 1024,
        "invocations": run.get("invocations"),
        "per_epoch": run.get("per_epoch"),
        "metrics": run.get("metrics"),
        "tree": {
            "peak_rss_mb": tree.peak_rss_kb / 1024,
            "peak_pss_mb": tree.peak_pss_kb / 1024,
            "peak_processes": tree.peak_processes,
        },
        "functions": {
            name: row | {"formula_mb": round(formula[name]) if name in formula else None}
            for name, row in usage.items()
            if row["invocations"]
        },
        "dataset_bytes_read": read,
        "requests_per_epoch": dict(sorted(requests.items())),
        "traffic": traffic,
        "weights_equal_reference": equal,
        "aws_estimate": _dollars(config),
    }
    result["targets"] = targets(result)
    for target in result["targets"]:
        log(f"    {target['target']}: {target['value']} — {'met' if target['met'] else 'NOT met'}")
    return result


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    worst = max(
        (
            (row["max_memory_used_mb"] / row["memory_mb"], name)
            for name, row in result["functions"].items()
            if row["max_memory_used_mb"] is not None
        ),
        default=(float("nan"), "-"),
    )
    ratio = result["dataset_bytes_read"]["epoch"] / result["dataset_bytes"]
    rss = result["tree"]["peak_rss_mb"]
    return [
        {
            "target": "the run completes",
            "value": result["cause"] or "succeeded",
            "met": result["succeeded"],
        },
        {
            "target": f"every function's max memory used ≤ {MEMORY_HEADROOM:.0%} of its memory",
            "value": f"at most {worst[0]:.0%} ({worst[1]})",
            "met": worst[0] <= MEMORY_HEADROOM,
        },
        {
            "target": f"process tree peak RSS ≤ {TREE_RSS_TARGET_MB / 1024:g} GB",
            "value": f"{rss / 1024:.2f} GB (PSS {result['tree']['peak_pss_mb'] / 1024:.2f} GB)",
            "met": rss <= TREE_RSS_TARGET_MB,
        },
        {
            "target": f"dataset bytes read per epoch ≤ {READ_TARGET:g} × the dataset",
            "value": f"{ratio:.2f} ×",
            "met": ratio <= READ_TARGET,
        }
        if result["config"]["evaluation"]["train_loss"] == "running"
        else {  # `final` re-reads the training part for the epoch's train loss: ~2× by design
            "target": "dataset bytes read per epoch (train_loss: final reads the training part "
            "twice: no target)",
            "value": f"{ratio:.2f} ×",
            "met": True,
        },
        {
            "target": "weights equal stepnet reference",
            "value": str(result["weights_equal_reference"]),
            "met": result["weights_equal_reference"],
        },
    ]


# --- the report ----------------------------------------------------------------------------------


def render(results: list[dict[str, Any]]) -> str:
    """The section of docs/benchmarks.md (between the markers)."""
    lines = [
        BEGIN,
        "## Data larger than any Lambda (`python -m bench.large`)",
        "",
        "One fused epoch on the local engine, every function at its deployed size, each Lambda "
        "invocation in its own sandbox process held to its memory (docs/engine.md); the dataset "
        "in `.npz` shards (docs/data.md). *Tree RSS*: the sum of the resident memory of the "
        "`stepnet local` process and its sandboxes, sampled every "
        f"{SAMPLE_SECONDS:g} s (PSS counts the pages forked sandboxes share once). Requests are "
        "the sandboxes' AWS calls, counted before the engine's remembered answers (each reaches "
        "S3 or DynamoDB on AWS). Dollars: `stepnet cost`'s model (Standard workflows).",
        "",
    ]
    for r in results:
        estimate = r["aws_estimate"]
        lines += [
            f"### {r['title']}",
            "",
            f"Generated {r['generated']} at commit {r.get('commit', 'unknown')}, load average "
            f"before the run {r['load_before']:.1f}; "
            f"{r['rows']:,} rows, {r['dataset_bytes'] / MB:,.0f} MiB, "
            f"{estimate['steps_per_epoch']:,} steps, {r['invocations'] or 0:,} Lambda tasks.",
            "",
            "| target | measured | met |",
            "|---|---|---|",
            *(
                f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |"
                for t in r["targets"]
            ),
            "",
            f"Wall time: {r['wall_seconds']:,.0f} s on the local engine (upload and setup "
            f"included), {r['reference_seconds']:,.0f} s for `stepnet reference` (its process "
            f"peaked at {r['reference_tree_peak_rss_mb']:,.0f} MB). Dataset bytes read: "
            f"{r['dataset_bytes_read']['epoch'] / MB:,.0f} MiB by the epoch's functions, "
            f"{r['dataset_bytes_read']['run'] / MB:,.0f} MiB in the whole run (before training, "
            "Check shards reads every shard whole, and Prepare shards again for its statistics).",
            "",
            "| function | invocations | memory MB | max memory used MB | used / memory | "
            "formula MB | max duration s |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, row in r["functions"].items():
            used = row["max_memory_used_mb"]
            share = "-" if used is None else f"{used / row['memory_mb']:.0%}"
            lines.append(
                f"| {name} | {row['invocations']:,} | {row['memory_mb']:,} | "
                f"{'-' if used is None else f'{used:,}'} | {share} | {_count(row['formula_mb'])} | "
                f"{row['max_duration_s']:.2f} |"
            )
        standard = estimate["standard_per_epoch"]
        lines += [
            "",
            "Requests per epoch (the epoch's functions): "
            + ", ".join(f"{op} {n:,}" for op, n in r["requests_per_epoch"].items())
            + ".",
            "",
            f"Estimated on AWS: **${standard['total_usd']:.4f} per epoch** (Standard, fused; "
            + ", ".join(f"{part} ${value:.4f}" for part, value in standard["items_usd"].items())
            + ").",
            "",
        ]
    lines.append(END)
    return "\n".join(lines) + "\n"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.large", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workloads", default="large,mnist", help="comma-separated: large, mnist")
    parser.add_argument("--rows", type=int, help="rows of the large workload (a smoke run)")
    parser.add_argument("--shard-mb", type=int, default=DEFAULT_SHARD_MB)
    parser.add_argument("--out", default="docs", help="docs folder (default: docs)")
    parser.add_argument(
        "--scratch", help="where datasets and runs go (default: a temporary folder)"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rebuild the section from the JSON",
    )
    parser.add_argument("--engine", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.engine:
        return engine_main(Path(args.engine[0]), Path(args.engine[1]))
    wanted = [w.strip() for w in args.workloads.split(",")]
    chosen = [w for w in workloads(args.rows) if w.name in wanted]
    out = Path(args.out)
    results_path = out / "benchmarks" / "large.json"
    known = json.loads(results_path.read_text()) if results_path.is_file() else {}

    def log(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="stepnet-large-", dir=args.scratch) as scratch:
        for workload in [] if args.render_only else chosen:
            folder = Path(scratch) / workload.name
            folder.mkdir()
            known[workload.name] = measure(workload, folder, args.shard_mb, log)
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps(known, indent=1, default=str) + "\n")
    markdown = out / "benchmarks.md"
    document = markdown.read_text() if markdown.is_file() else "# Benchmarks\n"
    ordered = [known[w.name] for w in workloads() if w.name in known]
    markdown.write_text(sections.splice(document, SECTION, render(ordered)))
    log(f"wrote {results_path} and the section of {markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
