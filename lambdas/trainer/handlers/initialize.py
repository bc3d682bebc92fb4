"""Initialize a run: validate the config and dataset, store the prepared data, weights v0."""

from trainer import dal
from trainer.config import check_execution_name, parse_config
from trainer.data.prepare import prepare
from trainer.data.readers import read_dataset
from trainer.data.sources import read_source
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import InitializeRequest, RunProgress
from trainer.store import Store
from trainer.training.cursor import run_progress
from trainer.training.step import initial_state


def run(store: Store, request: InitializeRequest) -> RunProgress:
    config = parse_config({"run_id": request.execution_name} | request.config)
    check_execution_name(config, request.execution_name)
    data, name = read_source(store, config.dataset.source)
    X, y = read_dataset(data, name, config.dataset.label)
    prepared = prepare(
        X, y, classification=config.is_classification, n_outputs=config.model.layers[-1].units,
        validation_fraction=config.dataset.validation_fraction, seed=config.seed,
    )  # fmt: skip
    dal.create_run(store, config, prepared)
    params, optimizer = initial_state(config, prepared.X_train.shape[1])
    dal.save_params(store, config.run_id, 0, params)
    dal.save_optimizer(store, config.run_id, 0, optimizer)
    logger.info("run initialized", run_id=config.run_id, n_train=len(prepared.X_train))
    return run_progress(config, next_epoch=1, version=0)


handler = lambda_edge(run, InitializeRequest)
