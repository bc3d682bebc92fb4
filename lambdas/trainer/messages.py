"""Typed messages of the handlers (their inputs and results): what travels through Step Functions
state, and the per-epoch metrics rows.

Only small scalars and keys travel; tensors stay in the store. Every model forbids unknown fields
so that a drift between the ASL files and the handlers fails loudly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainer.config import Mode


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InitializeRequest(_Message):
    """Input of ``Initialize``: the user's run config as given to the Training execution."""

    config: dict[str, Any]
    execution_name: str


class RunProgress(_Message):
    """Result of ``Initialize`` and ``Evaluate``: where the run stands before the next epoch."""

    run_id: str
    epochs: int
    epoch: int = Field(description="the next epoch to train (1-based)")
    epoch_name: str = Field(description="execution name of the next epoch: <run_id>-epoch-<NNN>")
    version: int = Field(description="the weights version the next epoch starts from")
    done: bool = False
    metrics: dict[str, float | int] | None = None


class EpochStart(_Message):
    """Input of ``Plan``."""

    run_id: str
    epoch: int
    version: int


class Cursor(_Message):
    """The position of an epoch execution: the next step to train and how to train it.

    ``microbatches`` lists the next step's micro-batch indices (the Map's items);
    ``chunk_full`` tells the epoch execution to continue in a new execution named
    ``continuation_name`` so that its history stays far from the 25,000-event limit.
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
    loss: float | None = Field(default=None, description="the micro-batch's loss, set by Loss")


class EpochEnd(_Message):
    """Input of ``Evaluate``: the epoch just trained and the weights version it ended on."""

    run_id: str
    epoch: int
    version: int


class FinalizeRequest(_Message):
    run_id: str
    version: int


class EpochMetrics(_Message):
    """One row of ``metrics.json``: the data loss (no L2) of the epoch's final weights on the
    whole training and validation parts, the validation accuracy for classification, and the
    weights version the epoch ended on (the pipeline records it; the reference leaves it out)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float | None = None
    version: int | None = None

    def row(self) -> dict[str, float | int]:
        """The row as written to ``metrics.json`` (absent fields left out)."""
        return self.model_dump(exclude_none=True)


class RunSummary(_Message):
    """Result of ``Finalize`` and so of the Training execution."""

    run_id: str
    status: Literal["SUCCEEDED"]
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
