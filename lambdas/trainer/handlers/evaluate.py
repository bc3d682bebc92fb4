"""Evaluate an epoch: merge the evaluation groups' per-shard sums into its metrics (exact sums,
so the same numbers as the reference), record them, say what comes next."""

from trainer import dal
from trainer.data.blocks import shard_groups
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import EpochEnd, EpochMetrics, RunProgress
from trainer.store import Store
from trainer.training.cursor import run_progress
from trainer.training.step import ShardEvaluation, epoch_evaluation


def run(store: Store, end: EpochEnd) -> RunProgress:
    config = dal.run_config(store, end.run_id)
    dataset = dal.load_dataset(store, end.run_id)
    split = dataset.split(config.dataset.validation_fraction, config.seed)
    groups = dal.load_evaluations(store, end.run_id, end.epoch, shard_groups(len(dataset.shards)))
    shards = [
        ShardEvaluation(
            train_loss=float(g["train_loss"][i]), train_rows=int(g["train_rows"][i]),
            val_loss=float(g["val_loss"][i]), val_rows=int(g["val_rows"][i]),
            val_correct=int(g["val_correct"][i]),
        )
        for g in groups
        for i in range(len(g["shards"]))
    ]  # fmt: skip
    train_loss, val_loss, val_accuracy = epoch_evaluation(config, shards, split, end.loss_sum)
    metrics = EpochMetrics(
        epoch=end.epoch, train_loss=train_loss, val_loss=val_loss, val_accuracy=val_accuracy
    )
    dal.save_epoch_metrics(store, end.run_id, metrics.model_copy(update={"version": end.version}))
    logger.info("epoch evaluated", extra={"run_id": end.run_id, **metrics.row()})
    return run_progress(
        config, next_epoch=end.epoch + 1, version=end.version, metrics=metrics.row()
    )


handler = lambda_edge(run, EpochEnd)
