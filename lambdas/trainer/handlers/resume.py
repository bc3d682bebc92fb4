"""Resume a stopped run: find its last complete weights version, mark it RUNNING again, say
which epoch, step and version it continues from (``trainer.training.resume``)."""

from trainer import dal
from trainer.executions import ResumeError
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import ResumeRequest, RunProgress
from trainer.store import Store
from trainer.store.runs import SUCCEEDED
from trainer.training.cursor import run_progress
from trainer.training.resume import last_version, resume_point
from trainer.training.schedule import step_layout


def run(store: Store, request: ResumeRequest) -> RunProgress:
    if store.runs.get_status(request.run_id)["status"] == SUCCEEDED:
        raise ResumeError(
            f"run {request.run_id!r} has finished (SUCCEEDED): its model is exported and "
            "registered; nothing to resume"
        )
    config = dal.run_config(store, request.run_id)
    dataset = dal.load_dataset(store, request.run_id)
    split = dataset.split(config.dataset.validation_fraction, config.seed)
    steps = step_layout(split.n_train, config.batch_size, config.workers).n_steps
    version = last_version(
        lambda v: dal.has_version(store, config.run_id, v), config.epochs * steps
    )
    evaluated = len(dal.epoch_metrics(store, config.run_id))
    point = resume_point(version=version, steps=steps, epochs=config.epochs, evaluated=evaluated)
    dal.resume_run(store, config.run_id, request.attempt, point.version)
    logger.info(
        "run resumed", run_id=config.run_id, attempt=request.attempt, epoch=point.epoch,
        step=point.step, version=point.version, last_complete=version,
    )  # fmt: skip
    return run_progress(
        config, next_epoch=point.epoch, version=point.version, attempt=request.attempt
    )


handler = lambda_edge(run, ResumeRequest)
