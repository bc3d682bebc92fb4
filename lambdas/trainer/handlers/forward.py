"""Forward pass of one layer for one micro-batch: A_l = act_l(A_{l-1} @ W_l + b_l). Layer 1
reads the micro-batch's rows from the shards and keeps them (scratch) for Loss and Backward."""

from trainer import dal
from trainer.handlers._edge import lambda_edge
from trainer.messages import MicroBatchTask
from trainer.nn import forward_layer
from trainer.store import Store


def run(store: Store, task: MicroBatchTask) -> MicroBatchTask:
    config = dal.run_config(store, task.run_id)
    if task.layer == 1:
        A_prev, Y = dal.load_microbatch(store, config, dal.load_dataset(store, task.run_id), task)
        dal.save_batch(store, task, A_prev, Y)
    else:
        A_prev = dal.load_layer_input(store, task, task.layer)
    W, b = dal.load_layer(store, task.run_id, task.version, task.layer)
    A = forward_layer(A_prev, W, b, config.model.layers[task.layer - 1].activation)
    key = dal.save_activation(store, task, task.layer, A)
    return task.model_copy(update={"layer": task.layer + 1, "key": key})


handler = lambda_edge(run, MicroBatchTask)
