"""Plan an epoch: shuffle, cut into steps and micro-batches, store the micro-batches."""

from typing import Any

from trainer import settings, state
from trainer.events import EpochStart
from trainer.handlers import logger
from trainer.progress import first_cursor
from trainer.schedule import epoch_order, step_layout


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start = EpochStart.model_validate(event)
    store = settings.store()
    config = state.run_config(store, start.run_id)
    X, Y = state.load_data(store, start.run_id, "train")
    order = epoch_order(len(X), config.seed, start.epoch)
    layout = step_layout(len(X), config.batch_size, config.workers)
    schedule = state.save_microbatches(store, start.run_id, start.epoch, X, Y, order, layout)
    logger.info("epoch planned", run_id=start.run_id, epoch=start.epoch, steps=layout.n_steps)
    return first_cursor(config, start.epoch, start.version, schedule).model_dump()
