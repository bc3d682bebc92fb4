"""The inference handlers on moto's S3: a trained classifier and regressor uploaded as runs,
``promote`` to point a pipeline at one, and each test in a fresh container
(``inference.handlers.reset``) that re-reads the pointer on every call (TTL 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import handlers
from inference.pointer import ProductionPointer, pointer_key
from stepnet.datasets import synthetic_regression, write_npz
from stepnet.reference import train, write_outputs
from trainer.config import parse_config
from trainer.data.prepare import standardize
from trainer.nn import LayerParams, predict

LAYERS = [{"units": 16, "activation": "relu"}, {"units": 10, "activation": "softmax"}]
CLASSIFIER: dict[str, Any] = {
    "run_id": "serve-digits",
    "dataset": {"source": "builtin:digits"},
    "model": {"layers": LAYERS},
    "loss": "cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "epochs": 1,
    "batch_size": 64,
}


def _train(folder: Path, document: dict[str, Any]) -> Path:
    config = parse_config(document)
    write_outputs(folder, train(config), config.run_id)
    return folder


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("serve-classifier"), CLASSIFIER)


@pytest.fixture(scope="session")
def second_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    document = CLASSIFIER | {"run_id": "serve-digits-2", "seed": 1, "epochs": 2}
    return _train(tmp_path_factory.mktemp("serve-classifier-2"), document)


@pytest.fixture(scope="session")
def regressor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve-regressor")
    source = write_npz(folder / "data.npz", *synthetic_regression(n=200, d=5, k=2, seed=2))
    return _train(
        folder,
        {
            "run_id": "serve-regression",
            "dataset": {"source": str(source)},
            "model": {
                "layers": [{"units": 8, "activation": "tanh"}, {"units": 2, "activation": "linear"}]
            },
            "loss": "mse",
            "optimizer": {"name": "sgd", "learning_rate": 0.05},
            "epochs": 1,
            "batch_size": 32,
        },
    )


def forward_pass(folder: Path, X: np.ndarray) -> np.ndarray:
    """The model's own forward pass on rows X (n, d): float32 (n, k)."""
    meta = json.loads((folder / "model.json").read_text())
    with np.load(folder / "model.npz") as archive:
        params = [
            LayerParams(archive[f"W{layer}"], archive[f"b{layer}"])
            for layer in range(1, len(meta["layers"]) + 1)
        ]
    mean, std = (np.asarray(meta["standardize"][s]) for s in ("mean", "std"))
    activations = [layer["activation"] for layer in meta["layers"]]
    return predict(params, activations, standardize(X, mean, std))


@pytest.fixture(scope="session")
def forward() -> Callable[[Path, np.ndarray], np.ndarray]:
    return forward_pass


Promote = Callable[[str, Path], ProductionPointer]


@pytest.fixture
def container(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh inference container on the mocked account (pointer re-read on every call)."""
    monkeypatch.setenv("STEPNET_POINTER_TTL_SECONDS", "0")
    handlers.reset()
    yield aws
    handlers.reset()


@pytest.fixture
def promote(container: Any) -> Promote:
    """``promote(pipeline, model_folder)``: upload the folder as its run's exported model and
    point the pipeline at it; returns the pointer."""

    def promote(pipeline: str, folder: Path) -> ProductionPointer:
        meta = json.loads((folder / "model.json").read_text())
        production = ProductionPointer(meta["run_id"], meta["version"])
        for name in ("model.npz", "model.json"):
            container.s3.put_object(
                Bucket=container.bucket,
                Key=production.model_prefix + name,
                Body=(folder / name).read_bytes(),
            )
        container.s3.put_object(
            Bucket=container.bucket, Key=pointer_key(pipeline), Body=production.to_json()
        )
        return production

    return promote
