"""Mode per_step: one whole step in one invocation. The step's micro-batches one after the other
in worker order, each read from the shards and computed as fused mode's Gradients computes it,
then the update as Update applies it (``apply_step``: the same summation, so the same weights):
weights version v+1. No gradient travels through the store. The divergence guard as Update
applies it (``trainer.training.divergence``): each micro-batch's loss and gradients, in worker
order, then the new weights, must be finite, or the step raises ``DivergenceError`` and writes
nothing."""

from trainer import dal
from trainer.handlers._edge import lambda_edge
from trainer.handlers._step import finish_step, step_start
from trainer.messages import Cursor, StepTask
from trainer.nn import LayerParams, microbatch_gradients
from trainer.store import Store
from trainer.training.cursor import microbatch_task
from trainer.training.divergence import check_finite
from trainer.training.step import activations


def run(store: Store, task: StepTask) -> Cursor:
    cursor = task.cursor
    start = step_start(store, cursor)
    config = start.config
    losses: list[float] = []
    grads: list[list[LayerParams]] = []
    for microbatch in cursor.microbatches:
        X, Y = dal.load_microbatch(
            store, config, start.dataset, microbatch_task(cursor, microbatch)
        )
        loss, gradients = microbatch_gradients(start.params, activations(config), config.loss, X, Y)
        check_finite(
            loss, gradients, epoch=cursor.epoch, step=cursor.step, microbatch=microbatch,
            version=cursor.version,
        )  # fmt: skip
        losses.append(float(loss))
        grads.append(gradients)
    return finish_step(store, cursor, start, grads, losses)


handler = lambda_edge(run, StepTask)
