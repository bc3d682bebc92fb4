"""The local engine: the real ASL files and handlers on moto's Step Functions interpreter.

No AWS account, no Docker, no network: an emulated account with the same tables, bucket,
function names, environment and state machines as the deployed stack, driven through boto3.
"""

from stepnet.engine.account import LocalAccount
from stepnet.engine.runtime import LambdaRuntime

__all__ = ["LambdaRuntime", "LocalAccount"]
