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
}

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

    def to_env(self) -> dict[str, str]:
        """The variables the stack sets (Lambda sets the memory itself)."""
        return {
            VARIABLES["bucket"]: self.bucket,
            VARIABLES["pointer_ttl_seconds"]: repr(self.pointer_ttl_seconds),
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
        return cls(bucket=bucket, pointer_ttl_seconds=ttl, memory_mb=int(memory))


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
