"""The loss of one micro-batch and its gradient at the output: dZ_L = ∂loss/∂Z_L."""

from trainer import dal
from trainer.handlers._edge import lambda_edge
from trainer.messages import MicroBatchTask
from trainer.nn import loss_value, output_gradient
from trainer.store import Store
from trainer.training.divergence import travelling_loss


def run(store: Store, task: MicroBatchTask) -> MicroBatchTask:
    config = dal.run_config(store, task.run_id)
    A_L = dal.load_activation(store, task, task.layers)
    Y = dal.load_batch(store, task)["Y"]
    loss = loss_value(config.loss, A_L, Y)
    dZ = output_gradient(config.loss, config.model.layers[-1].activation, A_L, Y)
    key = dal.save_output_gradient(store, task, task.layers, dZ)
    return task.model_copy(update={"layer": task.layers, "key": key, "loss": travelling_loss(loss)})


handler = lambda_edge(run, MicroBatchTask)
