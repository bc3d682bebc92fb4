"""Typed messages of the handlers (their inputs and results): what travels through Step Functions
state, and the per-epoch metrics rows.

Only small scalars and keys travel; tensors stay in the store. Every model forbids unknown fields
so that a drift between the ASL files and the handlers fails loudly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainer.config import Mode
from trainer.data.shards import Schema
from trainer.training.divergence import Divergence


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InitializeRequest(_Message):
    """Input of ``Initialize``: the user's run config as given to the Training execution."""

    config: dict[str, Any]
    execution_name: str


class RunPlan(_Message):
    """Result of ``Initialize``: the validated config and how the shard passes are cut."""

    run_id: str
    config: dict[str, Any] = Field(description="the validated config, run_id included")
    shards: int = Field(description="the dataset's shards (files)")
    groups: list[int] = Field(description="the shard groups: one Map iteration each")
    parallel: int = Field(description="the shard Maps' MaxConcurrency (the config's workers)")


class ShardGroupTask(_Message):
    """Input of ``CheckShards``: one group of consecutive shards of the run's dataset."""

    run_id: str
    config: dict[str, Any]
    group: int


class ShardCheck(_Message):
    """Result of ``CheckShards``: the group's shards are readable and fit the model; their one
    schema (``shard_schema``, named by the group's first shard), their rows, in shard order, and
    (classification) their distinct classes, sorted: at most ``model.layers[-1].units`` of them
    (CheckShards refuses more), so that PrepareShards checks the whole dataset's classes before
    it writes anything."""

    group: int
    first: str
    shard_schema: Schema
    rows: list[int]
    classes: list[int] | None = None


class PrepareTask(_Message):
    """Input of ``PrepareShards``: a group, and every group's check (the split needs them all)."""

    run_id: str
    config: dict[str, Any]
    group: int
    checks: list[ShardCheck]


class StartRequest(_Message):
    """Input of ``Start``: the checks (rows and schema of every shard)."""

    run_id: str
    checks: list[ShardCheck]


class ResumeRequest(_Message):
    """Input of ``Resume``: continue run ``run_id`` from its last complete weights version, as
    its ``attempt``-th resume (which names the epoch execution it starts)."""

    run_id: str
    attempt: int = Field(ge=1)


class RunProgress(_Message):
    """Result of ``Start`` and ``Evaluate``: where the run stands before the next epoch."""

    run_id: str
    epochs: int
    epoch: int = Field(description="the next epoch to train (1-based)")
    epoch_name: str = Field(description="execution name of the next epoch: <run_id>-epoch-<NNN>")
    version: int = Field(description="the weights version the next epoch starts from")
    done: bool = False
    metrics: dict[str, float | int] | None = None
    attempt: int = Field(default=0, description="the resume that continues this epoch (0: none)")


class EpochStart(_Message):
    """Input of ``Plan``."""

    run_id: str
    epoch: int
    version: int
    attempt: int = 0  # a resumed run's epoch: it may start after its first step


class Cursor(_Message):
    """The position of an epoch execution: the next step to train and how to train it.

    ``microbatches`` lists the next step's micro-batch indices (the Map's items);
    ``chunk_full`` ends the running Express chunk of steps (``chunk_steps`` steps from
    ``chunk_start``), after which the epoch execution starts the next one, named
    ``continuation_name`` (part ``part``);
    ``loss_sum`` sums the trained micro-batches' losses × examples so far this epoch;
    ``losses`` are the last trained step's micro-batch losses, in worker order (a chunk's
    output carries them to the epoch's Standard history, where ``stepnet watch`` reads them);
    ``groups`` are the evaluation Map's items (groups of shards).
    """

    run_id: str
    epoch: int
    step: int
    steps: int
    version: int
    layers: int
    workers: int
    mode: Mode
    microbatches: list[int]
    chunk_start: int
    chunk_steps: int
    part: int
    continuation_name: str
    done: bool
    chunk_full: bool
    loss_sum: float = 0.0
    losses: list[float] = Field(default_factory=list)
    groups: list[int] = Field(default_factory=list)
    attempt: int = 0  # the resume that runs this epoch (its executions' names)


class StepEnd(_Message):
    """Input of ``Update``: the cursor of the step just trained and the loss of each of its
    micro-batches, in worker order (the Map's results; null: not finite)."""

    cursor: Cursor
    losses: list[float | None]


