"""No execution approaches Step Functions' 25,000-event history limit, whatever the epoch size:
an epoch runs its steps in Express chunks (each bounded by a step budget and an assumed
duration), and its Standard execution adds a few events per chunk."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stepnet.datasets import synthetic_classification, write_npz
from stepnet.local import run_local
from stepnet.reference import train
from tests.engine.conftest import digits_config, load_weights, max_weight_difference
from trainer.config import parse_config
from trainer.contract import names, workflow
from trainer.training import cursor, schedule

pytestmark = pytest.mark.engine


def _many_steps_config(path: Path, **changes) -> dict:
    config = {
        "run_id": "many-steps",
        "dataset": {"source": str(path), "validation_fraction": 0.1},
        "model": {"layers": [{"units": 3, "activation": "softmax"}]},
        "loss": "cross_entropy",
        "optimizer": {"name": "sgd", "learning_rate": 0.05},
        "epochs": 1,
        "batch_size": 1,
        "workers": 1,
        "seed": 5,
        "mode": "fused",
    }
    return config | changes


@pytest.mark.parametrize("mode", ["per_layer", "fused", "per_step"])
def test_events_per_step_is_exact(account, tmp_path: Path, mode: str) -> None:
    # Given the budget arithmetic the Plan handler uses
    config = parse_config(digits_config(run_id=f"count-{mode}", epochs=1, mode=mode))

    # When an epoch runs (one chunk: 12 steps, 45 micro-batches)
    run = run_local(config, None, account=account)

    # Then the chunk's history has exactly the events the formula predicts (plus its start and
    # end, its first Choice and its Succeed): per step its path's, per micro-batch a Map
    # iteration's (none per_step: the step's one Task computes them)
    events = run.express_histories[f"count-{mode}-epoch-001-part-01"]
    counts = Counter(e["type"] for e in events)
    entered = Counter(
        e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")
    )
    steps = entered[workflow.MORE_STEPS.name]
    microbatches = counts["MapIterationStarted"]
    per_microbatch = workflow.events_per_microbatch(mode, config.n_layers)
    per_step = workflow.history_events(workflow.step_path(mode))
    assert (steps, microbatches) == (12, 0 if mode == "per_step" else 45)
    assert len(events) == 2 + 2 + steps * per_step + microbatches * per_microbatch + 2
    assert schedule.events_per_step(workers=1, layers=config.n_layers, mode=mode) == (
        per_step + per_microbatch
    )
    assert len(events) == workflow.express_epoch_events(
        mode=mode, layers=config.n_layers, steps=12, microbatches=45, executions=1
    )
    # and the epoch's Standard execution too: Plan, one chunk, the evaluation of one group
    epoch = run.histories[f"count-{mode}-epoch-001"]
    assert len(epoch) == workflow.standard_epoch_events(executions=1, groups=1)
    assert workflow.evaluation_events(1) <= schedule.EVALUATION_EVENTS


@pytest.mark.slow
def test_an_epoch_of_1100_steps_stays_far_below_the_history_limit(account, tmp_path: Path) -> None:
    # Given an epoch of 1,100 one-example steps: more than one chunk's budget
    X, y = synthetic_classification(n=1222, d=4, k=3, seed=2)
    data = write_npz(tmp_path / "many.npz", X, y)
    config = parse_config(_many_steps_config(data))
    seconds = cursor.step_seconds(config, 4)
    chunk = schedule.steps_per_chunk(workers=1, layers=1, mode="fused", step_seconds=seconds)
    assert chunk < 1100

    # When
    run = run_local(config, tmp_path / "out", account=account)

    # Then the epoch ran its steps in ceil(1100 / chunk) Express chunks, and every history is
    # under the limit
    assert run.succeeded, run.description
    chunks = [f"many-steps-epoch-001-part-{p:02d}" for p in range(1, -(-1100 // chunk) + 1)]
    assert sorted(run.every_history) == ["many-steps", "many-steps-epoch-001", *chunks]
    largest = max(len(events) for events in run.every_history.values())
    assert largest <= names.HISTORY_EVENT_BUDGET + 50 < names.HISTORY_EVENT_LIMIT
    difference = max_weight_difference(
        train(config).params, load_weights(tmp_path / "out" / "model.npz")
    )
    assert difference <= 1e-6


def test_a_small_budget_splits_epochs_and_keeps_the_weights(account, tmp_path) -> None:
    # Given functions configured with a step budget of 5 steps per chunk (the real one is ~120
    # for this network): their environment says so, as a deployment's would
    config = parse_config(digits_config(run_id="parts", epochs=2, workers=4))

    # When
    with account.tuned(history_event_budget=5 * 167 + schedule.EVALUATION_EVENTS):
        run = run_local(config, tmp_path, account=account)

    # Then each 12-step epoch ran its steps in three chunks: part-01, part-02, part-03
    assert run.succeeded, run.description
    assert sorted(name for name in run.every_history if "epoch-002" in name) == [
        "parts-epoch-002",
        "parts-epoch-002-part-01",
        "parts-epoch-002-part-02",
        "parts-epoch-002-part-03",
    ]
    assert [row["express_executions"] for row in run.per_epoch] == [3, 3]
    difference = max_weight_difference(train(config).params, load_weights(tmp_path / "model.npz"))
    assert difference <= 1e-6
    assert np.isfinite(run.metrics[-1]["val_loss"])
