"""Evaluate an epoch: training and validation loss (and accuracy) of its final weights."""

from trainer import dal
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import EpochEnd, EpochMetrics, RunProgress
from trainer.store import Store
from trainer.training.cursor import run_progress
from trainer.training.step import evaluate


def run(store: Store, end: EpochEnd) -> RunProgress:
    config = dal.run_config(store, end.run_id)
    params = dal.load_params(store, end.run_id, end.version, config.n_layers)
    train_loss, _ = evaluate(config, params, *dal.load_data(store, end.run_id, "train"))
    val_loss, val_accuracy = evaluate(config, params, *dal.load_data(store, end.run_id, "val"))
    metrics = EpochMetrics(
        epoch=end.epoch, train_loss=train_loss, val_loss=val_loss, val_accuracy=val_accuracy
    )
    dal.save_epoch_metrics(store, end.run_id, metrics.model_copy(update={"version": end.version}))
    logger.info("epoch evaluated", extra={"run_id": end.run_id, **metrics.row()})
    return run_progress(
        config, next_epoch=end.epoch + 1, version=end.version, metrics=metrics.row()
    )


handler = lambda_edge(run, EpochEnd)
