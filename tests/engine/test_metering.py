"""The cost model (stepnet.billing.estimate, from the handlers' dry run) against what a metered
local run actually did.

Rule for the store: every request a handler makes is counted — writes as made, tensor reads as
the handlers ask for them ("cold": what a Lambda container without the tensor cached would
send). Per epoch, the model must equal the meter exactly: requests, capacity units, S3 calls and
bytes. The one exception is the run config, read once per container (so once per process here)
and deliberately not modeled per task: at most one config read per function.
For the fixed part of a run (Initialize, Export, Register, Promote) requests and capacity units
are exact too; of the bytes, Export's and the registry's differ (the metrics they write are the
dry run's numbers, not the run's).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.limits import tuned_limits

from stepnet.billing import estimate
from stepnet.billing.meter import Meter, history_usage
from stepnet.billing.usage import StoreUsage
from stepnet.client import epoch_counts
from stepnet.datasets import synthetic_classification, write_npz
from stepnet.engine import LocalAccount
from stepnet.local import run_local
from trainer.config import parse_config
from trainer.contract import workflow
from trainer.training import cursor, schedule

pytestmark = pytest.mark.engine

EPOCHS = 2
INLINE_LIMIT = 700  # bytes: some bundles of this network spill to S3, some stay inline
STORE_FIELDS = [f for f in StoreUsage().as_dict() if not f.startswith("config_")]


def _config(path: Path, mode: str) -> Any:
    return parse_config(
        {
            "run_id": f"metered-{mode.replace('_', '-')}",
            "dataset": {"source": str(path), "validation_fraction": 0.2},
            "model": {
                "layers": [
                    {"units": 8, "activation": "tanh"},
                    {"units": 3, "activation": "softmax"},
                ]
            },
            "loss": "cross_entropy",
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "l2": 0.001,
            "epochs": EPOCHS,
            # 80 training examples: 3 steps of up to 5 micro-batches of 7; the last step has
            # two micro-batches and the last of those only 3 examples
            "batch_size": 7,
            "workers": 5,
            "seed": 3,
            "mode": mode,
        }
    )


@pytest.fixture(scope="module")
def account() -> Iterator[LocalAccount]:
    """The meter observes the handlers' store from inside this process: handlers in threads."""
    with LocalAccount(isolation="threads") as local:
        yield local


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X, y = synthetic_classification(n=100, d=6, k=3, seed=4)
    return write_npz(tmp_path_factory.mktemp("metering") / "blobs.npz", X, y)


@pytest.fixture(scope="module", params=["per_layer", "fused", "per_step"])
def metered_run(request, account, dataset: Path) -> dict[str, Any]:
    """One metered run per mode, each epoch split into two executions by a small step budget."""
    mode = request.param
    config = _config(dataset, mode)
    per_step = schedule.events_per_step(workers=config.workers, layers=config.n_layers, mode=mode)
    budget = 2 * per_step + schedule.EVALUATION_EVENTS
    limits = tuned_limits(history_event_budget=budget, inline_limit_bytes=INLINE_LIMIT)
    with limits, Meter(account) as meter:
        run = run_local(config, None, account=account)
    model = estimate.model(
        config,
        modes=(mode,),
        inline_limit=INLINE_LIMIT,
        history_event_budget=budget,
        bucket=account.resources.bucket,  # the model's URI is in the records
    )
    return {
        "mode": mode,
        "config": config,
        "run": run,
        "meter": meter.functions(),
        "shapes": model.shapes,
        "model": model.epoch[mode],
        "fixed": model.run[mode],
        "parts": model.parts[mode],
    }


def test_the_metered_run_trains_and_splits_each_epoch(metered_run) -> None:
    # Given a metered run with a two-step budget per execution
    run, shapes = metered_run["run"], metered_run["shapes"]

    # Then it succeeded, and the model's three steps per epoch took two Express chunks besides
    # the epoch's Standard execution
    assert run.succeeded, run.description
    assert (shapes.n_train, shapes.steps, shapes.microbatches) == (80, 3, 12)
    assert metered_run["parts"] == 2
    assert [row["executions"] for row in run.per_epoch] == [1] * EPOCHS
    assert [row["express_executions"] for row in run.per_epoch] == [2] * EPOCHS


