"""The edge every handler shares: logging, parsing the event, the store, dumping the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from trainer import settings
from trainer.contract.names import SERVICE_NAME
from trainer.store import Store

logger = Logger(service=SERVICE_NAME)

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def lambda_edge(run: Callable[[Store, In], Out], message: type[In]) -> Handler:
    """The Lambda entry point around ``run``: parse the event as ``message`` (unknown fields
    fail, so the ASL and the handler cannot drift), call ``run`` with this container's store,
    return the result as JSON-ready data. Exceptions propagate: Lambda reports them and the
    workflow's Retry/Catch decide."""

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return run(settings.store(), message.model_validate(event)).model_dump()

    return handler
