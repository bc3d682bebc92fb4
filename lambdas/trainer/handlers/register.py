"""Register the finished run's model in its pipeline (the model registry, write-once)."""

from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import ModelRegistered, RegisterRequest
from trainer.registry import service
from trainer.store import Store


def run(store: Store, request: RegisterRequest) -> ModelRegistered:
    model = service.register(store, request.run_id, request.version)
    logger.info("model registered", pipeline=model.pipeline, run_id=model.run_id)
    return ModelRegistered(
        pipeline=model.pipeline, run_id=model.run_id, version=model.version,
        metrics=dict(model.metrics),
    )  # fmt: skip


handler = lambda_edge(run, RegisterRequest)