def test_state_transitions_equal_the_model_exactly(metered_run) -> None:
    # Given the model of one epoch and the run's histories
    run, model, config = metered_run["run"], metered_run["model"], metered_run["config"]

    # When transitions are counted from the histories (StateEntered events)
    per_epoch = [row["transitions"] + row["express_transitions"] for row in run.per_epoch]
    training = epoch_counts(run.histories[config.run_id])["transitions"]

    # Then each epoch's executions, and the Training execution, match the model
    assert per_epoch == [model.epoch_transitions + model.express_transitions] * EPOCHS
    assert training == workflow.training_transitions_per_run(1) + EPOCHS * (
        model.transitions - model.epoch_transitions
    )
    # and so do the Standard epoch executions' and the Express chunks', apart
    for epoch in range(1, EPOCHS + 1):
        name = cursor.epoch_name(config.run_id, epoch)
        chunks = [cursor.continuation_name(config.run_id, epoch, p) for p in (1, 2)]
        assert epoch_counts(run.histories[name])["transitions"] == model.epoch_transitions
        express = sum(epoch_counts(run.express_histories[c])["transitions"] for c in chunks)
        assert express == model.express_transitions
    # and the meter's reading of the histories: transitions, chunks and events (the logs' count)
    counted = history_usage(run.every_history, config.run_id, epochs=EPOCHS)
    assert (counted.transitions, counted.express_transitions) == (
        model.transitions, model.express_transitions
    )  # fmt: skip
    assert (counted.epoch_executions, counted.express_executions) == (1, 2)
    assert counted.history_events == model.history_events
    assert counted.express_history_events == model.express_history_events


def test_lambda_invocations_equal_the_model_exactly(metered_run) -> None:
    # Given the metered invocations per function
    meter, model, run = metered_run["meter"], metered_run["model"], metered_run["run"]

    # When compared per function with the model (per epoch times the epochs)
    counted = {name: m.invocations for name, m in meter.items()}
    expected = {name: u.invocations * EPOCHS for name, u in model.functions.items()}
    expected |= {name: 1 for name in workflow.RUN_FUNCTIONS}  # one group of shards

    # Then they are equal, and the histories agree (the run's functions run in the Training
    # execution, the evaluation in each epoch's)
    assert counted == expected
    in_epochs = sum(
        row["lambda_invocations"] + row["express_lambda_invocations"] for row in run.per_epoch
    )
    assert in_epochs == sum(counted.values()) - len(workflow.RUN_FUNCTIONS)


def test_store_requests_and_units_equal_the_model_exactly(metered_run) -> None:
    # Given the meter's cold counts and the model, per epoch function
    meter, model = metered_run["meter"], metered_run["model"]

    for name, usage in model.functions.items():
        # When the model's epoch is scaled to the run's epochs
        expected = usage.store.scaled(EPOCHS).as_dict()
        counted = meter[name].aws.as_dict()

        # Then every request, unit and byte is equal (config reads aside)
        assert {f: counted[f] for f in STORE_FIELDS} == {f: expected[f] for f in STORE_FIELDS}, name

    # and the run config was read at most once per function (once per process here)
    config_reads = sum(m.aws.config_reads for m in meter.values())
    assert 1 <= config_reads <= len(meter)


def test_some_tensors_spilled_to_s3_and_some_stayed_inline(metered_run) -> None:
    # Given the per-epoch store totals of the model
    store = metered_run["model"].store

    # Then the run exercised both paths of the store (S3 GETs also read the shards' rows)
    assert 0 < store.s3_puts < store.ddb_writes
    assert store.s3_gets > 0


def test_the_local_cache_only_removes_reads(metered_run) -> None:
    # Given what the local engine really sent and what cold containers would send
    for name, m in metered_run["meter"].items():
        # Then writes are the same and reads are never more
        assert m.local.ddb_writes == m.aws.ddb_writes, name
        assert m.local.s3_puts == m.aws.s3_puts, name
        assert m.local.ddb_reads <= m.aws.ddb_reads, name
        assert m.local.s3_gets <= m.aws.s3_gets, name


def test_initialize_and_export_requests_and_units_equal_the_model(metered_run) -> None:
    # Given the fixed part of the run (the shard passes read the dataset the client uploaded)
    meter, fixed = metered_run["meter"], metered_run["fixed"]

    for name in workflow.RUN_FUNCTIONS:
        counted, expected = meter[name].aws.as_dict(), fixed.functions[name].store.as_dict()

        # Then every request and unit is equal, and the bytes of those that read the dataset
        reads = ("Initialize", "CheckShards", "PrepareShards", "Start")
        fields = [f for f in STORE_FIELDS if not f.startswith("bytes_") or name in reads]
        assert {f: counted[f] for f in fields} == {f: expected[f] for f in fields}, name
