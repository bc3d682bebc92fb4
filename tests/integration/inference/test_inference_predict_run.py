"""``stepnet predict RUN_ID``: the run's exported model read from the stack's bucket."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stepnet import cli
from stepnet.client import StackResources, StepnetClient
from stepnet.predict import model_from_run

Forward = Any  # conftest's forward fixture: (model folder, X) -> the model's own forward pass
Promote = Any  # conftest's promote fixture: (pipeline, model folder) -> its pointer


@pytest.fixture
def client(container: Any) -> StepnetClient:
    resources = StackResources(
        stack_name="stepnet", region=container.region, training_arn="arn:unused",
        bucket=container.bucket, runs_table=container.runs_table,
        tensors_table=container.tensors_table,
    )  # fmt: skip
    return StepnetClient(resources)


def test_a_run_s_model_is_read_from_the_bucket(
    client: StepnetClient, promote: Promote, classifier_dir: Path, forward: Forward
) -> None:
    # Given the run's model exported to runs/<run_id>/model/
    production = promote("digits", classifier_dir)
    X = np.random.default_rng(2).uniform(0, 16, size=(20, 64))

    # When
    model = model_from_run(client, production.run_id)

    # Then
    assert (model.run_id, model.version) == (production.run_id, production.version)
    assert np.array_equal(model.predict(X).outputs, forward(classifier_dir, X))


def test_stepnet_predict_with_a_run_id(
    tmp_path: Path,
    client: StepnetClient,
    promote: Promote,
    classifier_dir: Path,
    forward: Forward,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the stack's client (its resources come from CloudFormation outside tests)
    monkeypatch.setattr(cli, "_client", lambda args: client)
    production = promote("digits", classifier_dir)
    X = np.random.default_rng(3).uniform(0, 16, size=(7, 64))
    np.savez(tmp_path / "rows.npz", X=X)
    out = tmp_path / "out.csv"

    # When
    code = cli.main(["predict", production.run_id, str(tmp_path / "rows.npz"), "--out", str(out)])
    missing = cli.main(["predict", "no-such-run", str(tmp_path / "rows.npz"), "--out", str(out)])

    # Then
    assert code == 0
    with out.open() as file:
        lines = list(csv.reader(file))
    assert np.array_equal(
        np.array([line[1:] for line in lines[1:]], np.float32), forward(classifier_dir, X)
    )
    assert missing == 2
    assert "run no-such-run has no exported model" in capsys.readouterr().out.replace("\n", "")
