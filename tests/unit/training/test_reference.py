"""stepnet.reference and ``stepnet reference``: the single-process trainer and its outputs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from rich.progress import Progress

from stepnet.cli import _StepBar, _steps_per_epoch, main
from stepnet.datasets import synthetic_regression, write_npz
from stepnet.reference import TrainedModel, prepare_dataset, train
from trainer.config import RunConfig, parse_config
from trainer.training.schedule import step_layout

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "digits.json"


@pytest.fixture(scope="module")
def digits_config() -> RunConfig:
    return parse_config(EXAMPLE.read_text())


@pytest.fixture(scope="module")
def digits_trained(digits_config: RunConfig) -> TrainedModel:
    """The example trained for its 20 epochs (about a second)."""
    return train(digits_config)


def model_weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return dict(archive)


def regression_config(source: Path, run_id: str = "reg-ref") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "dataset": {"source": str(source)},
        "model": {
            "layers": [{"units": 16, "activation": "tanh"}, {"units": 2, "activation": "linear"}],
            "init": "xavier",
        },
        "loss": "mse",
        "optimizer": {"name": "momentum", "learning_rate": 0.05},
        "l2": 0.001,
        "epochs": 3,
        "batch_size": 16,
        "workers": 3,
        "seed": 5,
    }


def test_the_example_learns_digits(digits_trained: TrainedModel) -> None:
    # Then (trained in the fixture)
    final = digits_trained.metrics[-1]
    assert final["val_accuracy"] >= 0.95, digits_trained.metrics
    assert final["train_loss"] < digits_trained.metrics[0]["train_loss"]


def test_metrics_have_one_row_per_epoch(digits_trained: TrainedModel) -> None:
    # Then
    rows = digits_trained.metrics
    assert len(rows) == 20
    assert [row["epoch"] for row in rows] == list(range(1, 21))
    for row in rows:
        assert set(row) == {"epoch", "train_loss", "val_loss", "val_accuracy"}
        assert row["train_loss"] > 0 and row["val_loss"] > 0
        assert 0.0 <= row["val_accuracy"] <= 1.0


def test_the_version_counts_every_step(
    digits_config: RunConfig, digits_trained: TrainedModel
) -> None:
    # Given
    n_train = prepare_dataset(digits_config).split.n_train

    # When
    steps = step_layout(n_train, digits_config.batch_size, digits_config.workers).n_steps

    # Then
    assert digits_trained.version == 20 * steps
    assert digits_trained.model["version"] == digits_trained.version


def test_training_stops_early_on_request(digits_config: RunConfig) -> None:
    # When
    trained = train(digits_config, epochs=2)

    # Then
    assert [row["epoch"] for row in trained.metrics] == [1, 2]


def test_the_cli_writes_model_and_metrics(
    tmp_path: Path, digits_trained: TrainedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given
    out = tmp_path / "out"

    # When
    code = main(["reference", str(EXAMPLE), "--out", str(out)])

    # Then
    assert code == 0
    weights = model_weights(out / "model.npz")
    assert sorted(weights) == ["W1", "W2", "b1", "b2"]
    assert weights["W1"].shape == (64, 64)
    assert weights["b1"].shape == (64,)
    assert weights["W2"].shape == (64, 10)
    assert weights["b2"].shape == (10,)
    for layer, (W, b) in enumerate(digits_trained.params, start=1):  # deterministic training
        np.testing.assert_array_equal(weights[f"W{layer}"], W)
        np.testing.assert_array_equal(weights[f"b{layer}"], b)

    model = json.loads((out / "model.json").read_text())
    assert model["layers"] == [
        {"units": 64, "activation": "relu"},
        {"units": 10, "activation": "softmax"},
    ]
    assert model["loss"] == "cross_entropy"
    assert model["run_id"] == "digits-demo"
    assert len(model["standardize"]["mean"]) == 64
    assert len(model["standardize"]["std"]) == 64
    assert all(s > 0 for s in model["standardize"]["std"])
    assert model["classes"] == list(range(10))
    assert model["n_features"] == 64

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run_id"] == "digits-demo"
    assert metrics["epochs"] == digits_trained.metrics


def test_the_cli_trains_a_regression_without_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given
    X, y = synthetic_regression(n=200, d=5, k=2, seed=1)
    source = write_npz(tmp_path / "reg.npz", X, y)
    config_path = tmp_path / "reg.json"
    # (six epochs: on 200 rows three are too few to be sure the loss has gone down)
    config_path.write_text(json.dumps(regression_config(source) | {"epochs": 6}))
    out = tmp_path / "out"

    # When
    code = main(["reference", str(config_path), "--out", str(out)])

    # Then
    assert code == 0
    weights = model_weights(out / "model.npz")
    assert weights["W1"].shape == (5, 16)
    assert weights["W2"].shape == (16, 2)
    model = json.loads((out / "model.json").read_text())
    assert model["classes"] is None
    assert model["loss"] == "mse"
    assert len(model["standardize"]["mean"]) == 5
    rows = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4, 5, 6]
    for row in rows:
        assert set(row) == {"epoch", "train_loss", "val_loss"}
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_the_cli_stops_a_diverging_run_at_its_last_good_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a ReLU regression whose plain SGD at learning rate 10 overflows in the first epoch
    X, y = synthetic_regression(n=200, d=5, k=2, seed=1)
    config = regression_config(write_npz(tmp_path / "reg.npz", X, y)) | {
        "model": {
            "layers": [{"units": 16, "activation": "relu"}, {"units": 2, "activation": "linear"}]
        },
        "optimizer": {"name": "sgd", "learning_rate": 10.0},
    }
    config_path = tmp_path / "reg.json"
    config_path.write_text(json.dumps(config))
    out = tmp_path / "out"

    # When
    code = main(["reference", str(config_path), "--out", str(out)])

    # Then it fails naming where, and the model is the last good version, marked so
    assert code == 1
    printed = " ".join(capsys.readouterr().out.split())
    assert "FAILED: DivergenceError: training diverged at epoch 1" in printed
    model = json.loads((out / "model.json").read_text())
    assert model["diverged"]["last_good_version"] == model["version"]
    assert all(np.isfinite(w).all() for w in model_weights(out / "model.npz").values())


def test_the_cli_reports_a_missing_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given
    config_path = tmp_path / "reg.json"
    config_path.write_text(json.dumps(regression_config(tmp_path / "absent.npz")))

    # When
    code = main(["reference", str(config_path), "--out", str(tmp_path / "out")])

    # Then
    assert code == 2
    assert "no file at" in " ".join(capsys.readouterr().out.split())  # rich may wrap lines
    assert not (tmp_path / "out").exists()


# --- `stepnet local`'s step bar: sized from the header as the reference's epochs are cut ----------


def _dataset_configs(folder: Path) -> list[RunConfig]:
    """The digits example, and 203 × 5 regressions with a 1-D target as .npz and as .csv."""
    X, y = synthetic_regression(n=203, d=5, k=1, seed=2)
    npz = write_npz(folder / "reg.npz", X, y)
    csv = folder / "reg.csv"
    rows = (",".join(str(float(v)) for v in [*x, t]) for x, t in zip(X, y, strict=True))
    csv.write_text("a,b,c,d,e,y\n" + "\n".join(rows) + "\n")
    configs = [parse_config(EXAMPLE.read_text())]
    for source in (npz, csv):
        document = regression_config(source)
        document["model"]["layers"][-1]["units"] = 1
        configs.append(parse_config(document))
    return configs


def test_the_step_bar_counts_the_reference_steps(tmp_path: Path) -> None:
    # Given the builtin digits, and datasets as .npz and .csv files
    for config in _dataset_configs(tmp_path):
        # When
        steps = _steps_per_epoch(config)

        # Then
        n_train = prepare_dataset(config).split.n_train
        assert steps == step_layout(n_train, config.batch_size, config.workers).n_steps


def test_the_step_bar_has_no_size_for_an_s3_dataset() -> None:
    # Given
    document = json.loads(EXAMPLE.read_text())
    document["dataset"]["source"] = "s3://bucket/digits.npz"

    # When / Then
    assert _steps_per_epoch(parse_config(document)) is None


def test_the_step_bar_follows_the_updates_epoch_by_epoch() -> None:
    # Given a bar for 2 epochs of 3 steps
    progress = Progress(console=Console(file=io.StringIO()))
    bar = _StepBar(progress, steps=3, epochs=2)
    seen: list[tuple[str, float]] = []

    # When the run reports its updates
    for done in (0, 1, 2, 3, 5, 6):
        bar(done)
        seen += [(task.description, task.completed) for task in progress.tasks]

    # Then one bar shows the current epoch's steps, and none once the epochs are done
    assert seen == [
        ("epoch 1 steps", 0),
        ("epoch 1 steps", 1),
        ("epoch 1 steps", 2),
        ("epoch 2 steps", 0),
        ("epoch 2 steps", 2),
    ]
    assert progress.tasks == []
