"""Backward pass of one layer for one micro-batch: dW_l, db_l and dZ_{l-1}."""

from typing import Any

from trainer import dal, settings
from trainer.handlers import logger
from trainer.messages import MicroBatchTask
from trainer.nn import backward_layer


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    task = MicroBatchTask.model_validate(event)
    store = settings.store()
    config = dal.run_config(store, task.run_id)
    dZ = dal.load_output_gradient(store, task, task.layer)
    A_prev = dal.load_layer_input(store, task, task.layer)
    W, _ = dal.load_layer(store, task.run_id, task.version, task.layer)
    below = config.model.layers[task.layer - 2].activation if task.layer > 1 else None
    dW, db, dZ_prev = backward_layer(dZ, A_prev, W, below)
    key = dal.save_gradient(store, task, task.layer, dW, db)
    if dZ_prev is not None:
        dal.save_output_gradient(store, task, task.layer - 1, dZ_prev)
    return task.model_copy(update={"layer": task.layer - 1, "key": key}).model_dump()