class MicroBatchTask(_Message):
    """Input of ``Forward``, ``Loss``, ``Backward`` and ``Gradients``: one micro-batch of one step,
    at one layer (1-based). Each handler returns the task for the next state (``layer`` moved on)
    plus ``key``, the store key it wrote."""

    run_id: str
    epoch: int
    step: int
    version: int
    microbatch: int
    layer: int
    layers: int
    mode: Mode
    key: str | None = None
    loss: float | None = Field(
        default=None,
        description="the micro-batch's loss, set by Loss (Gradients fused); null if it is not "
        "finite (trainer.training.divergence.travelling_loss)",
    )


class EvaluationTask(_Message):
    """Input of ``EvaluateShards``: one group of shards to evaluate the epoch's final weights on."""

    run_id: str
    epoch: int
    version: int
    group: int


class EpochEnd(_Message):
    """Input of ``Evaluate``: the epoch just trained, the weights version it ended on and the
    sum of its micro-batches' losses × examples (for ``evaluation.train_loss: running``)."""

    run_id: str
    epoch: int
    version: int
    loss_sum: float = 0.0
    attempt: int = 0  # the resume that trains the run (the next epoch's execution name)


class FinalizeRequest(_Message):
    """Input of ``Finalize``: the weights version to export; ``diverged`` when the divergence
    guard stopped the run (``version`` is then its last good one, and the run stays FAILED)."""

    run_id: str
    version: int
    diverged: Divergence | None = None


class CaughtError(_Message):
    """What a Catch puts at its ResultPath: the error's name and its cause (a Lambda error's
    cause is its JSON error document; a failed child execution's, its description)."""

    error: str = Field(alias="Error")
    cause: str | None = Field(default=None, alias="Cause")


class FailRequest(_Message):
    """Input of ``MarkFailed``: the failed Training execution's name and input (a run config, or
    a resume's ``{"resume": {"run_id", "attempt"}}``: which run it trained,
    ``trainer.dal.failed_run``) and the caught error."""

    execution_name: str
    execution_input: Any
    error: CaughtError


class RunFailure(_Message):
    """Result of ``MarkFailed``: the run it marked FAILED (None: the execution recorded no run,
    e.g. refused before anything was written), its readable cause, and where it diverged if it
    did."""

    run_id: str | None
    cause: str
    diverged: Divergence | None = None


class EpochMetrics(_Message):
    """One row of ``metrics.json``: the data loss (no L2) of the epoch's final weights on the
    whole validation part and on the whole training part (or, with ``evaluation.train_loss:
    running``, the example-weighted mean of the losses the epoch trained on), the validation
    accuracy for classification, and the weights version the epoch ended on (the pipeline
    records it; the reference leaves it out)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float | None = None
    version: int | None = None

    def row(self) -> dict[str, float | int]:
        """The row as written to ``metrics.json`` (absent fields left out)."""
        return self.model_dump(exclude_none=True)


class RunSummary(_Message):
    """Result of ``Finalize`` and so of the Training execution (``status`` a
    ``trainer.store.runs`` status: SUCCEEDED, or FAILED for a diverged run's last good model)."""

    run_id: str
    status: str
    epochs: int
    version: int
    model_uri: str
    metrics: dict[str, float | int]


class RegisterRequest(_Message):
    """Input of ``Register``: the finished run and the weights version it exported."""

    run_id: str
    version: int


class ModelRegistered(_Message):
    """Result of ``Register``: the model version recorded in the pipeline."""

    pipeline: str
    run_id: str
    version: int
    metrics: dict[str, float | int]


class PromoteRequest(_Message):
    """Input of ``Promote``: the registered model to consider for production."""

    pipeline: str
    run_id: str


class PromotionDecision(_Message):
    """Result of ``Promote``: whether the model became its pipeline's production model, why, and
    what was compared (``production``: the served model before, with its value of ``metric``)."""

    pipeline: str
    run_id: str
    version: int
    promoted: bool
    reason: str
    metric: str
    candidate: float | None
    production: dict[str, Any] | None


class RetrainRequest(_Message):
    """The Retrain machine's input to its function: ``claim`` with the execution's input (an S3
    event through EventBridge, or a schedule's input), or ``release`` of a pipeline's run."""

    action: Literal["claim", "release"]
    execution_name: str
    trigger: dict[str, Any] | None = None
    pipeline: str | None = None
    run_id: str | None = None


class RetrainClaim(_Message):
    """What the Retrain machine does next (``trainer.registry.retrain.Outcome``): ``run`` the
    Training execution ``run_id`` with ``config``, or nothing (``pending``, ``ignored``,
    ``done``), and why."""

    action: Literal["run", "pending", "ignored", "done"]
    reason: str
    pipeline: str | None = None
    run_id: str | None = None
    config: dict[str, Any] | None = None
