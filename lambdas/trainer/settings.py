"""What a handler's container is configured with: its environment, validated once, and the store
built from it (misconfiguration fails fast, with the variables named).

The local engine and the tests may :func:`install` a store of their own (for example one with a
meter observing it); handlers always ask :func:`store`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

import boto3
from botocore.config import Config

from trainer.contract.environment import VARIABLES, ApiEnvironment, FunctionEnvironment, Limits
from trainer.executions import Executions
from trainer.store import DEFAULT_CACHE_BYTES, Store

LAMBDA_MEMORY_VARIABLE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"  # set by Lambda: the function's MB
CACHE_FRACTION = 8

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


def cache_bytes(environ: Mapping[str, str] = os.environ) -> int:
    """The store's cache of immutable bundles: at most an eighth of the function's memory
    (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, which Lambda sets), and the store's default at most:
    the memory formula of docs/data.md (``trainer.training.memory``) counts on it."""
    memory_mb = environ.get(LAMBDA_MEMORY_VARIABLE)
    if memory_mb is None or not memory_mb.isdigit():
        return DEFAULT_CACHE_BYTES
    return min(DEFAULT_CACHE_BYTES, int(memory_mb) * 1024 * 1024 // CACHE_FRACTION)


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
        cache_bytes=cache_bytes(),
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


LAMBDA_FUNCTION_VARIABLE = "AWS_LAMBDA_FUNCTION_NAME"  # set by Lambda (and the engine's sandboxes)


def metrics_target(environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """(namespace, service) of the function's EMF metrics (``trainer.metrics``), or None where no
    Lambda runs the handler (the cost model's dry run, in-process tests): EMF is a log format
    that only CloudWatch Logs reads. Powertools' own ``POWERTOOLS_METRICS_DISABLED`` still
    applies (the local engine sets it: its sandboxes' stdout is the caller's terminal)."""
    if not environ.get(LAMBDA_FUNCTION_VARIABLE):
        return None
    defaults = FunctionEnvironment.model_fields
    namespace = environ.get(VARIABLES["metrics_namespace"]) or str(
        defaults["metrics_namespace"].default
    )
    service = environ.get(VARIABLES["service_name"]) or str(defaults["service_name"].default)
    return namespace, service
