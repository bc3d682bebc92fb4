"""The Lambda functions: one spec per function, read by the stack, the local engine, the cost
model and the tests.

A spec says which handler the function runs, how it is sized, in which loop of the workflow it
runs (its :class:`Scope`) and exactly which table and bucket actions its handler needs (its
:class:`Grants`, from which the stack writes the function's IAM role). The runtime and the
architecture are one decision for every function.

Two packages: the workflow's functions and the API's run the ``trainer`` package; the
prediction functions run the numpy-only ``inference`` package (:data:`Package`), each bundled
into its own asset by the stack.

Pure (stdlib only): importable by the engine and the CDK app alike (not shipped to Lambda).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from inference.keys import IN, INFERENCE_PREFIX, OUT
from inference.pointer import MODELS_PREFIX
from trainer.contract import names
from trainer.contract.storage import TableName

# --- runtime ----------------------------------------------------------------------------------
# The newest Python runtime aws-cdk-lib knows (cdk-nag AwsSolutions-L1 wants the newest), for which
# numpy and pydantic-core publish manylinux aarch64 wheels (lambdas/requirements.txt pins them).
# The tests run on the machine's own CPython (docs/deploy.md says what that leaves untested).
LAMBDA_RUNTIME: Final = "python3.14"
LAMBDA_ARCHITECTURE: Final = "arm64"  # ~20% cheaper per GB-second than x86_64
LAMBDA_PYTHON_VERSION: Final = LAMBDA_RUNTIME.removeprefix("python")  # "3.14", what pip targets

# Lambda's limits on the two sizes a spec (or a deployment's override) sets.
MEMORY_LIMITS_MB: Final = (128, 10_240)
TIMEOUT_LIMITS_S: Final = (1, 900)
Size = Literal["memory", "timeout"]
SIZE_LIMITS: Final[Mapping[Size, tuple[int, int]]] = {
    "memory": MEMORY_LIMITS_MB,
    "timeout": TIMEOUT_LIMITS_S,
}

# --- where a function runs --------------------------------------------------------------------
Loop = Literal["run", "epoch", "microbatch", "request", "trigger"]
Mode = Literal["per_layer", "fused"]
MODES: Final[tuple[Mode, ...]] = ("per_layer", "fused")


@dataclass(frozen=True)
class Scope:
    """The loop of the workflow a function runs in: once per run, once per epoch or step, or
    once per micro-batch — and then only in one ``mode`` (the Map's "Fused or per layer?")."""

    loop: Loop
    mode: Mode | None = None

    def __post_init__(self) -> None:
        if (self.loop == "microbatch") != (self.mode is not None):
            raise ValueError(f"a mode belongs to micro-batch functions only: {self}")


RUN: Final = Scope("run")  # the Training machine: before the first and after the last epoch
EPOCH: Final = Scope("epoch")  # per epoch (Plan, Evaluate) or per step of one (Update)
PER_LAYER: Final = Scope("microbatch", "per_layer")  # per layer and micro-batch
FUSED: Final = Scope("microbatch", "fused")  # once per micro-batch, every layer
# Outside the workflow: once per API request or per object uploaded for batch inference.
REQUEST: Final = Scope("request")
# Outside a run: once per retraining trigger (an upload, a schedule) and per run it starts.
TRIGGER: Final = Scope("trigger")

# --- what a function is bundled from ----------------------------------------------------------
Package = Literal["trainer", "inference"]
PACKAGES: Final[tuple[Package, ...]] = ("trainer", "inference")

# --- what a function may do to the store ------------------------------------------------------
TableAction = Literal[
    "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:Query"
]
ObjectAction = Literal["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
# Step Functions actions on a state machine of the stack (StartExecution, ListExecutions) or on
# its executions (DescribeExecution).
MachineAction = Literal[
    "states:StartExecution", "states:ListExecutions", "states:DescribeExecution"
]

GET_ITEM: Final[TableAction] = "dynamodb:GetItem"
BATCH_GET_ITEM: Final[TableAction] = "dynamodb:BatchGetItem"  # TensorStore.get_many
PUT_ITEM: Final[TableAction] = "dynamodb:PutItem"  # conditional: write-once, scratch over scratch
QUERY: Final[TableAction] = "dynamodb:Query"  # RunStore.list_epoch_metrics
GET_OBJECT: Final[ObjectAction] = "s3:GetObject"  # also what HeadObject needs
PUT_OBJECT: Final[ObjectAction] = "s3:PutObject"  # also with If-None-Match (write-once spills)
# Only where a handler replaces one file by another: batch inference deletes the stale one of an
# output / error-file pair (inference.handlers).
DELETE_OBJECT: Final[ObjectAction] = "s3:DeleteObject"
START_EXECUTION: Final[MachineAction] = "states:StartExecution"
LIST_EXECUTIONS: Final[MachineAction] = "states:ListExecutions"
DESCRIBE_EXECUTION: Final[MachineAction] = "states:DescribeExecution"  # on its executions

# Object key prefixes a grant may be scoped to ("" is every key of the bucket).
ANY_KEY: Final = ""
TENSORS: Final = names.S3_TENSORS_PREFIX  # spilled tensor bundles, scratch ones included
SCRATCH: Final = names.S3_SCRATCH_PREFIX  # spilled scratch bundles only
RUNS: Final = names.S3_RUNS_PREFIX  # a run's exported model
MODELS: Final = MODELS_PREFIX  # models/<pipeline>/production.json, the production pointers
# Any run's exported model only (runs/<run_id>/ also holds a run's converted shards).
RUN_MODELS: Final = f"{names.S3_RUNS_PREFIX}*/model/"
# Batch inference, any pipeline: a `*` in a prefix matches one key segment's characters, as in
# an IAM resource (inference/*/in/ and inference/*/out/).
INFERENCE_IN: Final = f"{INFERENCE_PREFIX}*/{IN}"
INFERENCE_OUT: Final = f"{INFERENCE_PREFIX}*/{OUT}"


def _table(*actions: TableAction) -> frozenset[TableAction]:
    return frozenset(actions)


def _objects(*actions: ObjectAction) -> frozenset[ObjectAction]:
    return frozenset(actions)


def _machine(*actions: MachineAction) -> frozenset[MachineAction]:
    return frozenset(actions)


@dataclass(frozen=True)
class Grants:
    """Exactly the table and bucket actions a function's handler calls (``trainer.dal`` and
    ``trainer.store``), and on what.

    ``tables``: a table of :data:`trainer.contract.storage.TABLES` -> DynamoDB actions.
    ``objects``: an object key prefix in the data bucket -> S3 actions on the keys below it.
    ``machines``: a state machine of ``trainer.contract.statemachines.STATE_MACHINES`` ->
    Step Functions actions on it (or, for ``states:DescribeExecution``, on its executions). A
    function granted any gets the machine's ARN in its environment
    (``trainer.contract.environment.ApiEnvironment``).
    """

    tables: Mapping[TableName, frozenset[TableAction]] = field(default_factory=dict)
    objects: Mapping[str, frozenset[ObjectAction]] = field(default_factory=dict)
    machines: Mapping[str, frozenset[MachineAction]] = field(default_factory=dict)

    @property
    def lists_bucket(self) -> bool:
        """Whether the function also needs ``s3:ListBucket`` on the bucket: it does if it reads
        objects. The store tells a missing object (404 ``NoSuchKey``: an expired scratch bundle,
        a dataset URI that names nothing, an object deleted in a race) from a forbidden one, and
        without ``s3:ListBucket`` S3 answers 403 for a key that does not exist."""
        return any(GET_OBJECT in actions for actions in self.objects.values())

    def table_actions(self) -> dict[TableName, tuple[TableAction, ...]]:
        """The DynamoDB actions per table, sorted."""
        return {table: tuple(sorted(actions)) for table, actions in self.tables.items() if actions}

    def object_actions(self) -> dict[str, tuple[ObjectAction, ...]]:
        """The S3 object actions per key prefix, sorted."""
        return {prefix: tuple(sorted(a)) for prefix, a in self.objects.items() if a}

    def machine_actions(self) -> dict[str, tuple[MachineAction, ...]]:
        """The Step Functions actions per state machine, sorted."""
        return {machine: tuple(sorted(a)) for machine, a in self.machines.items() if a}


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: its handler (``module.function``), size, scope, grants and the
    package it is bundled from (the handler's module is in it)."""

    handler: str
    memory_mb: int
    timeout_s: int
    scope: Scope
    grants: Grants
    package: Package = "trainer"

    def __post_init__(self) -> None:
        low, high = MEMORY_LIMITS_MB
        if not low <= self.memory_mb <= high:
            raise ValueError(f"{self.handler}: memory_mb {self.memory_mb} not in [{low}, {high}]")
        low, high = TIMEOUT_LIMITS_S
        if not low <= self.timeout_s <= high:
            raise ValueError(f"{self.handler}: timeout_s {self.timeout_s} not in [{low}, {high}]")
        if self.handler.split(".")[0] != self.package:
            raise ValueError(f"{self.handler}: not a handler of package {self.package!r}")


# Every function reads the run's config first (RunStore.get_config_json), except those that get
# it in their input before the run is recorded (Initialize, CheckShards, PrepareShards).
_READS_CONFIG: Final = _table(GET_ITEM)

# The functions, in the order a run meets them, then the API's and the predictions'
# (Gradients in place of Forward/Loss/Backward in fused mode). Sizes follow the memory formula
# of docs/data.md (``trainer.training.memory``): per invocation, the runtime's baseline
# (~100 MB) + the model + one micro-batch or one chunk of rows + one shard for the shard
# passes — never the dataset. 1769 MB is one full vCPU, which the CPU-bound tasks (numpy's
# matrix products, parsing a shard) are given whatever they need in memory; the others get what
# their formula needs with room. The stack lets CDK context override the sizes per deployment;
# `stepnet cost` and the CLI check a config against them.
FUNCTIONS: Final[Mapping[str, FunctionSpec]] = {
    "Initialize": FunctionSpec(
        handler="trainer.handlers.initialize.handler",
        memory_mb=256,  # the config and a listing of the source (1,000 keys a page)
        timeout_s=60,
        scope=RUN,
        grants=Grants(
            # lists the source's shards (or heads its one object); writes nothing
            objects={ANY_KEY: _objects(GET_OBJECT)},
        ),
    ),
    "CheckShards": FunctionSpec(
        handler="trainer.handlers.check_shards.handler",
        memory_mb=names.FULL_VCPU_MEMORY_MB,  # one shard at a time, whole, parsed (a CSV is ~5x its text); a vCPU
        timeout_s=900,
        scope=RUN,
        grants=Grants(
            # reads a group of shards (anywhere in the bucket); writes nothing
            objects={ANY_KEY: _objects(GET_OBJECT)},
        ),
    ),
    "PrepareShards": FunctionSpec(
        handler="trainer.handlers.prepare_shards.handler",
        memory_mb=names.FULL_VCPU_MEMORY_MB,  # as CheckShards, plus a converted copy of the shard
        timeout_s=900,
        scope=RUN,
        grants=Grants(
            # records the config (write-once); per shard its layout, moments and classes
            tables={"runs": _table(GET_ITEM, PUT_ITEM), "tensors": _table(GET_ITEM, PUT_ITEM)},
            objects={
                ANY_KEY: _objects(GET_OBJECT),  # the shards; HeadObject of its own spills
                RUNS: _objects(PUT_OBJECT),  # converted shards: runs/<run_id>/data/
                TENSORS: _objects(PUT_OBJECT),  # spilled shard bundles
            },
        ),
    ),
    "Start": FunctionSpec(
        handler="trainer.handlers.start.handler",
        memory_mb=1024,  # every shard's moments (2 x features float64 each), weights v0
        timeout_s=300,
        scope=RUN,
        grants=Grants(
            # reads the shards' bundles; writes the dataset, its facts, status, weights v0
            tables={
                "runs": _table(GET_ITEM, PUT_ITEM),
                "tensors": _table(GET_ITEM, BATCH_GET_ITEM, PUT_ITEM),
            },
            objects={TENSORS: _objects(GET_OBJECT, PUT_OBJECT)},
        ),
    ),
    "Resume": FunctionSpec(
        handler="trainer.handlers.resume.handler",
        memory_mb=1024,  # reads optimizer bundles (the model's size) to find the last version
        timeout_s=120,
        scope=RUN,
        grants=Grants(
            # reads the config, the dataset, the epochs' metrics and optimizer bundles (a binary
            # search for the last complete version); writes the status
            tables={"runs": _table(GET_ITEM, PUT_ITEM, QUERY), "tensors": _table(GET_ITEM)},
            objects={TENSORS: _objects(GET_OBJECT)},
        ),
    ),
    "Plan": FunctionSpec(
        handler="trainer.handlers.plan.handler",
        memory_mb=256,  # the dataset's bundle and its block table: O(blocks), never the rows
        timeout_s=60,
        scope=EPOCH,
        grants=Grants(
            # reads the prepared dataset; writes nothing
            tables={"runs": _READS_CONFIG, "tensors": _table(GET_ITEM)},
            objects={TENSORS: _objects(GET_OBJECT)},
        ),
    ),
    "Forward": FunctionSpec(
        handler="trainer.handlers.forward.handler",
        memory_mb=names.FULL_VCPU_MEMORY_MB,
        timeout_s=300,
        scope=PER_LAYER,
        grants=Grants(
            # layer 1 reads the micro-batch's rows from the shards and keeps them (scratch);
            # reads the layer's weights and its input; writes A_l
            tables={"runs": _READS_CONFIG, "tensors": _table(GET_ITEM, PUT_ITEM)},
            objects={ANY_KEY: _objects(GET_OBJECT), SCRATCH: _objects(PUT_OBJECT)},
        ),
    ),
    "Loss": FunctionSpec(
        handler="trainer.handlers.loss.handler",
        memory_mb=1024,
        timeout_s=120,
        scope=PER_LAYER,
        grants=Grants(
            # reads the output activation and the micro-batch's Y; writes dZ_L: scratch only
            tables={"runs": _READS_CONFIG, "tensors": _table(GET_ITEM, PUT_ITEM)},
            objects={SCRATCH: _objects(GET_OBJECT, PUT_OBJECT)},
        ),
    ),
    "Backward": FunctionSpec(
        handler="trainer.handlers.backward.handler",
        memory_mb=names.FULL_VCPU_MEMORY_MB,
        timeout_s=300,
        scope=PER_LAYER,
        grants=Grants(
            # reads dZ_l, the layer's input and weights; writes dW_l, db_l and dZ_{l-1}
            tables={"runs": _READS_CONFIG, "tensors": _table(GET_ITEM, PUT_ITEM)},
            objects={TENSORS: _objects(GET_OBJECT), SCRATCH: _objects(PUT_OBJECT)},
        ),
    ),
    "Gradients": FunctionSpec(
        handler="trainer.handlers.gradients.handler",
        memory_mb=names.FULL_VCPU_MEMORY_MB,
        timeout_s=300,
        scope=FUSED,
        grants=Grants(
            # reads the micro-batch's rows from the shards and the weights (one bundle);
            # writes the gradients
            tables={"runs": _READS_CONFIG, "tensors": _table(GET_ITEM, PUT_ITEM)},
            objects={ANY_KEY: _objects(GET_OBJECT), SCRATCH: _objects(PUT_OBJECT)},
        ),
    ),
    "Update": FunctionSpec(
        handler="trainer.handlers.update.handler",
        memory_mb=1024,
        timeout_s=120,
        scope=EPOCH,
        grants=Grants(
            # reads the dataset's size, weights, optimizer state and gradients; writes v+1
            tables={
                "runs": _READS_CONFIG,
                "tensors": _table(GET_ITEM, BATCH_GET_ITEM, PUT_ITEM),
            },
            objects={TENSORS: _objects(GET_OBJECT, PUT_OBJECT)},
        ),
    ),
    "EvaluateShards": FunctionSpec(
        handler="trainer.handlers.evaluate_shards.handler",
        memory_mb=names.FULL_VCPU_MEMORY_MB,  # the model and one chunk of 4,096 rows at a time; a vCPU
        timeout_s=900,
        scope=EPOCH,
        grants=Grants(
            # reads the weights (one bundle) and a group of shards' rows; writes per-shard sums
            # (scratch)
            tables={"runs": _READS_CONFIG, "tensors": _table(GET_ITEM, PUT_ITEM)},
            objects={ANY_KEY: _objects(GET_OBJECT), SCRATCH: _objects(PUT_OBJECT)},
        ),
    ),
    "Evaluate": FunctionSpec(
        handler="trainer.handlers.evaluate.handler",
        memory_mb=256,  # at most 40 small bundles of per-shard sums
        timeout_s=60,
        scope=EPOCH,
        grants=Grants(
            # reads the groups' sums; writes the epoch's metrics (write-once)
            tables={
                "runs": _table(GET_ITEM, PUT_ITEM),
                "tensors": _table(GET_ITEM, BATCH_GET_ITEM),
            },
            objects={TENSORS: _objects(GET_OBJECT)},
        ),
    ),
    "Finalize": FunctionSpec(
        handler="trainer.handlers.finalize.handler",
        memory_mb=1024,
        timeout_s=120,
        scope=RUN,
        grants=Grants(
            # reads the dataset's statistics, every epoch's metrics and the weights (one
            # bundle); writes the model files and the status
            tables={"runs": _table(GET_ITEM, PUT_ITEM, QUERY), "tensors": _table(GET_ITEM)},
            objects={TENSORS: _objects(GET_OBJECT), RUNS: _objects(PUT_OBJECT)},
        ),
    ),
    # The registry, after Export (trainer.registry): small records, no tensors.
    "Register": FunctionSpec(
        handler="trainer.handlers.register.handler",
        memory_mb=512,
        timeout_s=60,
        scope=RUN,
        grants=Grants(
            # reads the config, the dataset facts and every epoch's metrics; writes the model
            # version and the pipeline's index record (both write-once)
            tables={"runs": _table(GET_ITEM, PUT_ITEM, QUERY)},
        ),
    ),
    "Promote": FunctionSpec(
        handler="trainer.handlers.promote.handler",
        memory_mb=512,
        timeout_s=60,
        scope=RUN,
        grants=Grants(
            # reads the model versions and the production record; replaces the production record
            # (conditionally on its revision) and writes the decision; writes the S3 pointer
            tables={"runs": _table(GET_ITEM, PUT_ITEM)},
            objects={MODELS: _objects(PUT_OBJECT)},
        ),
    ),
    # The Training machine's failure paths (trainer.handlers.mark_failed): before its Fail state.
    "MarkFailed": FunctionSpec(
        handler="trainer.handlers.mark_failed.handler",
        memory_mb=256,  # the caught error (at most Step Functions' 32,768-character cause)
        timeout_s=30,
        scope=RUN,
        grants=Grants(
            # reads whether the run is recorded (its config); replaces its status record
            tables={"runs": _table(GET_ITEM, PUT_ITEM)},
        ),
    ),
    # Retraining (trainer.registry.retrain): the Retrain machine's claim and release steps.
    "Retrain": FunctionSpec(
        handler="trainer.handlers.retrain.handler",
        memory_mb=256,  # a pipeline's registry records and one config
        timeout_s=30,
        scope=TRIGGER,
        grants=Grants(
            # reads the pipeline's registry records (one Query) and the registered run's config;
            # replaces the pipeline's claim record (conditionally on its revision)
            tables={"runs": _table(GET_ITEM, PUT_ITEM, QUERY)},
        ),
    ),
    # Outside the workflow: the API (trainer.handlers.api) and the predictions (inference).
    "Api": FunctionSpec(
        handler="trainer.handlers.api.handler",
        memory_mb=512,
        timeout_s=30,  # API Gateway waits 29 s
        scope=REQUEST,
        grants=Grants(
            # a run's config, status, metrics and registry records; starts, lists and
            # describes Training executions
            tables={"runs": _table(GET_ITEM, QUERY)},
            machines={"Training": _machine(START_EXECUTION, LIST_EXECUTIONS, DESCRIBE_EXECUTION)},
        ),
    ),
    "Predict": FunctionSpec(
        handler="inference.handlers.online",
        memory_mb=1024,  # ~1 MB of weights for a 784-256-128-10 network (docs/inference.md)
        timeout_s=30,
        scope=REQUEST,
        package="inference",
        grants=Grants(objects={MODELS: _objects(GET_OBJECT), RUN_MODELS: _objects(GET_OBJECT)}),
    ),
    "PredictBatch": FunctionSpec(
        handler="inference.handlers.batch",
        memory_mb=1769,  # one vCPU; the batch limits follow the memory (inference.rows)
        timeout_s=900,
        scope=REQUEST,
        package="inference",
        grants=Grants(
            # the pointer, the model, the uploaded rows; writes the output or the error file
            # and deletes the other one of the pair
            objects={
                MODELS: _objects(GET_OBJECT),
                RUN_MODELS: _objects(GET_OBJECT),
                INFERENCE_IN: _objects(GET_OBJECT),
                INFERENCE_OUT: _objects(PUT_OBJECT, DELETE_OBJECT),
            }
        ),
    ),
}


def functions_in(loop: Loop, mode: Mode | None = None) -> tuple[str, ...]:
    """The functions that run in ``loop`` (and, for micro-batch functions, in ``mode`` if
    given), in :data:`FUNCTIONS` order."""
    return tuple(
        logical
        for logical, spec in FUNCTIONS.items()
        if spec.scope.loop == loop and (mode is None or spec.scope.mode == mode)
    )


def handler_module(logical: str) -> str:
    """The module a function's handler lives in, e.g. ``trainer.handlers.forward``."""
    return FUNCTIONS[logical].handler.rsplit(".", 1)[0]


def functions_of(package: Package) -> tuple[str, ...]:
    """The functions bundled from ``package``, in :data:`FUNCTIONS` order."""
    return tuple(logical for logical, spec in FUNCTIONS.items() if spec.package == package)


def in_workflow(logical: str) -> bool:
    """Whether the training workflow (a run's Training and Epoch executions) invokes the
    function: every scope but ``request`` and ``trigger`` (the Retrain machine's)."""
    return FUNCTIONS[logical].scope.loop not in ("request", "trigger")


def key_matches(prefix: str, key: str) -> bool:
    """Whether a grant's ``prefix`` covers ``key``, as IAM matches ``<prefix>*``: a ``*`` in
    the prefix matches any characters (``inference/*/in/`` covers ``inference/p/in/a.csv``)."""
    pattern = "".join(
        ".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", prefix)
    )
    return re.match(pattern, key, flags=re.DOTALL) is not None


# --- sizes overridden for one deployment or one run -------------------------------------------


class SizeOverrideError(ValueError):
    """An override names no function, or sizes one outside Lambda's limits."""


def size_overrides(
    size: Size, overrides: Mapping[str, object] | None, *, source: str
) -> dict[str, int]:
    """``overrides`` (logical function name -> MB or seconds) checked against :data:`FUNCTIONS`
    and Lambda's limits for ``size``: the one rule for the stack's CDK context
    (``-c memory={...}``) and ``stepnet local --function-memory NAME=MB``. ``source`` names
    where the overrides came from in the error (``context "memory"``, ``--function-memory``)."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise SizeOverrideError(f"{source} must map function names to integers, got {overrides!r}")
    low, high = SIZE_LIMITS[size]
    checked: dict[str, int] = {}
    for logical, amount in overrides.items():
        if logical not in FUNCTIONS:
            raise SizeOverrideError(
                f"{source}: unknown function {logical!r}; known: {sorted(FUNCTIONS)}"
            )
        if isinstance(amount, bool) or not isinstance(amount, int) or not low <= amount <= high:
            unit = "MB" if size == "memory" else "seconds"
            raise SizeOverrideError(
                f"{source}: {logical} must be an integer in [{low}, {high}] ({unit}), "
                f"got {amount!r}"
            )
        checked[logical] = amount
    return checked


def sized_functions(
    *, memory_mb: Mapping[str, int] | None = None, timeout_s: Mapping[str, int] | None = None
) -> dict[str, FunctionSpec]:
    """:data:`FUNCTIONS` with checked overrides (:func:`size_overrides`) applied."""
    return {
        logical: replace(
            spec,
            memory_mb=(memory_mb or {}).get(logical, spec.memory_mb),
            timeout_s=(timeout_s or {}).get(logical, spec.timeout_s),
        )
        for logical, spec in FUNCTIONS.items()
    }
