"""The local engine: the real ASL files and handlers on moto's Step Functions interpreter.

No AWS account, no Docker, no network: an emulated account with the same tables, bucket,
function names, sizes, environment and state machines as the deployed stack, driven through
boto3; each function runs in warm worker processes held to its memory and timeout (docs/engine.md).

The names are imported lazily: a worker process (``stepnet.engine.sandbox``) is a Lambda
sandbox and must not load moto and the interpreter that importing the account brings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepnet.engine.account import LocalAccount
    from stepnet.engine.runtime import LambdaRuntime

__all__ = ["LambdaRuntime", "LocalAccount"]


def __getattr__(name: str) -> Any:
    if name == "LocalAccount":
        from stepnet.engine.account import LocalAccount

        return LocalAccount
    if name == "LambdaRuntime":
        from stepnet.engine.runtime import LambdaRuntime

        return LambdaRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
