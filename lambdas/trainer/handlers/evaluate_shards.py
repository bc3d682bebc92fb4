"""Evaluate an epoch's final weights on one group of shards: per shard, the loss sums (and
correct classifications) of its validation rows and, unless the train loss is ``running``, of
its training rows, read chunk by chunk."""

import numpy as np

from trainer import dal
from trainer.data.blocks import group_shards
from trainer.handlers._edge import lambda_edge
from trainer.messages import EvaluationTask
from trainer.store import Store
from trainer.training.step import evaluate_shard


def run(store: Store, task: EvaluationTask) -> EvaluationTask:
    config = dal.run_config(store, task.run_id)
    dataset = dal.load_dataset(store, task.run_id)
    split = dataset.split(config.dataset.validation_fraction, config.seed)
    params = dal.load_params(store, task.run_id, task.version, config.n_layers)
    readers = dal.shard_readers(store, dataset)
    shards = group_shards(len(dataset.shards), task.group)
    results = [evaluate_shard(config, dataset, readers[s], split, s, params) for s in shards]
    dal.save_evaluation(store, task, {
        "shards": np.array(list(shards), dtype=np.int64),
        "train_loss": np.array([r.train_loss for r in results], dtype=np.float64),
        "train_rows": np.array([r.train_rows for r in results], dtype=np.int64),
        "val_loss": np.array([r.val_loss for r in results], dtype=np.float64),
        "val_rows": np.array([r.val_rows for r in results], dtype=np.int64),
        "val_correct": np.array([r.val_correct for r in results], dtype=np.int64),
    })  # fmt: skip
    return task


handler = lambda_edge(run, EvaluationTask)
