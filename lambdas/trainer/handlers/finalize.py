"""Finish a run: export model.npz, model.json and metrics.json next to the run in S3."""

from typing import Any

from trainer import dal, settings
from trainer.handlers import logger
from trainer.messages import FinalizeEvent, RunSummary


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = FinalizeEvent.model_validate(event)
    store = settings.store()
    config = dal.run_config(store, request.run_id)
    model_uri, metrics = dal.export_model(store, config, request.version)
    store.runs.set_status(request.run_id, "SUCCEEDED", model_uri=model_uri)
    logger.info("run finished", run_id=request.run_id, model_uri=model_uri)
    summary = RunSummary(
        run_id=request.run_id, status="SUCCEEDED", epochs=config.epochs,
        version=request.version, model_uri=model_uri, metrics=metrics[-1] if metrics else {},
    )  # fmt: skip
    return summary.model_dump()
