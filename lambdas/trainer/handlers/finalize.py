"""Finish a run: export model.npz, model.json and metrics.json next to the run in S3.

A run the divergence guard stopped exports its last good version, marked in model.json, and its
status stays FAILED (``trainer.dal.finish_run``)."""

from trainer import dal
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import FinalizeRequest, RunSummary
from trainer.store import Store
from trainer.store.runs import FAILED, SUCCEEDED


def run(store: Store, request: FinalizeRequest) -> RunSummary:
    config = dal.run_config(store, request.run_id)
    model_uri, metrics = dal.export_model(store, config, request.version, request.diverged)
    dal.finish_run(store, request.run_id, model_uri, request.diverged)
    logger.info(
        "run finished", run_id=request.run_id, model_uri=model_uri,
        diverged=request.diverged is not None,
    )  # fmt: skip
    return RunSummary(
        run_id=request.run_id, status=SUCCEEDED if request.diverged is None else FAILED,
        epochs=config.epochs,
        version=request.version, model_uri=model_uri, metrics=metrics[-1] if metrics else {},
    )  # fmt: skip


handler = lambda_edge(run, FinalizeRequest)
