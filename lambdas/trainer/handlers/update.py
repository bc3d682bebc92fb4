"""Apply one step: aggregate the micro-batch gradients, run the optimizer, write version v+1."""

from trainer import dal
from trainer.handlers._edge import lambda_edge
from trainer.messages import Cursor
from trainer.store import Store
from trainer.training.cursor import next_cursor
from trainer.training.step import apply_step


def run(store: Store, cursor: Cursor) -> Cursor:
    config = dal.run_config(store, cursor.run_id)
    schedule = dal.load_schedule(store, cursor.run_id, cursor.epoch)
    sizes = dal.microbatch_sizes(schedule, cursor.step)
    params = dal.load_params(store, cursor.run_id, cursor.version, cursor.layers)
    optimizer = dal.load_optimizer(store, cursor.run_id, cursor.version, cursor.layers)
    grads = dal.load_gradients(store, cursor, len(sizes))
    params, optimizer = apply_step(config, params, optimizer, grads, sizes, cursor.version)
    dal.save_params(store, cursor.run_id, cursor.version + 1, params)
    dal.save_optimizer(store, cursor.run_id, cursor.version + 1, optimizer)
    return next_cursor(cursor, schedule)


handler = lambda_edge(run, Cursor)
