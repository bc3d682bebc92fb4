"""The functions' environment: one typed model, written by the stack and the engine, read by the
handlers.

``FunctionEnvironment.to_env()`` gives the variables the stack (``infra/functions.py``) and the
local engine (``stepnet/engine/account.py``) set on every function of the ``trainer`` package;
``from_env()`` validates them once per container (``trainer.settings``). A function granted Step
Functions actions (the API) also gets the Training machine's ARN (:class:`ApiEnvironment`). A
variable is named here and nowhere else, but for the prediction functions': they run the
numpy-only ``inference`` package, which cannot import pydantic, so ``inference.settings`` names
theirs (the bucket's variable is this module's, a test checks it); which function gets which
environment: ``trainer.contract.wiring``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainer.contract import names

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# What each field is called in the environment.
VARIABLES: Final[Mapping[str, str]] = {
    "runs_table": "STEPNET_RUNS_TABLE",
    "tensors_table": "STEPNET_TENSORS_TABLE",
    "bucket": "STEPNET_BUCKET",
    "scratch_ttl_hours": "STEPNET_SCRATCH_TTL_HOURS",
    "inline_limit_bytes": "STEPNET_INLINE_LIMIT_BYTES",
    "history_event_budget": "STEPNET_HISTORY_EVENT_BUDGET",
    "training_state_machine_arn": "STEPNET_TRAINING_STATE_MACHINE_ARN",
    "service_name": "POWERTOOLS_SERVICE_NAME",
    "metrics_namespace": "POWERTOOLS_METRICS_NAMESPACE",
    "log_level": "POWERTOOLS_LOG_LEVEL",
}


class MisconfiguredError(RuntimeError):
    """The function's environment is incomplete or invalid (a deployment mistake)."""


class Limits(BaseModel):
    """The limits a deployment (or a test) may tune; each has the contract's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scratch_ttl_hours: int = Field(default=names.SCRATCH_TTL_HOURS, ge=1)
    inline_limit_bytes: int = Field(
        default=names.INLINE_LIMIT_BYTES, ge=0, le=names.MAX_INLINE_LIMIT_BYTES
    )
    history_event_budget: int = Field(
        default=names.HISTORY_EVENT_BUDGET, ge=1, lt=names.HISTORY_EVENT_LIMIT
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Limits:
        """The limits set in ``environ``, defaults for the rest."""
        fields = cls.model_fields.keys()
        return _validated(
            cls, {f: environ[VARIABLES[f]] for f in fields if VARIABLES[f] in environ}
        )


class FunctionEnvironment(Limits):
    """Every function's environment (the same for all of them)."""

    runs_table: str = Field(min_length=3, max_length=255)
    tensors_table: str = Field(min_length=3, max_length=255)
    bucket: str = Field(min_length=3, max_length=63)
    service_name: str = names.SERVICE_NAME
    # the stack's custom metrics (trainer.contract.monitoring.metrics_namespace of its name)
    metrics_namespace: str = Field(default=names.SERVICE_NAME, min_length=1, max_length=255)
    log_level: LogLevel = "INFO"

    def to_env(self) -> dict[str, str]:
        """The variables, as strings, for a function's configuration."""
        return {VARIABLES[field]: str(value) for field, value in self.model_dump().items()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> FunctionEnvironment:
        """Validate ``environ`` (``os.environ``); the error names each bad variable. Only this
        model's variables are read (the local engine runs every function in one environment)."""
        return _validated(cls, _values(cls, environ))


class ApiEnvironment(FunctionEnvironment):
    """The environment of a function that starts and follows runs (the API): every function's,
    and the ARN of the Training state machine."""

    training_state_machine_arn: str = Field(min_length=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ApiEnvironment:
        return _validated(cls, _values(cls, environ))


def _values(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, str]:
    return {f: environ[VARIABLES[f]] for f in model.model_fields if VARIABLES[f] in environ}


Model = TypeVar("Model", bound=BaseModel)


def _validated(model: type[Model], values: Mapping[str, str]) -> Model:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = ", ".join(f"{VARIABLES[str(e['loc'][0])]} ({e['msg']})" for e in error.errors())
        raise MisconfiguredError(
            f"the function's environment is incomplete or invalid: {problems} "
            "(the stack and the local engine set it from trainer.contract.environment)"
        ) from None
