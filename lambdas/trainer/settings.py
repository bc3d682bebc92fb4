"""What a handler's container is configured with: its environment, validated once, and the store
built from it (misconfiguration fails fast, with the variables named).

The local engine and the tests may :func:`install` a store of their own (for example one with a
meter observing it); handlers always ask :func:`store`.
"""

from __future__ import annotations

import os
from functools import lru_cache

import boto3
from botocore.config import Config

from trainer.contract.environment import ApiEnvironment, FunctionEnvironment, Limits
from trainer.executions import Executions
from trainer.store import Store

_installed: Store | None = None


@lru_cache(maxsize=1)
def environment() -> FunctionEnvironment:
    """This container's environment, validated on first use."""
    return FunctionEnvironment.from_env(os.environ)


@lru_cache(maxsize=1)
def limits() -> Limits:
    """The tunable limits (history budget, inline limit, scratch TTL): set in the environment or
    the contract's defaults, so logic that needs one runs anywhere (the cost model, tests)."""
    return Limits.from_env(os.environ)


def store() -> Store:
    """The store for this container: the installed one, else built once from the environment
    (boto3 clients are thread-safe)."""
    global _installed
    if _installed is None:
        _installed = build_store(environment())
    return _installed


def build_store(env: FunctionEnvironment) -> Store:
    """A store over DynamoDB and S3 (whatever endpoint boto3 is configured for)."""
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=50)
    return Store.from_clients(
        boto3.client("dynamodb", config=config),
        boto3.client("s3", config=config),
        runs_table=env.runs_table,
        tensors_table=env.tensors_table,
        bucket=env.bucket,
        scratch_ttl_seconds=env.scratch_ttl_hours * 3600,
        inline_limit=env.inline_limit_bytes,
    )


def install(new_store: Store | None) -> None:
    """Use ``new_store`` for every handler from now on; ``None`` forgets the store and the
    environment (the next call reads both again)."""
    global _installed
    _installed = new_store
    if new_store is None:
        environment.cache_clear()
        limits.cache_clear()
        executions.cache_clear()


@lru_cache(maxsize=1)
def executions() -> Executions:
    """The Training executions, for a function that starts and follows runs (the API): the
    machine's ARN from its environment (``ApiEnvironment``), validated on first use."""
    env = ApiEnvironment.from_env(os.environ)
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    client = boto3.client("stepfunctions", config=config)
    return Executions(client, training_arn=env.training_state_machine_arn)
