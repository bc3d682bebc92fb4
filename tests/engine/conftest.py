"""Fixtures for whole executions on the local engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stepnet.datasets import synthetic_regression, write_npz
from stepnet.engine import LocalAccount

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


STORES = ("emulated", "home")  # where an account's runs are kept (LocalAccount's home)
each_store = pytest.mark.parametrize("account", STORES, indirect=True)
"""Run a test on an account of each store: its DynamoDB and S3 (emulated), or a home."""


@pytest.fixture(scope="module")
def account(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalAccount]:
    """One emulated account per test module (runs in it use distinct run ids); its store is
    moto's DynamoDB and S3, or a home (``@each_store``: one account at a time, as the engine
    allows, pytest grouping the tests by store)."""
    home = tmp_path_factory.mktemp("home") if getattr(request, "param", None) == "home" else None
    with LocalAccount(home=home) as local:
        yield local


def digits_config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((EXAMPLES / "digits.json").read_text())
    config.update(changes)
    return config


@pytest.fixture(scope="session")
def regression_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X, y = synthetic_regression(n=300, d=6, k=2, seed=3)
    return write_npz(tmp_path_factory.mktemp("data") / "regression.npz", X, y)


def regression_config(path: Path, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "run_id": "regression",
        "dataset": {"source": str(path), "validation_fraction": 0.25},
        "model": {
            "layers": [
                {"units": 16, "activation": "tanh"},
                {"units": 8, "activation": "relu"},
                {"units": 2, "activation": "linear"},
            ],
            "init": "xavier",
        },
        "loss": "mse",
        "optimizer": {"name": "momentum", "learning_rate": 0.02, "momentum": 0.8},
        "l2": 0.001,
        "epochs": 2,
        "batch_size": 16,
        "workers": 3,
        "seed": 11,
    }
    config.update(changes)
    return config


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """A model.npz's arrays by name (``W1``, ``b1``, …)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def max_weight_difference(
    a: list[tuple[np.ndarray, np.ndarray]], b: dict[str, np.ndarray]
) -> float:
    """Largest |difference| between a parameter list and a model.npz's arrays."""
    worst = 0.0
    for index, (W, bias) in enumerate(a, start=1):
        worst = max(worst, float(np.max(np.abs(W - b[f"W{index}"]))))
        worst = max(worst, float(np.max(np.abs(bias - b[f"b{index}"]))))
    return worst
