"""API Gateway's part of the stack, locally: the contract's routes on ``127.0.0.1:PORT/<stage>/``.

``stepnet serve`` runs this beside the emulated account (moto's API Gateway cannot invoke a Lambda
proxy integration). Each route of ``trainer.contract.api.ROUTES`` invokes its function through
the account's Lambda runtime with API Gateway's REST proxy event, and the function's proxy
response is the HTTP response: the same handlers, the same paths, the same answers as the
deployed API, for curl or any HTTP client.

What API Gateway does before a function runs is emulated as far as it decides an answer:

* **IAM authorization**: a request must be signed (an ``Authorization: AWS4-HMAC-SHA256 …``
  header, e.g. ``curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user KEY:SECRET``), else
  403 ``{"message": "Missing Authentication Token"}``, as API Gateway answers. The signature
  itself is not verified: the emulated account accepts any credentials, as moto does.
* An unknown path or method: the same 403 (API Gateway does not tell them apart either).
* **Request validation**: a POST body that is not a JSON object is a 400 with the stack's
  ``{"error": "the request body must be a JSON object: …"}`` (the reason's wording is ours,
  not API Gateway's validator's).
* A function error (an unhandled exception): 502 ``{"message": "Internal server error"}``.

Not emulated: throttling (the stage's rate limits), access logs, usage of the signature's
identity.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from stepnet.engine.runtime import LambdaRuntime
from trainer.contract import names
from trainer.contract.api import STAGE, Route, find_route

SIGV4: Final = "AWS4-HMAC-SHA256 "
MISSING_TOKEN: Final = {"message": "Missing Authentication Token"}
INTERNAL_ERROR: Final = {"message": "Internal server error"}


def proxy_event(
    route: Route,
    parameters: dict[str, str],
    *,
    path: str,
    query: str,
    headers: dict[str, str],
    body: str | None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """API Gateway's REST proxy event (payload 1.0) for a request of ``route``."""
    pairs = parse_qsl(query, keep_blank_values=True)
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        multi.setdefault(key, []).append(value)
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": route.method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.path,
            "httpMethod": route.method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent", "")},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _body_problem(route: Route, body: str | None) -> str | None:
    """Why a body fails its route's model (a JSON object), or None."""
    if route.body_model is None:
        return None
    try:
        document = json.loads(body or "")
    except ValueError as error:
        return f"not JSON ({error})"
    return (
        None if isinstance(document, dict) else f"a JSON {type(document).__name__}, not an object"
    )


class LocalApi:
    """The API on ``127.0.0.1:port``, its functions run by ``runtime`` (named from
    ``stack_name``). A context manager: serves in a thread from enter to exit."""

    def __init__(self, runtime: LambdaRuntime, *, stack_name: str, port: int) -> None:
        self.runtime = runtime
        self.stack_name = stack_name
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, as the stack's ApiUrl output: ``http://127.0.0.1:PORT/<stage>/``."""
        if self._server is None:
            raise RuntimeError("the local API is not serving (use it as a context manager)")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{STAGE}/"

    def __enter__(self) -> LocalApi:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def answer(
        self, method: str, target: str, headers: dict[str, str], body: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one request (``target``: the path and query)."""
        split = urlsplit(target)
        stage_prefix = f"/{STAGE}"
        path = (
            split.path[len(stage_prefix) :] if split.path.startswith(stage_prefix + "/") else None
        )
        found = None if path is None else find_route(method, path)
        signed = any(
            k.lower() == "authorization" and v.startswith(SIGV4) for k, v in headers.items()
        )
        if found is None or not signed or path is None:
            return _json(HTTPStatus.FORBIDDEN, MISSING_TOKEN)
        route, parameters = found
        problem = _body_problem(route, body)
        if problem is not None:
            reason = f"the request body must be a JSON object: {problem}"
            return _json(HTTPStatus.BAD_REQUEST, {"error": reason})
        event = proxy_event(
            route,
            {name: unquote(value) for name, value in parameters.items()},
            path=path,
            query=split.query,
            headers=headers,
            body=body,
        )
        function = names.function_name(self.stack_name, route.function)
        payload, error = self.runtime.invoke(function, event)
        if error is not None or not isinstance(payload, dict) or "statusCode" not in payload:
            return _json(HTTPStatus.BAD_GATEWAY, INTERNAL_ERROR)
        data = str(payload.get("body") or "")
        raw = base64.b64decode(data) if payload.get("isBase64Encoded") else data.encode()
        return int(payload["statusCode"]), dict(payload.get("headers") or {}), raw

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else None
                status, headers, raw = api.answer(
                    self.command, self.path, dict(self.headers.items()), body
                )
                self.send_response(status)
                for key, value in (headers | {"Content-Length": str(len(raw))}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # quiet, like the server
                return

        return Handler


def _json(status: HTTPStatus, document: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return int(status), {"Content-Type": "application/json"}, json.dumps(document).encode()
