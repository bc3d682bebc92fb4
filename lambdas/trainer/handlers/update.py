"""Apply one step: aggregate the micro-batch gradients, run the optimizer, write version v+1."""

from typing import Any

from trainer import dal, settings
from trainer.handlers import logger
from trainer.messages import Cursor
from trainer.training.cursor import next_cursor
from trainer.training.step import apply_step


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    cursor = Cursor.model_validate(event)
    store = settings.store()
    config = dal.run_config(store, cursor.run_id)
    schedule = dal.load_schedule(store, cursor.run_id, cursor.epoch)
    sizes = dal.microbatch_sizes(schedule, cursor.step)
    params = dal.load_params(store, cursor.run_id, cursor.version, cursor.layers)
    optimizer = dal.load_optimizer(store, cursor.run_id, cursor.version, cursor.layers)
    grads = dal.load_gradients(store, cursor, len(sizes))
    params, optimizer = apply_step(config, params, optimizer, grads, sizes, cursor.version)
    dal.save_params(store, cursor.run_id, cursor.version + 1, params)
    dal.save_optimizer(store, cursor.run_id, cursor.version + 1, optimizer)
    return next_cursor(cursor, schedule).model_dump()
