"""What Update and TrainStep share: the state a step starts from (weights version v and its
optimizer state) and the update that ends it (weights version v+1), so that every mode applies a
step's gradients one way: ``apply_step``'s summation, then the divergence guard on the new
weights, then the epoch's loss so far, kept with version v+1 (``dal.save_optimizer``)."""

from __future__ import annotations

from dataclasses import dataclass

from trainer import dal
from trainer.config import RunConfig
from trainer.data.dataset import Dataset
from trainer.messages import Cursor
from trainer.nn import LayerParams
from trainer.store import Store
from trainer.training.cursor import next_cursor
from trainer.training.divergence import check_weights
from trainer.training.schedule import StepLayout, layout_sizes, step_layout
from trainer.training.step import OptState, Params, apply_step, step_loss_sum


@dataclass(frozen=True)
class StepStart:
    """A step's run config, dataset, step layout, and weights version v with its optimizer
    state (``cursor.version``)."""

    config: RunConfig
    dataset: Dataset
    layout: StepLayout
    params: Params
    optimizer: list[OptState]


def step_start(store: Store, cursor: Cursor) -> StepStart:
    config = dal.run_config(store, cursor.run_id)
    dataset = dal.load_dataset(store, cursor.run_id)
    split = dataset.split(config.dataset.validation_fraction, config.seed)
    return StepStart(
        config=config,
        dataset=dataset,
        layout=step_layout(split.n_train, config.batch_size, config.workers),
        params=dal.load_params(store, cursor.run_id, cursor.version, cursor.layers),
        optimizer=dal.load_optimizer(store, cursor.run_id, cursor.version, cursor.layers),
    )


def finish_step(
    store: Store,
    cursor: Cursor,
    start: StepStart,
    grads: list[list[LayerParams]],
    losses: list[float],
) -> Cursor:
    """Apply the step's micro-batch ``grads`` (worker order, checked finite by the caller) to
    version v, check the new weights, write version v+1 and return the next cursor."""
    config, sizes = start.config, start.layout.sizes(cursor.step)
    params, optimizer = apply_step(
        config, start.params, start.optimizer, grads, sizes, cursor.version
    )
    check_weights(params, epoch=cursor.epoch, step=cursor.step, version=cursor.version)
    loss_sum = step_loss_sum(cursor.loss_sum, losses, sizes)
    dal.save_params(store, cursor.run_id, cursor.version + 1, params)
    dal.save_optimizer(store, cursor.run_id, cursor.version + 1, optimizer, loss_sum)
    return next_cursor(cursor, layout_sizes(start.layout, config.workers), loss_sum, losses)
