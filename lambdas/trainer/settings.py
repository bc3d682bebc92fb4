"""The handlers' environment, validated once per container (misconfiguration fails fast)."""

from __future__ import annotations

import os
from functools import lru_cache

import boto3
from botocore.config import Config
from pydantic import BaseModel, Field, ValidationError

from trainer.contract import names
from trainer.store import Store


class Settings(BaseModel):
    runs_table: str = Field(min_length=3)
    tensors_table: str = Field(min_length=3)
    bucket: str = Field(min_length=3)
    scratch_ttl_hours: int = Field(default=names.SCRATCH_TTL_HOURS, ge=1)

    @classmethod
    def from_environment(cls) -> Settings:
        variables = {
            "runs_table": names.ENV_RUNS_TABLE,
            "tensors_table": names.ENV_TENSORS_TABLE,
            "bucket": names.ENV_BUCKET,
            "scratch_ttl_hours": names.ENV_SCRATCH_TTL_HOURS,
        }
        values = {field: os.environ[env] for field, env in variables.items() if env in os.environ}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            missing = [variables[str(e["loc"][0])] for e in error.errors()]
            raise RuntimeError(
                f"the function's environment is incomplete or invalid: {', '.join(missing)} "
                "(the stack and the local engine set them from trainer.contract.names)"
            ) from None


@lru_cache(maxsize=1)
def store() -> Store:
    """The store for this container, built once (boto3 clients are thread-safe)."""
    settings = Settings.from_environment()
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=50)
    return Store.from_clients(
        boto3.client("dynamodb", config=config),
        boto3.client("s3", config=config),
        runs_table=settings.runs_table,
        tensors_table=settings.tensors_table,
        bucket=settings.bucket,
        scratch_ttl_seconds=settings.scratch_ttl_hours * 3600,
    )
