"""Finish a run: export model.npz, model.json and metrics.json next to the run in S3."""

from trainer import dal
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import FinalizeRequest, RunSummary
from trainer.store import Store


def run(store: Store, request: FinalizeRequest) -> RunSummary:
    config = dal.run_config(store, request.run_id)
    model_uri, metrics = dal.export_model(store, config, request.version)
    dal.finish_run(store, request.run_id, model_uri)
    logger.info("run finished", run_id=request.run_id, model_uri=model_uri)
    return RunSummary(
        run_id=request.run_id, status="SUCCEEDED", epochs=config.epochs,
        version=request.version, model_uri=model_uri, metrics=metrics[-1] if metrics else {},
    )  # fmt: skip


handler = lambda_edge(run, FinalizeRequest)
