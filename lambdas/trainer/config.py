"""The run config: the user's contract, validated once at every edge.

A JSON document such as ``examples/digits.json``. Unknown fields are an error, not ignored, and
every error names the field and says what is allowed (see :func:`parse_config`).
"""

from __future__ import annotations

import json
import uuid
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainer.contract.names import HISTORY_EVENT_BUDGET, MAX_EPOCHS
from trainer.training.schedule import EVALUATION_EVENTS, events_per_step

RUN_ID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"
PIPELINE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # inference.pointer.PIPELINE_PATTERN (a test checks)
Metric = Literal["val_accuracy", "val_loss"]
MAX_BLOCK_ROWS = 65_536
Activation = Literal["relu", "tanh", "sigmoid", "softmax", "linear"]
Loss = Literal["cross_entropy", "mse"]
Init = Literal["xavier_uniform", "he", "xavier"]  # trainer.nn.initializers.INIT_SCHEMES
Mode = Literal["per_layer", "fused", "per_step"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DatasetConfig(_Strict):
    source: str = Field(
        description="builtin:digits; a .npz or .csv file (local path or s3:// URI); or a folder "
        "(local) or s3:// prefix ending in '/' holding .npz or .csv shards of one schema"
    )
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    label: str | None = Field(
        default=None, description="CSV only: the label column's name (default: the last column)"
    )
    block_rows: int | None = Field(
        default=None,
        ge=1,
        le=MAX_BLOCK_ROWS,
        strict=True,
        description="rows per block, the unit of the split, the shuffle and every read "
        "(default: batch_size // 8, at least 1); docs/data.md",
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        if source.startswith("builtin:"):
            if source != "builtin:digits":
                raise ValueError("the only builtin dataset is 'builtin:digits'")
            return source
        lowered = source.lower()
        if lowered.endswith((".npz", ".csv")):
            return source
        if source.startswith("s3://"):
            if source.endswith("/"):
                return source
        elif source.strip() and "." not in PurePosixPath(source.rstrip("/")).name:
            return source  # a local folder of shards
        raise ValueError(
            "must be 'builtin:digits', a .npz or .csv file, a folder of such shards, or an "
            "s3:// prefix of shards ending in '/'"
        )


class EvaluationConfig(_Strict):
    train_loss: Literal["final", "running"] = Field(
        default="final",
        description="final: the data loss of the epoch's final weights on the whole training "
        "part (reads the training part again each epoch); running: the example-weighted mean of "
        "the micro-batch losses the epoch trained on (reads nothing more)",
    )


class LayerConfig(_Strict):
    units: int = Field(ge=1, le=65_536, strict=True)
    activation: Activation


class ModelConfig(_Strict):
    layers: list[LayerConfig] = Field(min_length=1, max_length=64)
    init: Init = Field(
        default="xavier_uniform",
        description="weight initialization (trainer.nn.initializers): xavier_uniform (Glorot "
        "uniform, biases too, as scikit-learn), he (normal, sqrt(2/n_in)) or xavier (normal)",
    )

    @model_validator(mode="after")
    def _softmax_last_only(self) -> ModelConfig:
        for index, layer in enumerate(self.layers[:-1]):
            if layer.activation == "softmax":
                raise ValueError(
                    f"layers[{index}]: softmax is allowed on the last layer only; "
                    "use relu, tanh, sigmoid or linear for hidden layers"
                )
        return self


class OptimizerConfig(_Strict):
    name: Literal["sgd", "momentum", "adam"]
    learning_rate: float = Field(gt=0.0, le=10.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    epsilon: float = Field(default=1e-8, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _fields_of_this_optimizer(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = {
                "sgd": set(),
                "momentum": {"momentum"},
                "adam": {"beta1", "beta2", "epsilon"},
            }
            name = str(data.get("name"))
            # fields of another optimizer; anything else is left to the "unknown field" check
            misplaced = (set(data) & set().union(*allowed.values())) - allowed.get(name, set())
            if name in allowed and misplaced:
                raise ValueError(
                    f"{sorted(misplaced)} do not apply to optimizer '{name}'"
                    + (f"; it takes {sorted(allowed[name])}" if allowed[name] else "")
                )
        return data


class PromotionRule(_Strict):
    """When a run's model replaces its pipeline's production model (``trainer.registry``): when
    its final ``metric`` beats production's by more than ``margin`` (higher ``val_accuracy``,
    lower ``val_loss``). A pipeline without a production model takes the first one."""

    metric: Metric | None = Field(
        default=None,
        description="val_accuracy or val_loss; default: val_accuracy for cross_entropy, "
        "val_loss for mse",
    )
    margin: float = Field(default=0.0, ge=0.0, description="the improvement needed, >= 0")


class RunConfig(_Strict):
    run_id: Annotated[str, Field(pattern=RUN_ID_PATTERN)] = Field(
        default_factory=lambda: f"run-{uuid.uuid4().hex[:12]}"
    )
    pipeline: Annotated[str, Field(pattern=PIPELINE_PATTERN)] | None = Field(
        default=None,
        description="the model registry's pipeline the run's model is registered in (and may "
        "be promoted to serve); default: the run id",
    )
    promote_if: PromotionRule = Field(default_factory=PromotionRule)
    dataset: DatasetConfig
    model: ModelConfig
    loss: Loss
    optimizer: OptimizerConfig
    l2: float = Field(default=0.0, ge=0.0)
    epochs: int = Field(ge=1, le=MAX_EPOCHS, strict=True)
    batch_size: int = Field(ge=1, le=100_000, strict=True)
    workers: int = Field(default=1, ge=1, le=40, strict=True)
    seed: int = Field(default=0, ge=0, le=2**32 - 1, strict=True)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    mode: Mode = Field(
        default="per_layer",
        description="per_layer: one Lambda task per layer (inspect the network in the graph); "
        "fused: one task runs all layers of a micro-batch (faster, cheaper, same weights); "
        "per_step: one task runs a whole step, its micro-batches one after the other, and "
        "applies the update (cheapest, same weights)",
    )

    @model_validator(mode="after")
    def _a_step_fits_one_execution(self) -> RunConfig:
        events = events_per_step(workers=self.workers, layers=self.n_layers, mode=self.mode)
        budget = HISTORY_EVENT_BUDGET - EVALUATION_EVENTS
        if events > budget:
            raise ValueError(
                f"workers × layers: one step of {self.workers} workers through "
                f"{self.n_layers} layers in {self.mode} mode adds {events} events to an "
                f"execution's history (budget {budget} beside the evaluation's "
                f"{EVALUATION_EVENTS}, limit 25,000); use mode 'fused' or 'per_step', fewer "
                "workers or fewer layers"
            )
        return self

    @model_validator(mode="after")
    def _loss_matches_output(self) -> RunConfig:
        last = self.model.layers[-1].activation
        if self.loss == "cross_entropy" and last != "softmax":
            raise ValueError(
                "loss 'cross_entropy' needs a softmax last layer "
                f"(model.layers[-1].activation is '{last}')"
            )
        if self.loss == "mse" and last == "softmax":
            raise ValueError(
                "a softmax last layer needs loss 'cross_entropy'; for regression use 'mse' "
                "with a linear (or tanh/sigmoid) last layer"
            )
        return self

    @model_validator(mode="after")
    def _promotion_metric_exists(self) -> RunConfig:
        if self.promote_if.metric == "val_accuracy" and not self.is_classification:
            raise ValueError(
                "promote_if.metric: 'val_accuracy' needs loss 'cross_entropy' (classification); "
                "use 'val_loss' for loss 'mse'"
            )
        return self

    @property
    def pipeline_name(self) -> str:
        """The pipeline the run's model is registered in: ``pipeline``, else the run id."""
        return self.pipeline or self.run_id

    @property
    def promotion_metric(self) -> Metric:
        """``promote_if.metric``, else the loss's default: accuracy for classification."""
        if self.promote_if.metric is not None:
            return self.promote_if.metric
        return "val_accuracy" if self.is_classification else "val_loss"

    def to_json(self) -> str:
        """The config as the user wrote it (defaults left out) with its run_id: what the store
        keeps and what ``parse_config`` reads back into an equal config."""
        document = self.model_dump(mode="json", exclude_unset=True) | {"run_id": self.run_id}
        return json.dumps(document, sort_keys=True)

    @property
    def is_classification(self) -> bool:
        return self.loss == "cross_entropy"

    @property
    def n_layers(self) -> int:
        return len(self.model.layers)

    @property
    def block_rows(self) -> int:
        """``dataset.block_rows``, else ``batch_size // 8`` (at least 1): a micro-batch then
        reads about 8 blocks (docs/data.md)."""
        if self.dataset.block_rows is not None:
            return self.dataset.block_rows
        return max(1, self.batch_size // 8)


class ConfigError(ValueError):
    """A run config that cannot be used; the message names every bad field. ``problems``: one
    line per bad field (``"model.layers.0.units: …"``), as the API's 400 lists them."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(config)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field; remove it (check its spelling against the README)"
    return f"{where}: {message}"


def parse_config(document: str | bytes | dict[str, Any]) -> RunConfig:
    """Validate a run config given as JSON text or a dict.

    Raises ConfigError whose message lists each bad field, what was given and what is allowed.
    """
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            raise ConfigError(f"the config is not valid JSON: {error}") from error
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"the config is not UTF-8 text ({error}); save it as UTF-8 JSON"
            ) from None
        except ValueError as error:  # e.g. an integer of more than 4,300 digits
            raise ConfigError(f"the config is not usable JSON: {error}") from None
        except RecursionError:
            raise ConfigError(
                "the config is not usable JSON: it nests arrays or objects too deeply"
            ) from None
    if not isinstance(document, dict):
        raise ConfigError("the config must be a JSON object")
    try:
        return RunConfig.model_validate(document)
    except ValidationError as error:
        lines = [_describe(e) for e in error.errors()]
        raise ConfigError("invalid run config:\n  " + "\n  ".join(lines), lines) from None


def check_execution_name(config: RunConfig, execution_name: str) -> None:
    """A run's Training execution is named after the run, so clients find one from the other."""
    if config.run_id != execution_name:
        raise ConfigError(
            f"run_id: the config says {config.run_id!r} but the execution is named "
            f"{execution_name!r}; start the execution with --name {config.run_id} "
            "(or leave run_id out of the config)"
        )
