"""Fused mode: every layer of one micro-batch in one invocation (forward, cost, backward)."""

from typing import Any

from trainer import dal, settings
from trainer.handlers import logger
from trainer.messages import MicroBatchTask
from trainer.nn import microbatch_gradients
from trainer.training.step import activations


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    task = MicroBatchTask.model_validate(event)
    store = settings.store()
    config = dal.run_config(store, task.run_id)
    batch = dal.load_microbatch(store, task)
    params = dal.load_params(store, task.run_id, task.version, task.layers)
    loss, grads = microbatch_gradients(
        params, activations(config), config.loss, batch["X"], batch["Y"]
    )
    key = dal.save_network_gradients(store, task, grads)
    return task.model_copy(update={"layer": 0, "key": key, "loss": loss}).model_dump()
