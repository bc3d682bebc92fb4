"""The inference function's environment, read once per container.

=================================  ========================================================
variable                           meaning
=================================  ========================================================
``STEPNET_BUCKET``                 the stack's bucket: pointers, models, batch files
                                   (the same variable as the training functions',
                                   ``trainer.contract.environment.VARIABLES["bucket"]``)
``STEPNET_POINTER_TTL_SECONDS``    how long a container trusts the production pointer it
                                   read before reading it again (default 5; 0 = every call)
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``  set by Lambda; sizes the batch limits (default 1769)
``POWERTOOLS_METRICS_NAMESPACE``   the stack's metrics (``trainer.contract.monitoring``), and
``POWERTOOLS_SERVICE_NAME``        their ``service`` dimension (the training functions' too)
=================================  ========================================================

Defined here rather than in ``trainer.contract.environment`` because that module needs pydantic,
which the numpy-only inference bundle does not ship; the contract should absorb these names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from inference.rows import DEFAULT_MEMORY_MB

VARIABLES: Final[Mapping[str, str]] = {
    "bucket": "STEPNET_BUCKET",
    "pointer_ttl_seconds": "STEPNET_POINTER_TTL_SECONDS",
    "memory_mb": "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "metrics_namespace": "POWERTOOLS_METRICS_NAMESPACE",
    "service_name": "POWERTOOLS_SERVICE_NAME",
}
DEFAULT_SERVICE_NAME: Final = "stepnet"  # trainer.contract.names.SERVICE_NAME (a test checks)

DEFAULT_POINTER_TTL_SECONDS: Final = 5.0
"""A promotion reaches every warm container within this long; reading the pointer on every
call instead would add an S3 GET (~10-30 ms) to each request's latency."""


class MisconfiguredError(RuntimeError):
    """The function's environment is incomplete or invalid (a deployment mistake)."""


@dataclass(frozen=True)
class InferenceEnvironment:
    """What the inference function is configured with."""

    bucket: str
    pointer_ttl_seconds: float = DEFAULT_POINTER_TTL_SECONDS
    memory_mb: int = DEFAULT_MEMORY_MB
    metrics_namespace: str = DEFAULT_SERVICE_NAME
    service_name: str = DEFAULT_SERVICE_NAME

    def to_env(self) -> dict[str, str]:
        """The variables the stack sets (Lambda sets the memory itself)."""
        return {
            VARIABLES["bucket"]: self.bucket,
            VARIABLES["pointer_ttl_seconds"]: repr(self.pointer_ttl_seconds),
            VARIABLES["metrics_namespace"]: self.metrics_namespace,
            VARIABLES["service_name"]: self.service_name,
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> InferenceEnvironment:
        """Read and check ``environ`` (``os.environ``); the error names each bad variable."""
        problems = []
        bucket = environ.get(VARIABLES["bucket"], "")
        if not 3 <= len(bucket) <= 63:
            problems.append(f"{VARIABLES['bucket']} (a bucket name, got {bucket!r})")
        ttl = _number(environ, "pointer_ttl_seconds", DEFAULT_POINTER_TTL_SECONDS, problems)
        memory = _number(environ, "memory_mb", DEFAULT_MEMORY_MB, problems)
        if problems:
            raise MisconfiguredError(
                "the inference function's environment is incomplete or invalid: "
                + ", ".join(problems)
            )
        return cls(
            bucket=bucket, pointer_ttl_seconds=ttl, memory_mb=int(memory),
            metrics_namespace=environ.get(VARIABLES["metrics_namespace"]) or DEFAULT_SERVICE_NAME,
            service_name=environ.get(VARIABLES["service_name"]) or DEFAULT_SERVICE_NAME,
        )  # fmt: skip


def _number(environ: Mapping[str, str], field: str, default: float, problems: list[str]) -> float:
    name = VARIABLES[field]
    if name not in environ:
        return default
    try:
        value = float(environ[name])
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        problems.append(f"{name} (a number >= 0, got {environ[name]!r})")
        return default
    return value
