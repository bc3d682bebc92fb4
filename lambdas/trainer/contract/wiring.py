"""What the stack and the local engine give each function beyond its spec: its environment.

* ``trainer`` functions get :class:`~trainer.contract.environment.FunctionEnvironment`'s
  variables, and a function granted Step Functions actions (the API) also the Training
  machine's ARN (:class:`~trainer.contract.environment.ApiEnvironment`);
* ``inference`` functions get ``inference.settings.InferenceEnvironment``'s: the bucket and the
  production pointer's TTL (Lambda sets the memory variable itself).

The stack (``infra/functions.py``) and the engine (``stepnet/engine/account.py``) both call
:func:`function_environment`; ``tests/engine/test_engine_matches_stack.py`` compares the results.
Not shipped to Lambda (it reads the function table).
"""

from __future__ import annotations

from inference.settings import DEFAULT_POINTER_TTL_SECONDS, InferenceEnvironment
from trainer.contract.environment import ApiEnvironment, FunctionEnvironment
from trainer.contract.functions import FUNCTIONS


def function_environment(
    logical: str,
    common: FunctionEnvironment,
    *,
    training_state_machine_arn: str | None = None,
    pointer_ttl_seconds: float = DEFAULT_POINTER_TTL_SECONDS,
) -> dict[str, str]:
    """The variables of function ``logical``, from the environment every ``trainer`` function
    gets (``common``), the Training machine's ARN (for the functions that start runs) and the
    pointer TTL (for the prediction functions)."""
    spec = FUNCTIONS[logical]
    if spec.package == "inference":
        return InferenceEnvironment(
            bucket=common.bucket, pointer_ttl_seconds=pointer_ttl_seconds,
            metrics_namespace=common.metrics_namespace, service_name=common.service_name,
        ).to_env()  # fmt: skip
    machines = set(spec.grants.machines)
    if not machines:
        return common.to_env()
    if machines != {"Training"}:
        raise ValueError(f"{logical}: only the Training machine's ARN is wired, not {machines}")
    if training_state_machine_arn is None:
        raise ValueError(f"{logical} needs the Training state machine's ARN")
    return ApiEnvironment(
        **common.model_dump(), training_state_machine_arn=training_state_machine_arn
    ).to_env()
