"""Usage in dollars, by design, and the duration model that turns store traffic into GB-seconds.

Bills (prices from :mod:`stepnet.billing.prices`):

* :func:`standard_bill`: the stack as built, Standard Training and Epoch machines, the epoch's
  steps in Express chunks (Steps machine): ``Standard transitions × $/transition + chunks ×
  $/Express request + 64 MB × chunk seconds (100 ms steps) × $/GB-s + invocations × $/request
  + GB-s × $/GB-s + WRU, RRU, S3 requests``.
* :func:`all_standard_bill` (hypothetical, for comparison): the same counts with every state
  transition billed as Standard, as the steps were before they ran in Express chunks.
* :func:`seed_bill`: the seed design, Lambdas chained by SNS (one publish per invocation) with
  every tensor in DynamoDB (``seed_wru``/``seed_rru``), no Step Functions, no S3.
* :func:`m5_bill`: an m5.large running the reference trainer for the same epoch.

Durations are an *assumption* (:class:`DurationModel`), not a measurement: per invocation,
``overhead + requests × latency / concurrency + bytes / throughput + flops / (GFLOP/s × vCPU)``
with the assumed arithmetic of :func:`task_flops`. ``make bench`` reports the local engine's
measured handler times next to it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from stepnet.billing import prices
from stepnet.billing.usage import FUNCTION_MEMORY_MB, StoreUsage, Usage
from trainer.contract.functions import LAMBDA_ARCHITECTURE
from trainer.contract.statemachines import STATE_MACHINES
from trainer.data.rows import READ_THREADS

# Express bills the memory the execution uses in 64 MB steps; states that carry only keys stay
# in the first step. Duration is billed in 100 ms steps.
EXPRESS_MEMORY_MB: Final = 64
EXPRESS_DURATION_STEP_S: Final = 0.1
EXPRESS_MAX_SECONDS: Final = 300.0

# Store requests a handler keeps in flight at once: the tasks that read rows from the shards
# issue their byte ranges READ_THREADS at a time (trainer.data.rows.read_segments).
CONCURRENCY: Final = {
    function: READ_THREADS for function in ("Forward", "Gradients", "TrainStep", "EvaluateShards")
}


@dataclass(frozen=True)
class Bill:
    """Dollars for one design, by component."""

    design: str
    label: str
    items: dict[str, float]
    hypothetical: bool = False
    note: str = ""

    @property
    def total(self) -> float:
        return sum(self.items.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "design": self.design,
            "label": self.label,
            "total_usd": self.total,
            "items_usd": self.items,
            "hypothetical": self.hypothetical,
            "note": self.note,
        }


def _lambda_items(usage: Usage, memory_mb: Mapping[str, int]) -> dict[str, float]:
    gb_price = prices.each(f"lambda_gb_second_{LAMBDA_ARCHITECTURE.replace('-', '_')}")
    return {
        "Lambda requests": usage.invocations * prices.each("lambda_request"),
        "Lambda GB-s": usage.gb_seconds(memory_mb) * gb_price,
    }


def _store_items(store: StoreUsage) -> dict[str, float]:
    return {
        "DynamoDB WRU": store.wru * prices.each("dynamodb_write_request_unit"),
        "DynamoDB RRU": (store.rru + store.config_rru) * prices.each("dynamodb_read_request_unit"),
        "S3 PUT": store.s3_puts * prices.each("s3_put_request"),
        "S3 GET": store.s3_gets * prices.each("s3_get_request"),
    }


def _express_items(usage: Usage) -> dict[str, float]:
    """Express chunks: a request each, ``64 MB × duration`` in 100 ms steps per chunk."""
    seconds = express_seconds(usage.express_seconds, usage.express_executions)
    gb_s = seconds * EXPRESS_MEMORY_MB / 1024
    return {
        "Express requests": usage.express_executions * prices.each("stepfunctions_express_request"),
        "Express GB-s": gb_s * prices.each("stepfunctions_express_gb_second"),
    }


@dataclass(frozen=True)
class TelemetryModel:
    """What the stack's logging and tracing ingest, as ``infra/`` configures them from the
    contract (``trainer.contract.statemachines.STATE_MACHINES``): the Express Steps machine
    logs every history event of its chunks with execution data (level ALL, how the console
    shows them); the Standard machines log failures only (level ERROR: nothing in a run that
    succeeds; Step Functions keeps their history); every function logs to its log group, and
    the machines and functions trace with X-Ray (active tracing).

    The event counts are exact (``trainer.contract.workflow``); the bytes per event are an
    assumption: the local histories' events are 440–530 bytes of JSON with their inputs and
    outputs, and CloudWatch adds the execution ARN and a timestamp to each; a function logs
    its START, END and REPORT lines (with the trace id), and on the training path only Plan
    and Evaluate log a line of their own. X-Ray: one trace per execution, an upper bound (a
    child execution started with its parent's trace header joins the parent's trace)."""

    state_event_bytes: float = 600.0
    lambda_bytes_per_invocation: float = 400.0

    def logged_events(self, usage: Usage) -> float:
        """The history events the machines' log levels send to CloudWatch Logs (no failure):
        the Express chunks' if Steps logs ALL, the Standard executions' if they do."""
        express = usage.express_history_events
        standard = usage.history_events - express
        return (express if _logs_all("Steps") else 0.0) + (
            standard if _logs_all("Epoch") and _logs_all("Training") else 0.0
        )

    def log_bytes(self, usage: Usage) -> float:
        return (
            self.logged_events(usage) * self.state_event_bytes
            + usage.invocations * self.lambda_bytes_per_invocation
        )

    def traces(self, usage: Usage) -> float:
        return usage.epoch_executions + usage.express_executions


def _logs_all(machine: str) -> bool:
    """Whether a machine logs every history event (level ALL), not its failures only."""
    return STATE_MACHINES[machine].log_level == "ALL"


TELEMETRY: Final = TelemetryModel()


def _telemetry_items(usage: Usage, telemetry: TelemetryModel = TELEMETRY) -> dict[str, float]:
    return {
        "CloudWatch Logs": telemetry.log_bytes(usage)
        / 1e9
        * prices.each("cloudwatch_logs_ingested_gb"),
        "X-Ray traces": telemetry.traces(usage) * prices.each("xray_trace_recorded"),
    }


def standard_bill(
    usage: Usage,
    mode: str,
    memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB,
    telemetry: TelemetryModel | None = None,
) -> Bill:
    """The stack as built: Standard Training and Epoch executions (billed per transition), the
    steps in Express chunks (billed per request and GB-second), and with ``telemetry`` the logs
    and traces they and the functions write (``stepnet cost`` and the bench pass
    :data:`TELEMETRY`; without it, as before, no such items)."""
    items = {
        "Step Functions transitions": usage.transitions
        * prices.each("stepfunctions_standard_transition"),
        **_express_items(usage),
        **_lambda_items(usage, memory_mb),
        **_store_items(usage.store),
        **(_telemetry_items(usage, telemetry) if telemetry is not None else {}),
    }
    per_chunk = usage.express_seconds / max(usage.express_executions, 1.0)
    note = ""
    if per_chunk > EXPRESS_MAX_SECONDS:
        note = f"{per_chunk:.0f} s per chunk exceeds Express's 5-minute limit"
    label = f"Standard epoch + Express chunks, {mode}"
    return Bill(f"standard:{mode}", label, items, False, note)


def express_seconds(seconds: float, executions: float) -> float:
    """Billed Express duration: each execution rounded up to 100 ms (spread evenly)."""
    if executions <= 0:
        return 0.0
    each = seconds / executions
    return math.ceil(each / EXPRESS_DURATION_STEP_S - 1e-9) * EXPRESS_DURATION_STEP_S * executions


def all_standard_bill(
    usage: Usage,
    mode: str,
    memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB,
    telemetry: TelemetryModel | None = None,
) -> Bill:
    """Hypothetical, for comparison: the same epoch with every state transition billed as
    Standard (the steps in the Standard Epoch execution, as before the Express chunks)."""
    transitions = usage.transitions + usage.express_transitions
    items = {
        "Step Functions transitions": transitions
        * prices.each("stepfunctions_standard_transition"),
        **_lambda_items(usage, memory_mb),
        **_store_items(usage.store),
        **(_telemetry_items(usage, telemetry) if telemetry is not None else {}),
    }
    note = "for comparison: the steps' transitions billed as Standard"
    return Bill(f"all-standard:{mode}", f"everything on Standard, {mode}", items, True, note)


def seed_bill(per_layer: Usage, memory_mb: Mapping[str, int] = FUNCTION_MEMORY_MB) -> Bill:
    """The seed design: the per-layer Lambdas chained by SNS (a publish per invocation), every
    tensor in DynamoDB (1 WRU per KB written, 1 RRU per 4 KB read), no Step Functions, no S3.
    Priced from the per-layer mode's counts."""
    store = per_layer.store
    items = {
        **_lambda_items(per_layer, memory_mb),
        "SNS publishes": per_layer.invocations * prices.each("sns_publish"),
        "DynamoDB WRU": store.seed_wru * prices.each("dynamodb_write_request_unit"),
        "DynamoDB RRU": (store.seed_rru + store.config_rru)
        * prices.each("dynamodb_read_request_unit"),
    }
    note = "items above 400 KB would have to be chunked; units are the same"
    return Bill(
        "seed", "seed design: Lambdas chained by SNS, tensors in DynamoDB", items, False, note
    )


