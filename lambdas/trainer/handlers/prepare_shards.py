"""Prepare one group of the dataset's shards, once every shard is checked: record the run's
config, convert a shard whose rows cannot be read in place (a CSV, a compressed .npz, a single
file, shuffled once) into the read layout, and store each shard's layout, the moments of its
training rows and its classes."""

import io

import numpy as np

from trainer import dal
from trainer.config import parse_config
from trainer.data.blocks import group_shards, split_blocks
from trainer.data.dataset import (
    PreparedShard,
    ShardInfo,
    merge_classes,
    shard_classes,
    shard_moments,
)
from trainer.data.errors import fail
from trainer.data.rows import ArrayShard
from trainer.data.shards import (
    check_schemas,
    check_shard,
    encode_shard,
    npz_layout,
    single_file_shards,
)
from trainer.handlers._edge import lambda_edge
from trainer.messages import PrepareTask, ShardCheck, ShardGroupTask
from trainer.store import Store
from trainer.training.memory import check_shard_fits, own_memory_mb


def shard_rows(checks: list[ShardCheck]) -> tuple[int, ...]:
    """Every shard's rows, in shard order, from the groups' checks."""
    return tuple(rows for check in sorted(checks, key=lambda c: c.group) for rows in check.rows)


def run(store: Store, task: PrepareTask) -> ShardGroupTask:
    config = parse_config(task.config)
    check_schemas([(check.first, check.shard_schema) for check in task.checks])
    rows = shard_rows(task.checks)
    split = split_blocks(
        rows, config.block_rows, config.dataset.validation_fraction, config.seed
    )  # before anything is written: a split that leaves no training block fails here
    if config.is_classification:  # and so do too few or too many classes in all the shards
        merge_classes(
            [np.asarray(check.classes or [], dtype=np.int64) for check in task.checks],
            config.model.layers[-1].units,
        )
    dal.create_run(store, config)
    listing = dal.list_source(store, config.dataset.source)
    if len(listing.shards) != len(rows):
        raise fail(f"{config.dataset.source} changed during the run; start it again")
    for index in group_shards(len(rows), task.group):
        shard = listing.shards[index]
        check_shard_fits("PrepareShards", shard.name, shard.size, own_memory_mb())
        checked = check_shard(
            dal.read_shard(store, shard), shard.name, label=config.dataset.label,
            classification=config.is_classification, n_outputs=config.model.layers[-1].units,
        )  # fmt: skip
        X, y = checked.X, checked.y
        if X.shape[0] != rows[index]:
            raise fail(f"shard {shard.name} changed during the run; start it again")
        uri, layout = shard.uri, checked.layout
        if listing.single_file or layout is None:
            if listing.single_file:
                ((X, y),) = single_file_shards(X, y)
            data = encode_shard(X, y)
            uri = dal.save_shard_file(store, config.run_id, index, data)
            layout = npz_layout(io.BytesIO(data))
            assert layout is not None  # the read layout, as encoded
        prepared = PreparedShard(
            shard=ShardInfo(
                uri=uri, rows=rows[index], x_offset=layout[0].offset, y_offset=layout[1].offset
            ),
            moments=shard_moments(ArrayShard(X, y), split, index, int(X.shape[1])),
            classes=shard_classes(y) if config.is_classification else None,
        )
        dal.save_prepared_shard(store, config.run_id, index, prepared)
    return ShardGroupTask(run_id=task.run_id, config=task.config, group=task.group)


handler = lambda_edge(run, PrepareTask)
