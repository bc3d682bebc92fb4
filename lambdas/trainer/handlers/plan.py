"""Plan an epoch: how many steps, which micro-batches each has. Nothing is copied or stored:
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
    logger.info("epoch planned", run_id=start.run_id, epoch=start.epoch, steps=layout.n_steps)
    return first_cursor(
        config, start.epoch, start.version, layout_sizes(layout, config.workers),
        groups=shard_groups(len(dataset.shards)),
        budget=settings.limits().history_event_budget,
        step_seconds=step_seconds(config, dataset.n_features),
    )  # fmt: skip


handler = lambda_edge(run, EpochStart)
