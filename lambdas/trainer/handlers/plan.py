"""Plan an epoch: shuffle, cut into steps and micro-batches, store the micro-batches."""

from trainer import dal, settings
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import Cursor, EpochStart
from trainer.store import Store
from trainer.training.cursor import first_cursor
from trainer.training.schedule import epoch_order, step_layout


def run(store: Store, start: EpochStart) -> Cursor:
    config = dal.run_config(store, start.run_id)
    X, Y = dal.load_data(store, start.run_id, "train")
    order = epoch_order(len(X), config.seed, start.epoch)
    layout = step_layout(len(X), config.batch_size, config.workers)
    schedule = dal.save_microbatches(store, start.run_id, start.epoch, X, Y, order, layout)
    logger.info("epoch planned", run_id=start.run_id, epoch=start.epoch, steps=layout.n_steps)
    budget = settings.limits().history_event_budget
    return first_cursor(config, start.epoch, start.version, schedule, budget=budget)


handler = lambda_edge(run, EpochStart)
