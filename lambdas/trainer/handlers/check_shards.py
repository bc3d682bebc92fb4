"""Check one group of the dataset's shards: each one readable, non-empty, numeric, finite, of
one schema, with labels that fit the model. Writes nothing, so a bad shard fails the run before
anything of it is stored; the error names the shard."""

from trainer import dal
from trainer.config import parse_config
from trainer.data.blocks import group_shards
from trainer.data.dataset import shard_classes
from trainer.data.errors import fail
from trainer.data.shards import Schema, check_schemas, check_shard
from trainer.handlers._edge import lambda_edge
from trainer.messages import ShardCheck, ShardGroupTask
from trainer.store import Store
from trainer.training.memory import check_shard_fits, own_memory_mb


def run(store: Store, task: ShardGroupTask) -> ShardCheck:
    config = parse_config(task.config)
    listing = dal.list_source(store, config.dataset.source)
    units = config.model.layers[-1].units
    named: list[tuple[str, Schema]] = []
    rows: list[int] = []
    classes: set[int] = set()
    for index in group_shards(len(listing.shards), task.group):
        shard = listing.shards[index]
        check_shard_fits("CheckShards", shard.name, shard.size, own_memory_mb())
        checked = check_shard(
            dal.read_shard(store, shard), shard.name, label=config.dataset.label,
            classification=config.is_classification, n_outputs=units,
        )  # fmt: skip
        named.append((shard.name, checked.schema))
        rows.append(int(checked.X.shape[0]))
        if config.is_classification:
            classes.update(int(c) for c in shard_classes(checked.y))
            if len(classes) > units:
                raise fail(
                    f"the shards up to {shard.name} hold {len(classes)} classes but "
                    f"model.layers[-1].units is {units}; set it to the number of classes"
                )
    schema = check_schemas(named)
    return ShardCheck(
        group=task.group,
        first=named[0][0],
        shard_schema=schema,
        rows=rows,
        classes=sorted(classes) if config.is_classification else None,
    )


handler = lambda_edge(run, ShardGroupTask)
