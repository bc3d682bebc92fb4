"""Backward pass of one layer for one micro-batch: dW_l, db_l and dZ_{l-1}, written together
(one bundle, one write)."""

from trainer import dal
from trainer.handlers._edge import lambda_edge
from trainer.messages import MicroBatchTask
from trainer.nn import LayerParams, backward_layer
from trainer.store import Store


def run(store: Store, task: MicroBatchTask) -> MicroBatchTask:
    config = dal.run_config(store, task.run_id)
    dZ = dal.load_output_gradient(store, task, task.layer)
    A_prev = dal.load_layer_input(store, task, task.layer)
    W, _ = dal.load_layer(store, task.run_id, task.version, task.layer)
    below = config.model.layers[task.layer - 2].activation if task.layer > 1 else None
    dW, db, dZ_prev = backward_layer(dZ, A_prev, W, below)
    key = dal.save_gradient(store, task, task.layer, LayerParams(dW, db), dZ_prev)
    return task.model_copy(update={"layer": task.layer - 1, "key": key})


handler = lambda_edge(run, MicroBatchTask)
