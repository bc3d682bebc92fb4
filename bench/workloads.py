"""The benchmark's workloads: what is trained, and how much of it the local engine runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from stepnet.datasets import synthetic_classification, write_npz

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# The MNIST-sized network and its training, 784-256-128-10, Adam, batch 128 × 4 workers: the
# workload the AWS figures are quoted for (``make bench``, ``python -m bench.large``).
MNIST_SIZED: Final[dict[str, Any]] = {
    "model": {
        "layers": [
            {"units": 256, "activation": "relu"},
            {"units": 128, "activation": "relu"},
            {"units": 10, "activation": "softmax"},
        ],
    },
    "loss": "cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.001},
    "l2": 0.0001,
    "epochs": 1,
    "batch_size": 128,
    "workers": 4,
    "seed": 7,
}


@dataclass(frozen=True)
class LocalPlan:
    """How much of a workload the local engine runs in one mode: ``epochs`` whole epochs
    (None: the config's), or ``steps`` steps of epoch 1, extrapolated to the epoch."""

    epochs: int | None = None
    steps: int | None = None


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    description: str
    config: dict[str, Any]
    local: dict[str, LocalPlan]
    dataset: Callable[[Path], str] | None = None  # writes the dataset into a folder, returns it
    notes: list[str] = field(default_factory=list)


def _digits_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / "digits.json").read_text())
    return document


def _mnist_like(n: int) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        X, y = synthetic_classification(n=n, d=784, k=10, seed=0)
        return str(write_npz(folder / f"mnist-like-{n}.npz", X, y))

    return write


def workloads(quick: bool = False) -> list[Workload]:
    """The three workloads; ``quick`` shrinks them for a smoke run (seconds, not minutes)."""
    digits = _digits_document() | {"run_id": "bench-digits"}
    if quick:
        digits["epochs"] = 2
    mnist_n = 7_000 if quick else 70_000  # 1/7 validation: 60,000 training examples
    mnist = {
        "run_id": "bench-mnist",
        "dataset": {"source": "<generated>", "validation_fraction": 1 / 7},
        **MNIST_SIZED,
        "model": MNIST_SIZED["model"] | {"init": "he"},  # as its published figures were measured
    }
    deep = _digits_document() | {
        "run_id": "bench-deep-narrow",
        "model": {
            "layers": [{"units": 16, "activation": "relu"}] * 8
            + [{"units": 10, "activation": "softmax"}],
            "init": "he",
        },
        "optimizer": {"name": "adam", "learning_rate": 0.002},
        "epochs": 1 if quick else 5,
        "batch_size": 8,
        "workers": 4,
    }
    return [
        Workload(
            name="digits",
            title="digits (examples/digits.json)",
            description="1,797 8×8 digits, 64-64-10, batch 32 × 4 workers, Adam, "
            f"{digits['epochs']} epochs",
            config=digits,
            local={"per_layer": LocalPlan(), "fused": LocalPlan(), "per_step": LocalPlan()},
        ),
        Workload(
            name="mnist-like",
            title="MNIST-sized synthetic classification",
            description=f"{mnist_n:,} × 784 Gaussian blobs, 10 classes (seed 0), 1/7 held out "
            f"({mnist_n * 6 // 7:,} training examples); 784-256-128-10, batch 128 × 4 workers, "
            "Adam, 1 epoch",
            config=mnist,
            # per_layer runs its whole epoch too (3,400 tasks): the model must equal the meter
            # exactly, and an extrapolation of a few steps does not (the rows' segments vary)
            local={
                "per_layer": LocalPlan(steps=3) if quick else LocalPlan(),
                "fused": LocalPlan(),
                "per_step": LocalPlan(),
            },
            dataset=_mnist_like(mnist_n),
        ),
        Workload(
            name="deep-narrow",
            title="deep-narrow on digits (orchestration stress)",
            description="digits, 64-(16×8)-10 (9 layers), batch 8 × 4 workers, Adam, "
            f"{deep['epochs']} epochs",
            config=deep,
            local={
                "per_layer": LocalPlan(steps=5) if quick else LocalPlan(epochs=1),
                "fused": LocalPlan(),
                "per_step": LocalPlan(),
            },
            notes=["per_layer runs 1 whole epoch (its time per epoch is that epoch's)"],
        ),
    ]
