"""Retrain a pipeline on new data: claim the pipeline for a trigger, or release it after a run
(``trainer.registry.retrain``; the Retrain machine, ``statemachine/retrain.asl.json``)."""

from trainer import settings
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import RetrainClaim, RetrainRequest
from trainer.registry import retrain
from trainer.store import Store


def run(store: Store, request: RetrainRequest) -> RetrainClaim:
    if request.action == "claim":
        outcome = retrain.claim(
            store, request.trigger or {}, request.execution_name,
            bucket=settings.environment().bucket,
        )  # fmt: skip
    else:
        if request.pipeline is None or request.run_id is None:
            raise ValueError("release needs the pipeline and the run_id the claim returned")
        outcome = retrain.release(store, request.pipeline, request.run_id, request.execution_name)
    logger.info(
        "retrain " + request.action, action=outcome.action, reason=outcome.reason,
        pipeline=outcome.pipeline, run_id=outcome.run_id,
    )  # fmt: skip
    return RetrainClaim(
        action=outcome.action, reason=outcome.reason, pipeline=outcome.pipeline,
        run_id=outcome.run_id, config=outcome.config,
    )  # fmt: skip


handler = lambda_edge(run, RetrainRequest)
