"""The API's run routes: start a run, list the runs, describe one (``trainer.routes``)."""

from trainer import routes, settings
from trainer.handlers._edge import lambda_edge, logger
from trainer.routes import ApiRequest, ApiResponse
from trainer.store import Store


def run(store: Store, request: ApiRequest) -> ApiResponse:
    response = routes.handle(store, settings.executions(), request)
    logger.info(
        "api request", method=request.http_method, resource=request.resource,
        status=response.status_code,
    )  # fmt: skip
    return response


handler = lambda_edge(run, ApiRequest)
