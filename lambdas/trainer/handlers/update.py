"""Apply one step: aggregate the micro-batch gradients, run the optimizer, write version v+1."""

from typing import Any

from trainer import settings, state
from trainer.events import Cursor
from trainer.handlers import logger
from trainer.progress import next_cursor
from trainer.training import apply_step


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    cursor = Cursor.model_validate(event)
    store = settings.store()
    config = state.run_config(store, cursor.run_id)
    schedule = state.load_schedule(store, cursor.run_id, cursor.epoch)
    sizes = state.microbatch_sizes(schedule, cursor.step)
    params = state.load_params(store, cursor.run_id, cursor.version, cursor.layers)
    optimizer = state.load_optimizer(store, cursor.run_id, cursor.version, cursor.layers)
    grads = state.load_gradients(store, cursor, len(sizes))
    params, optimizer = apply_step(config, params, optimizer, grads, sizes, cursor.version)
    state.save_params(store, cursor.run_id, cursor.version + 1, params)
    state.save_optimizer(store, cursor.run_id, cursor.version + 1, optimizer)
    return next_cursor(cursor, schedule).model_dump()
