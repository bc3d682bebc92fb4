"""Evaluate an epoch: merge the evaluation groups' per-shard sums into its metrics (exact sums,
so the same numbers as the reference), record them, say what comes next. A loss that is not
finite stops the run instead (``DivergenceError``, ``trainer.training.divergence``)."""

import time
from typing import Any

from trainer import dal, settings
from trainer.data.blocks import shard_groups
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import EpochEnd, EpochMetrics, RunProgress
from trainer.metrics import EpochReport, emit_epoch, seconds_between
from trainer.store import Store
from trainer.store.runs import timestamp
from trainer.training.cursor import run_progress
from trainer.training.divergence import check_evaluation
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
    # where the epoch began: the previous epoch's record, or for the first the dataset's (one
    # GetItem per epoch, whichever it is: the cost model's epoch is every epoch)
    previous = store.runs.get_epoch_metrics(end.run_id, end.epoch - 1) if end.epoch > 1 else None
    since = previous["created_at"] if previous else store.runs.dataset_created_at(end.run_id)
    # the divergence guard: a non-finite loss is not recorded (nor can it travel as JSON); the
    # run stops, its model the version the previous epoch evaluated
    last_good = int(previous["version"]) if previous else 0
    check_evaluation(
        train_loss, val_loss, epoch=end.epoch, steps=end.version - last_good, version=last_good
    )
    dal.save_epoch_metrics(store, end.run_id, metrics.model_copy(update={"version": end.version}))
    logger.info("epoch evaluated", extra={"run_id": end.run_id, **metrics.row()})
    report_epoch(config.pipeline_name, end, metrics, split.n_train, previous, since)
    return run_progress(
        config, next_epoch=end.epoch + 1, version=end.version, metrics=metrics.row(),
        attempt=end.attempt,
    )  # fmt: skip


def report_epoch(
    pipeline: str,
    end: EpochEnd,
    metrics: EpochMetrics,
    n_train: int,
    previous: dict[str, Any] | None,
    since: str | None,
) -> None:
    """The epoch's CloudWatch metrics (``trainer.metrics``): its wall time runs from ``since``
    (the previous epoch's evaluation, the dataset's preparation for the first) to now."""
    target = settings.metrics_target()
    if target is None:
        return
    now = timestamp(time.time())
    emit_epoch(
        EpochReport(
            pipeline=pipeline, run_id=end.run_id, epoch=end.epoch, version=end.version,
            steps=end.version - int(previous["version"]) if previous else end.version,
            n_train=n_train, train_loss=metrics.train_loss, val_loss=metrics.val_loss,
            val_accuracy=metrics.val_accuracy,
            wall_seconds=None if since is None else seconds_between(since, now),
            previous_val_loss=float(previous["val_loss"]) if previous else None,
        ),
        namespace=target[0], service=target[1],
    )  # fmt: skip


handler = lambda_edge(run, EpochEnd)
