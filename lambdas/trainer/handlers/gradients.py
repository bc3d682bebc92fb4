"""Fused mode: every layer of one micro-batch in one invocation (read its rows, forward, loss,
backward)."""

from trainer import dal
from trainer.handlers._edge import lambda_edge
from trainer.messages import MicroBatchTask
from trainer.nn import microbatch_gradients
from trainer.store import Store
from trainer.training.divergence import travelling_loss
from trainer.training.step import activations


def run(store: Store, task: MicroBatchTask) -> MicroBatchTask:
    config = dal.run_config(store, task.run_id)
    X, Y = dal.load_microbatch(store, config, dal.load_dataset(store, task.run_id), task)
    params = dal.load_params(store, task.run_id, task.version, task.layers)
    loss, grads = microbatch_gradients(params, activations(config), config.loss, X, Y)
    key = dal.save_network_gradients(store, task, grads)
    return task.model_copy(update={"layer": 0, "key": key, "loss": travelling_loss(loss)})


handler = lambda_edge(run, MicroBatchTask)
