"""The Training executions, as the API sees them: start one per run, describe it, list them.

A run's Training execution is named after the run (``trainer.config.check_execution_name``), so
its ARN follows from the machine's ARN and the run id; an epoch's execution is named
``<run_id>-epoch-NNN`` (``trainer.training.cursor``) on the Epoch machine, named like the
Training machine with the stack's prefix. Console links and a failed execution's readable cause
are spelled here once (``stepnet.client`` uses them too).

Step Functions through a low-level boto3 client (``boto3.client("stepfunctions")``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from trainer.contract.names import state_machine_name
from trainer.training.cursor import epoch_name, resume_name, training_attempt

TERMINAL: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
STATUSES: Final = frozenset({"RUNNING", "PENDING_REDRIVE", *TERMINAL})


class ExecutionExistsError(Exception):
    """A Training execution of that name exists already (names are unique for 90 days)."""

    def __init__(self, run_id: str, status: str | None = None) -> None:
        self.run_id, self.status = run_id, status
        state = f" ({status})" if status else ""
        super().__init__(
            f"a run with id {run_id!r} exists already{state}; nothing was started and it is "
            "left as it is. Choose another run_id (execution names are unique for 90 days), or "
            f"follow it: stepnet watch {run_id}"
        )


class ResumeError(ValueError):
    """A run that cannot be resumed: unknown, not yet prepared, still running, or finished."""


class PageTokenError(ValueError):
    """A list token Step Functions did not give, or one that expired."""


def execution_arn(machine_arn: str, name: str) -> str:
    """``arn:aws:states:R:A:execution:<machine>:<name>`` of a machine's execution."""
    return f"{machine_arn.replace(':stateMachine:', ':execution:')}:{name}"


def epoch_machine_arn(training_arn: str) -> str:
    """The Epoch machine's ARN, named like the Training machine's (the same stack prefix)."""
    base, _, name = training_arn.rpartition(":")
    prefix = name.removesuffix("-Training")
    if state_machine_name(prefix, "Training") != name:
        raise ValueError(f"{training_arn} is not a stepnet Training state machine")
    return f"{base}:{state_machine_name(prefix, 'Epoch')}"


def region_of(arn: str) -> str:
    return arn.split(":")[3]


def console_url(arn: str) -> str:
    """An execution's page in the Step Functions console."""
    region = region_of(arn)
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{arn}"
    )


def readable_cause(description: Mapping[str, Any]) -> str:
    """The innermost human message of a failed execution (nested epoch and Lambda errors)."""
    cause: Any = description.get("cause") or description.get("error") or "unknown"
    for _ in range(6):
        try:
            parsed = json.loads(cause) if isinstance(cause, str) else cause
        except json.JSONDecodeError:
            break
        if not isinstance(parsed, dict):
            break
        inner = parsed.get("Cause") or parsed.get("cause") or parsed.get("errorMessage")
        if inner is None:
            break
        if "errorMessage" in parsed:
            return f"{parsed.get('errorType', 'Error')}: {parsed['errorMessage']}"
        cause = inner
    return str(cause)


