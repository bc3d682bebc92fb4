"""The HTTP API: its routes, the function behind each, the stage and the request models.

The stack (``infra/api.py``: API Gateway, IAM authorization, Lambda proxy integrations) and the
local engine (``stepnet/engine/api.py``: ``stepnet serve``) build the same routes from
:data:`ROUTES`, so a path answers the same on both. Each route is a Lambda proxy integration:
the function receives API Gateway's REST proxy event (``httpMethod``, ``resource``,
``pathParameters``, ``queryStringParameters``, ``body``) and answers ``{statusCode, headers,
body}``.

Pure (stdlib only); not shipped to Lambda.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from trainer.contract.functions import FUNCTIONS

Method = Literal["GET", "POST"]

STAGE: Final = "v1"  # the deployed stage: https://<api>.execute-api.<region>.amazonaws.com/v1/

# API Gateway's request validator checks a POST body against its model before the function runs.
# The models only ask for a JSON object: each function then names every bad field itself (the run
# config's validation, the rows' checks), which a JSON schema could not say as well.
JSON_OBJECT: Final[Mapping[str, Any]] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
}


@dataclass(frozen=True)
class Route:
    """One method on one resource path (``{name}`` is a path parameter) and its function."""

    method: Method
    path: str
    function: str
    body_model: Mapping[str, Any] | None = None  # a JSON schema, for methods with a body

    def __post_init__(self) -> None:
        if self.function not in FUNCTIONS:
            raise ValueError(f"{self.method} {self.path}: unknown function {self.function!r}")

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(re.findall(r"\{(\w+)\}", self.path))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if ``method path`` is this route, else None."""
        if method != self.method:
            return None
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        found = re.fullmatch(pattern, path.rstrip("/") or "/")
        return None if found is None else found.groupdict()


ROUTES: Final = (
    Route("POST", "/runs", "Api", JSON_OBJECT),  # start a run: the body is its config
    Route("GET", "/runs", "Api"),  # the runs, newest first (?limit=, ?next=, ?status=)
    Route("GET", "/runs/{run_id}", "Api"),  # status, per-epoch metrics, console links
    Route("POST", "/models/{pipeline}/predict", "Predict", JSON_OBJECT),  # {"rows": [[…]]}
)


def resource_paths() -> tuple[str, ...]:
    """Every resource path of the API, parents first (``/runs`` before ``/runs/{run_id}``)."""
    paths = {"/"}
    for route in ROUTES:
        parts = route.path.strip("/").split("/")
        paths |= {"/" + "/".join(parts[: depth + 1]) for depth in range(len(parts))}
    return tuple(sorted(paths, key=lambda p: (p.count("/"), p)))


def find_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route answering ``method path`` and its path parameters, or None."""
    for route in ROUTES:
        parameters = route.match(method, path)
        if parameters is not None:
            return route, parameters
    return None


def allowed_methods(path: str) -> tuple[str, ...]:
    """The methods some route answers on ``path`` (for a 405 / 403 answer)."""
    return tuple(r.method for r in ROUTES if r.match(r.method, path) is not None)
