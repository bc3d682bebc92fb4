"""Apply one step: aggregate the micro-batch gradients, run the optimizer, write version v+1.

The divergence guard first (``trainer.training.divergence``): every micro-batch's loss and
gradients (in worker order), then the new weights, must be finite, or the step raises
``DivergenceError`` and writes nothing (version v stays the last one)."""

from trainer import dal
from trainer.handlers._edge import lambda_edge
from trainer.messages import Cursor, StepEnd
from trainer.store import Store
from trainer.training.cursor import next_cursor
from trainer.training.divergence import check_finite, check_weights
from trainer.training.schedule import layout_sizes, step_layout
from trainer.training.step import apply_step, step_loss_sum


def run(store: Store, end: StepEnd) -> Cursor:
    cursor = end.cursor
    config = dal.run_config(store, cursor.run_id)
    dataset = dal.load_dataset(store, cursor.run_id)
    split = dataset.split(config.dataset.validation_fraction, config.seed)
    layout = step_layout(split.n_train, config.batch_size, config.workers)
    sizes = layout.sizes(cursor.step)
    params = dal.load_params(store, cursor.run_id, cursor.version, cursor.layers)
    optimizer = dal.load_optimizer(store, cursor.run_id, cursor.version, cursor.layers)
    grads = dal.load_gradients(store, cursor, len(sizes))
    for microbatch, (loss, gradients) in enumerate(zip(end.losses, grads, strict=True)):
        check_finite(
            loss, gradients, epoch=cursor.epoch, step=cursor.step, microbatch=microbatch,
            version=cursor.version,
        )  # fmt: skip
    losses = [loss for loss in end.losses if loss is not None]  # all of them, once checked
    params, optimizer = apply_step(config, params, optimizer, grads, sizes, cursor.version)
    check_weights(params, epoch=cursor.epoch, step=cursor.step, version=cursor.version)
    loss_sum = step_loss_sum(cursor.loss_sum, losses, sizes)
    dal.save_params(store, cursor.run_id, cursor.version + 1, params)
    dal.save_optimizer(store, cursor.run_id, cursor.version + 1, optimizer, loss_sum)
    schedule = layout_sizes(layout, config.workers)
    return next_cursor(cursor, schedule, loss_sum, losses)


handler = lambda_edge(run, StepEnd)
