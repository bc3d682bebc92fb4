"""Evaluate an epoch: training and validation loss (and accuracy) of its final weights."""

from typing import Any

from trainer import dal, settings
from trainer.handlers import logger
from trainer.messages import EpochEnd
from trainer.training.cursor import run_progress
from trainer.training.exports import epoch_metrics
from trainer.training.step import evaluate


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    end = EpochEnd.model_validate(event)
    store = settings.store()
    config = dal.run_config(store, end.run_id)
    params = dal.load_params(store, end.run_id, end.version, config.n_layers)
    train_loss, _ = evaluate(config, params, *dal.load_data(store, end.run_id, "train"))
    val_loss, val_accuracy = evaluate(config, params, *dal.load_data(store, end.run_id, "val"))
    metrics = epoch_metrics(end.epoch, train_loss, val_loss, val_accuracy)
    store.runs.put_epoch_metrics(end.run_id, end.epoch, metrics | {"version": end.version})
    logger.info("epoch evaluated", run_id=end.run_id, **metrics)
    return run_progress(
        config, next_epoch=end.epoch + 1, version=end.version, metrics=metrics
    ).model_dump()
