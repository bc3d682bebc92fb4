"""Small trained models for the inference tests: a digits classifier and a 2-output regressor,
trained by ``stepnet.reference`` (well under a second each) into folders, once per session.

The ``forward`` fixture is the model's own forward pass, what every prediction must equal bit
for bit: ``trainer.nn.predict`` on ``trainer.data.prepare.standardize(X, mean, std)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stepnet.datasets import synthetic_regression, write_npz
from stepnet.reference import train, write_outputs
from trainer.config import parse_config
from trainer.data.prepare import standardize
from trainer.data.readers import read_dataset
from trainer.data.sources import read_builtin
from trainer.nn import LayerParams, predict

CLASSIFIER: dict[str, Any] = {
    "run_id": "infer-digits",
    "dataset": {"source": "builtin:digits"},
    "model": {
        "layers": [{"units": 32, "activation": "relu"}, {"units": 10, "activation": "softmax"}]
    },
    "loss": "cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "epochs": 2,
    "batch_size": 64,
    "seed": 3,
}


def regressor_config(source: Path) -> dict[str, Any]:
    return {
        "run_id": "infer-regression",
        "dataset": {"source": str(source)},
        "model": {
            "layers": [{"units": 16, "activation": "tanh"}, {"units": 2, "activation": "linear"}]
        },
        "loss": "mse",
        "optimizer": {"name": "sgd", "learning_rate": 0.05},
        "epochs": 2,
        "batch_size": 32,
        "seed": 4,
    }


def train_into(folder: Path, document: dict[str, Any]) -> Path:
    config = parse_config(document)
    write_outputs(folder, train(config), config.run_id)
    return folder


def forward_pass(folder: Path, X: np.ndarray) -> np.ndarray:
    """The model's own forward pass on rows X (n, d): float32 (n, k)."""
    meta = json.loads((folder / "model.json").read_text())
    with np.load(folder / "model.npz") as archive:
        params = [
            LayerParams(archive[f"W{layer}"], archive[f"b{layer}"])
            for layer in range(1, len(meta["layers"]) + 1)
        ]
    mean = np.asarray(meta["standardize"]["mean"])
    std = np.asarray(meta["standardize"]["std"])
    activations = [layer["activation"] for layer in meta["layers"]]
    return predict(params, activations, standardize(X, mean, std))


Forward = Callable[[Path, np.ndarray], np.ndarray]


@pytest.fixture(scope="session")
def forward() -> Forward:
    """``forward(model_folder, X)``: the model's own forward pass on rows X (n, d)."""
    return forward_pass


@pytest.fixture(scope="session")
def digits_rows() -> np.ndarray:
    """The builtin digits' X (1797, 64) as stored (float)."""
    X, _ = read_dataset(*read_builtin("builtin:digits"), None)
    return X


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_into(tmp_path_factory.mktemp("classifier"), CLASSIFIER)


@pytest.fixture(scope="session")
def regression_rows() -> tuple[np.ndarray, np.ndarray]:
    X, y = synthetic_regression(n=300, d=8, k=2, seed=9)
    return X, y


@pytest.fixture(scope="session")
def regressor_dir(
    tmp_path_factory: pytest.TempPathFactory, regression_rows: tuple[np.ndarray, np.ndarray]
) -> Path:
    folder = tmp_path_factory.mktemp("regressor")
    source = write_npz(folder / "data.npz", *regression_rows)
    return train_into(folder, regressor_config(source))