def _time(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


@dataclass(frozen=True)
class Execution:
    """One Training execution: the run it trains and where it stands."""

    run_id: str
    arn: str
    status: str
    started_at: str | None
    stopped_at: str | None
    cause: str | None = None  # a failed execution's readable cause

    def summary(self) -> dict[str, Any]:
        summary = {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "execution_arn": self.arn,
            "console_url": console_url(self.arn),
        }
        if self.cause is not None:
            summary["error"] = self.cause
        return summary


class Executions:
    """The stack's Training executions, through a Step Functions client."""

    def __init__(self, sfn_client: Any, *, training_arn: str) -> None:
        """``sfn_client``: ``boto3.client("stepfunctions")`` (kept as ``sfn``)."""
        self.sfn = sfn_client
        self.training_arn = training_arn

    def start(self, run_id: str, config_json: str, *, retry_of_running: bool = True) -> Execution:
        """Start the run's Training execution (named after it) with its config as input.

        As Step Functions does, the same start again while that execution runs (same name,
        same input: a client's retry) answers with the running execution; a run of that id
        that has ended, or that runs another config, is refused (:class:`ExecutionExistsError`)
        and left as it is. ``retry_of_running=False`` refuses the retry too (the CLI's
        ``stepnet start``: a person starting a run that exists means another run)."""
        if not retry_of_running and (existing := self.describe(run_id)) is not None:
            raise ExecutionExistsError(run_id, existing.status)
        try:
            response = self.sfn.start_execution(
                stateMachineArn=self.training_arn, name=run_id, input=config_json
            )
        except self.sfn.exceptions.ExecutionAlreadyExists:
            raise ExecutionExistsError(run_id) from None
        return Execution(
            run_id, str(response["executionArn"]), "RUNNING", _time(response.get("startDate")), None
        )

    def resume(self, run_id: str, attempt: int) -> Execution:
        """Start the run's ``attempt``-th resume: a Training execution named
        :func:`~trainer.training.cursor.resume_name` that continues the run from its last
        complete weights version. Not a redrive, which continues "from the unsuccessful step":
        the machine catches every error into its failure path, whose end is that step."""
        name = resume_name(run_id, attempt)
        document = {"resume": {"run_id": run_id, "attempt": attempt}}
        try:
            response = self.sfn.start_execution(
                stateMachineArn=self.training_arn, name=name, input=json.dumps(document)
            )
        except self.sfn.exceptions.ExecutionAlreadyExists:
            raise ExecutionExistsError(name) from None
        return Execution(
            name, str(response["executionArn"]), "RUNNING", _time(response.get("startDate")), None
        )

    def attempts(self, run_id: str) -> list[tuple[int, Execution]]:
        """The run's Training executions (its first, then each resume) with their attempt
        numbers, in attempt order."""
        found: list[tuple[int, Execution]] = []
        paginator = self.sfn.get_paginator("list_executions")
        for page in paginator.paginate(stateMachineArn=self.training_arn):
            for e in page.get("executions", []):
                attempt = training_attempt(run_id, str(e["name"]))
                if attempt is not None:
                    found.append((attempt, Execution(
                        run_id=str(e["name"]), arn=str(e["executionArn"]),
                        status=str(e["status"]), started_at=_time(e.get("startDate")),
                        stopped_at=_time(e.get("stopDate")),
                    )))  # fmt: skip
        return sorted(found, key=lambda pair: pair[0])

    def describe(self, run_id: str) -> Execution | None:
        """The run's execution (or any Training execution, by name), or None if there is none
        of that name."""
        try:
            found = self.sfn.describe_execution(
                executionArn=execution_arn(self.training_arn, run_id)
            )
        except self.sfn.exceptions.ExecutionDoesNotExist:
            return None
        status = str(found["status"])
        failed = status in TERMINAL and status != "SUCCEEDED"
        return Execution(
            run_id=run_id, arn=str(found["executionArn"]), status=status,
            started_at=_time(found.get("startDate")), stopped_at=_time(found.get("stopDate")),
            cause=readable_cause(found) if failed else None,
        )  # fmt: skip

    def list(
        self, *, limit: int, next_token: str | None = None, status: str | None = None
    ) -> tuple[list[Execution], str | None]:
        """A page of executions, newest first, and the token of the next page (None: last)."""
        request: dict[str, Any] = {"stateMachineArn": self.training_arn, "maxResults": limit}
        if next_token:
            request["nextToken"] = next_token
        if status:
            request["statusFilter"] = status
        try:
            response = self.sfn.list_executions(**request)
        except self.sfn.exceptions.InvalidToken:
            raise PageTokenError(next_token) from None
        found = [
            Execution(
                run_id=str(e["name"]),
                arn=str(e["executionArn"]),
                status=str(e["status"]),
                started_at=_time(e.get("startDate")),
                stopped_at=_time(e.get("stopDate")),
            )
            for e in response.get("executions", [])
        ]
        return found, response.get("nextToken")

    def epoch_arn(self, run_id: str, epoch: int) -> str:
        """The ARN of the execution of a run's epoch (its first part)."""
        return execution_arn(epoch_machine_arn(self.training_arn), epoch_name(run_id, epoch))
