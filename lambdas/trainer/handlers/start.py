"""Start a run once its shards are prepared: merge their training statistics (in shard order,
exactly) and classes, record the prepared dataset, draw weights version 0."""

from trainer import dal
from trainer.data.dataset import prepare_dataset
from trainer.data.shards import check_schemas
from trainer.handlers._edge import lambda_edge, logger
from trainer.handlers.prepare_shards import shard_rows
from trainer.messages import RunProgress, StartRequest
from trainer.store import Store
from trainer.training.cursor import run_progress
from trainer.training.step import initial_state


def run(store: Store, request: StartRequest) -> RunProgress:
    config = dal.run_config(store, request.run_id)
    schema = check_schemas([(check.first, check.shard_schema) for check in request.checks])
    shards = len(shard_rows(request.checks))
    dataset, split = prepare_dataset(
        config, schema, dal.load_prepared_shards(store, config.run_id, shards)
    )
    dal.start_run(store, config, dataset, split)
    params, optimizer = initial_state(config, schema.n_features)
    dal.save_params(store, config.run_id, 0, params)
    dal.save_optimizer(store, config.run_id, 0, optimizer)
    logger.info("run started", run_id=config.run_id, n_train=split.n_train, n_val=split.n_val)
    return run_progress(config, next_epoch=1, version=0)


handler = lambda_edge(run, StartRequest)
