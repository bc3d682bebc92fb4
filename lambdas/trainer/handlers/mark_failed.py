"""Mark a failed run FAILED with its cause: the Training machine's every failure path runs it
before its Fail state (a failure of its own is caught there, so the original error stands).

The caught error's readable cause (``trainer.executions.readable_cause``: the innermost Lambda
error of nested epoch and chunk failures) is recorded in the run's status record, trimmed; a
``DivergenceError`` cause is read back into where the run diverged (the Training machine then
exports the last good weights) and counted in the ``Diverged`` metric. A run refused before
anything of it was written has no record and gets none; a run of the same id but another config
(refused by PrepareShards) is not this execution's and is left as it is; a resume's execution
marks the run it resumed, keeping the resume's ``attempt`` (``dal.failed_run``). Safe to run twice: the same record again
(and at most one more ``Diverged`` data point).
"""

from trainer import dal, settings
from trainer.executions import readable_cause
from trainer.handlers._edge import lambda_edge, logger
from trainer.messages import FailRequest, RunFailure
from trainer.metrics import emit_divergence
from trainer.store import Store
from trainer.training.divergence import Divergence


def run(store: Store, request: FailRequest) -> RunFailure:
    caught = request.error
    cause = readable_cause({"error": caught.error, "cause": caught.cause})
    run_id = dal.failed_run(store, request.execution_name, request.execution_input)
    # a run that recorded nothing ran no step: it cannot have diverged, nothing is exported
    diverged = Divergence.from_cause(cause) if run_id is not None else None
    if run_id is not None:
        dal.fail_run(store, run_id, caught.error, cause, diverged)
    logger.info("run failed", run_id=run_id, execution=request.execution_name, error=caught.error)
    target = settings.metrics_target()
    if diverged is not None and run_id is not None and target is not None:
        pipeline = dal.run_config(store, run_id).pipeline_name
        emit_divergence(pipeline, run_id, diverged, namespace=target[0], service=target[1])
    return RunFailure(run_id=run_id, cause=cause, diverged=diverged)


handler = lambda_edge(run, FailRequest)
