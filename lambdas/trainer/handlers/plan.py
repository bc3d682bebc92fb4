"""Plan an epoch: how many steps, which micro-batches each has, from which step (a resumed run
continues where it stopped). Nothing is copied or stored:
every micro-batch task recomputes its own rows from the seed and the epoch (docs/data.md)."""

from trainer import dal, settings
from trainer.data.blocks import shard_groups
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import Cursor, EpochStart
from trainer.store import Store
from trainer.training.cursor import first_cursor, step_seconds
from trainer.training.schedule import layout_sizes, step_layout


def run(store: Store, start: EpochStart) -> Cursor:
    config = dal.run_config(store, start.run_id)
    dataset = dal.load_dataset(store, start.run_id)
    split = dataset.split(config.dataset.validation_fraction, config.seed)
    layout = step_layout(split.n_train, config.batch_size, config.workers)
    # a resumed run may continue the epoch after its first step, with the loss so far
    step = start.version - (start.epoch - 1) * layout.n_steps
    loss_sum = dal.load_loss_sum(store, start.run_id, start.version) if step else 0.0
    logger.info(
        "epoch planned", run_id=start.run_id, epoch=start.epoch, steps=layout.n_steps, step=step
    )
    return first_cursor(
        config, start.epoch, start.version, layout_sizes(layout, config.workers),
        groups=shard_groups(len(dataset.shards)),
        budget=settings.limits().history_event_budget,
        step_seconds=step_seconds(config, dataset.n_features),
        step=step, loss_sum=loss_sum, attempt=start.attempt,
    )  # fmt: skip


handler = lambda_edge(run, EpochStart)