def m5_bill(reference_seconds: float, *, measured: bool) -> Bill:
    """An m5.large running the reference trainer for the same epoch."""
    items = {"m5.large time": reference_seconds / 3600 * prices.each("ec2_m5_large_hour")}
    how = "measured reference time" if measured else "assumed throughput (DurationModel)"
    return Bill("m5.large", "m5.large running the reference", items, False, how)


# --- the duration model -------------------------------------------------------------------------


@dataclass(frozen=True)
class DurationModel:
    """Assumed warm-Lambda durations, for GB-seconds, the Express duration and the AWS time per
    epoch that ``stepnet cost`` shows as an *estimate*. Not measured on AWS: ballpark figures
    to be replaced by measurements when the stack is deployed. Sources of the latencies: a state
    that invokes a Lambda function adds tens of milliseconds to the function's own time in
    public benchmarks of Step Functions against plain Lambda (C. Bonzelet, "AWS Step Function
    vs. AWS Lambda benchmark", cremich.cloud, parts 1 and 2), hence ``task_dispatch_ms``; a
    nested ``startExecution.sync:2`` adds a start and a completion event delivered through
    EventBridge (the ``StepFunctionsGetEventsForStepFunctionsExecutionRule`` the stack grants),
    assumed 1 s per chunk (``child_start_ms``); S3 first-byte latencies of tens of ms and
    DynamoDB's single-digit ms are AWS's own orders of magnitude."""

    invoke_overhead_ms: float = 5.0  # runtime, event validation, logging
    dynamodb_request_ms: float = 6.0  # single-digit ms in-region
    s3_request_ms: float = 25.0  # first byte of a GET / a PUT's round trip
    store_mb_per_s: float = 80.0  # payload throughput of one function to DynamoDB / S3
    codec_mb_per_s: float = 400.0  # .npz encode/decode plus sha256
    gflops_per_vcpu: float = 8.0  # numpy float32 dense layers on one Lambda vCPU
    mb_per_vcpu: float = 1769.0  # Lambda gives one vCPU per 1,769 MB
    task_dispatch_ms: float = 25.0  # Step Functions → Lambda → Step Functions per Task state
    child_start_ms: float = 1000.0  # a startExecution.sync:2 Task: start, await, read its output
    m5_large_gflops: float = 20.0  # the reference trainer on an m5.large (2 vCPU)

    def task_ms(
        self, store: StoreUsage, flops: float, memory_mb: int, concurrency: int = 1
    ) -> float:
        """One invocation's duration; ``concurrency``: requests the handler overlaps."""
        vcpu = min(1.0, memory_mb / self.mb_per_vcpu)
        moved = (store.bytes_written + store.bytes_read) / 1e6
        return (
            self.invoke_overhead_ms
            + (store.ddb_writes + store.ddb_reads) * self.dynamodb_request_ms / concurrency
            + (store.s3_puts + store.s3_gets) * self.s3_request_ms / concurrency
            + moved / self.store_mb_per_s * 1000
            + moved / self.codec_mb_per_s * 1000
            + flops / (self.gflops_per_vcpu * 1e9 * vcpu) * 1000
        )


