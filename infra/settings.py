"""A deployment's settings, checked before anything is built: the stack's name and its CDK context.

Each setting comes from ``cdk.json`` or ``-c key=value`` (a string then) and has the contract's
default when unset. A bad one stops the synth with :class:`DeploySettingError`, naming the
setting, what is wrong and how to set it — rather than CloudFormation refusing a function name
halfway through a deployment, or pydantic's message about a model the user never wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, get_args

from trainer.contract import names
from trainer.contract.environment import LogLevel
from trainer.contract.functions import FUNCTIONS
from trainer.contract.statemachines import STATE_MACHINES

MEMORY_CONTEXT: Final = "memory"  # {"Forward": 2048}: MB per function
TIMEOUT_CONTEXT: Final = "timeout"  # {"Forward": 300}: seconds per function
LOG_LEVEL_CONTEXT: Final = "log_level"  # the functions' POWERTOOLS_LOG_LEVEL
SCRATCH_TTL_HOURS_CONTEXT: Final = "scratch_ttl_hours"  # scratch lifetime: DynamoDB TTL, S3 rule
STACK_NAME_CONTEXT: Final = "stack_name"  # app.py's stack (and every resource name's prefix)

# AWS's limits on the names made from the stack's: CloudFormation stack names, Lambda function
# names (64) and Step Functions state machine names (80).
STACK_NAME_PATTERN: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
STACK_NAME_LIMIT: Final = 128
FUNCTION_NAME_LIMIT: Final = 64
STATE_MACHINE_NAME_LIMIT: Final = 80
SCRATCH_TTL_HOURS_LIMIT: Final = 24 * 365  # a year: scratch is a step's, not an archive


class DeploySettingError(ValueError):
    """A deployment setting that cannot be deployed: the message names it and the fix."""


@dataclass(frozen=True)
class DeploySettings:
    """The settings the stack reads besides the function sizes (``infra.functions``)."""

    log_level: LogLevel | None = None  # None: the contract's default
    scratch_ttl_hours: int | None = None


def longest_name_allowed() -> int:
    """The longest stack name whose function and state machine names stay within AWS's limits."""
    by_functions = FUNCTION_NAME_LIMIT - max(len(names.function_name("", f)) for f in FUNCTIONS)
    by_machines = STATE_MACHINE_NAME_LIMIT - max(
        len(names.state_machine_name("", m)) for m in STATE_MACHINES
    )
    return min(STACK_NAME_LIMIT, by_functions, by_machines)


def check_stack_name(stack_name: str) -> str:
    """``stack_name`` if every name made from it is valid on AWS."""
    fix = f"choose another with -c {STACK_NAME_CONTEXT}=NAME (cdk.json's context)"
    if not STACK_NAME_PATTERN.fullmatch(stack_name):
        raise DeploySettingError(
            f"stack name {stack_name!r} must start with a letter and hold only letters, digits "
            f"and hyphens (a CloudFormation stack name); {fix}"
        )
    longest = longest_name_allowed()
    if len(stack_name) > longest:
        function = max(FUNCTIONS, key=len)
        raise DeploySettingError(
            f"stack name {stack_name!r} is {len(stack_name)} characters; at most {longest} keep "
            f"every function name within Lambda's {FUNCTION_NAME_LIMIT} "
            f"({names.function_name(stack_name, function)!r} would be "
            f"{len(names.function_name(stack_name, function))}); {fix}"
        )
    return stack_name


def read_settings(context: Callable[[str], Any]) -> DeploySettings:
    """The settings from CDK context (``node.try_get_context``), checked."""
    return DeploySettings(
        log_level=_log_level(context(LOG_LEVEL_CONTEXT)),
        scratch_ttl_hours=_scratch_ttl_hours(context(SCRATCH_TTL_HOURS_CONTEXT)),
    )


def _log_level(value: Any) -> LogLevel | None:
    if value is None:
        return None
    levels: tuple[LogLevel, ...] = get_args(LogLevel)
    for level in levels:
        if isinstance(value, str) and value.upper() == level:
            return level
    raise DeploySettingError(
        f"context {LOG_LEVEL_CONTEXT!r} is {value!r}; it must be one of {', '.join(levels)} "
        f"(e.g. -c {LOG_LEVEL_CONTEXT}=INFO)"
    )


def _scratch_ttl_hours(value: Any) -> int | None:
    if value is None:
        return None
    try:
        hours = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        hours = value
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int)
        or not (1 <= hours <= SCRATCH_TTL_HOURS_LIMIT)
    ):
        raise DeploySettingError(
            f"context {SCRATCH_TTL_HOURS_CONTEXT!r} is {value!r}; it must be a whole number of "
            f"hours from 1 to {SCRATCH_TTL_HOURS_LIMIT} (scratch tensors live that long; the "
            f"default is {names.SCRATCH_TTL_HOURS}), e.g. -c {SCRATCH_TTL_HOURS_CONTEXT}=48"
        )
    return hours
