"""Initialize a run: validate the config and list the dataset's shards. Writes nothing: the
shards are checked next (``CheckShards``), before anything of the run is stored."""

import json

from trainer import dal
from trainer.config import check_execution_name, parse_config
from trainer.data.blocks import shard_groups
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import InitializeRequest, RunPlan
from trainer.store import Store


def run(store: Store, request: InitializeRequest) -> RunPlan:
    config = parse_config({"run_id": request.execution_name} | request.config)
    check_execution_name(config, request.execution_name)
    listing = dal.list_source(store, config.dataset.source)
    groups = shard_groups(len(listing.shards))
    logger.info("run initialized", run_id=config.run_id, shards=len(listing.shards))
    return RunPlan(
        run_id=config.run_id,
        config=json.loads(config.to_json()),
        shards=len(listing.shards),
        groups=list(range(groups)),
        parallel=min(config.workers, groups),
    )


handler = lambda_edge(run, InitializeRequest)
