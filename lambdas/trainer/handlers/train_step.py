"""Mode per_step: one whole step in one invocation. The step's micro-batches one after the other
in worker order, each read from the shards and computed as fused mode's Gradients computes it,
then the update as Update applies it (``apply_step``: the same summation, so the same weights):
weights version v+1. No gradient travels through the store. The divergence guard as Update
applies it (``trainer.training.divergence``): each micro-batch's loss and gradients, in worker
order, then the new weights, must be finite, or the step raises ``DivergenceError`` and writes
nothing."""

from trainer import dal
from trainer.handlers._edge import lambda_edge
from trainer.messages import Cursor, StepTask
from trainer.nn import LayerParams, microbatch_gradients
from trainer.store import Store
from trainer.training.cursor import microbatch_task, next_cursor
from trainer.training.divergence import check_finite, check_weights
from trainer.training.schedule import layout_sizes, step_layout
from trainer.training.step import activations, apply_step, step_loss_sum


def run(store: Store, task: StepTask) -> Cursor:
    cursor = task.cursor
    config = dal.run_config(store, cursor.run_id)
    dataset = dal.load_dataset(store, cursor.run_id)
    split = dataset.split(config.dataset.validation_fraction, config.seed)
    layout = step_layout(split.n_train, config.batch_size, config.workers)
    sizes = layout.sizes(cursor.step)
    params = dal.load_params(store, cursor.run_id, cursor.version, cursor.layers)
    optimizer = dal.load_optimizer(store, cursor.run_id, cursor.version, cursor.layers)
    losses: list[float] = []
    grads: list[list[LayerParams]] = []
    for microbatch in cursor.microbatches:
        X, Y = dal.load_microbatch(store, config, dataset, microbatch_task(cursor, microbatch))
        loss, gradients = microbatch_gradients(params, activations(config), config.loss, X, Y)
        check_finite(
            loss, gradients, epoch=cursor.epoch, step=cursor.step, microbatch=microbatch,
            version=cursor.version,
        )  # fmt: skip
        losses.append(float(loss))
        grads.append(gradients)
    params, optimizer = apply_step(config, params, optimizer, grads, sizes, cursor.version)
    check_weights(params, epoch=cursor.epoch, step=cursor.step, version=cursor.version)
    loss_sum = step_loss_sum(cursor.loss_sum, losses, sizes)
    dal.save_params(store, cursor.run_id, cursor.version + 1, params)
    dal.save_optimizer(store, cursor.run_id, cursor.version + 1, optimizer, loss_sum)
    schedule = layout_sizes(layout, config.workers)
    return next_cursor(cursor, schedule, loss_sum, losses)


handler = lambda_edge(run, StepTask)
