"""Apply one step: aggregate the micro-batch gradients, run the optimizer, write version v+1.

The divergence guard first (``trainer.training.divergence``): every micro-batch's loss and
gradients (in worker order), then the new weights, must be finite, or the step raises
``DivergenceError`` and writes nothing (version v stays the last one)."""

from trainer import dal
from trainer.handlers._edge import lambda_edge
from trainer.handlers._step import finish_step, step_start
from trainer.messages import Cursor, StepEnd
from trainer.store import Store
from trainer.training.divergence import check_finite


def run(store: Store, end: StepEnd) -> Cursor:
    cursor = end.cursor
    start = step_start(store, cursor)
    grads = dal.load_gradients(store, cursor, len(start.layout.sizes(cursor.step)))
    for microbatch, (loss, gradients) in enumerate(zip(end.losses, grads, strict=True)):
        check_finite(
            loss, gradients, epoch=cursor.epoch, step=cursor.step, microbatch=microbatch,
            version=cursor.version,
        )  # fmt: skip
    losses = [loss for loss in end.losses if loss is not None]  # all of them, once checked
    return finish_step(store, cursor, start, grads, losses)


handler = lambda_edge(run, StepEnd)
