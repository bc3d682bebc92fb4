"""Promote the registered model if its run's rule (``promote_if``) says so; record why (not)."""

from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import PromoteRequest, PromotionDecision
from trainer.registry import service
from trainer.store import Store


def run(store: Store, request: PromoteRequest) -> PromotionDecision:
    decision = service.promote_if_better(store, request.pipeline, request.run_id)
    logger.info(
        "promotion decided", pipeline=decision.pipeline, run_id=decision.run_id,
        promoted=decision.promoted, reason=decision.reason,
    )  # fmt: skip
    return PromotionDecision(
        pipeline=decision.pipeline, run_id=decision.run_id, version=decision.version,
        promoted=decision.promoted, reason=decision.reason, metric=decision.metric,
        candidate=decision.candidate,
        production=None if decision.production is None else dict(decision.production),
    )  # fmt: skip


handler = lambda_edge(run, PromoteRequest)