def multiply_adds(sizes: Sequence[int]) -> int:
    """``Σ_l n_{l-1}·n_l`` over ``sizes = [n_features, units_1, …, units_L]``: one example's
    multiply-adds through every layer."""
    return sum(a * b for a, b in itertools.pairwise(sizes))


def task_flops(
    function: str,
    sizes: Sequence[int],
    *,
    rows: int = 0,
    layer: int = 0,
    microbatches: int = 0,
    examples: int = 0,
) -> float:
    """The arithmetic assumed for one invocation (``sizes``: the layer sizes, ``rows``: the
    micro-batch's examples, ``layer``: 1-based, ``microbatches``: the step's, ``examples``:
    all that Evaluate scores): dense forward ``2·rows·n_in·n_out``, backward twice that, the
    loss ``5·rows·k``, fused ``6·rows·Σ n_in·n_out``, Update ``(m + 20)·parameters``, per_step's
    TrainStep both (``rows``: the step's examples), Evaluate ``2·examples·Σ n_in·n_out``; no
    arithmetic to speak of elsewhere."""
    if function in ("Forward", "Backward"):
        macs = rows * sizes[layer - 1] * sizes[layer]
        return float(2 * macs if function == "Forward" else 4 * macs)
    if function == "Loss":
        return float(5 * rows * sizes[-1])
    if function == "Gradients":
        return float(6 * rows * multiply_adds(sizes))
    if function in ("Update", "TrainStep"):
        parameters = sum(a * b + b for a, b in itertools.pairwise(sizes))
        update = float((microbatches + 20) * parameters)
        if function == "TrainStep":
            return update + float(6 * rows * multiply_adds(sizes))
        return update
    if function == "EvaluateShards":
        return float(2 * examples * multiply_adds(sizes))
    return 0.0
