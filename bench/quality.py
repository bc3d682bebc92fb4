"""``python -m bench.quality``: model quality at equal work, stepnet against scikit-learn's MLP.

For three classification sets — the builtin digits, iris (``sklearn.datasets.load_iris``, written
to an .npz) and a ``make_classification`` set — and several seeds each, trains:

* ``stepnet reference`` with each weight initialization (``he``, ``xavier``, ``xavier_uniform``:
  :mod:`trainer.nn.initializers`; the pipeline's weights equal the reference's bit for bit, so
  this is the quality of ``stepnet local`` and of a deployed run too);
* scikit-learn's ``MLPClassifier`` and, if installed, PyTorch (:mod:`bench.baselines`).

Equal work: for seed s every system gets the same prepared data (stepnet's split and
standardization for seed s), the same layers and activations, optimizer and hyper-parameters,
epochs, L2 (scikit-learn ``alpha = l2 × batch_size × workers``: it divides alpha by the batch's
rows) and examples per optimizer update (``batch_size × workers``); initial weights and shuffles
are each system's own (scikit-learn's and PyTorch's seeded with s).

Reports the final epoch's validation accuracy (mean ± std over seeds), stepnet's validation
loss, and each stepnet variant's accuracy minus scikit-learn's on the same split (paired, mean ±
std). Writes ``docs/benchmarks/quality.md`` (``--out`` for elsewhere); ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.baselines import run_sklearn, run_torch, torch_version
from stepnet.datasets import write_npz
from stepnet.reference import prepare_dataset, train
from trainer.config import RunConfig, parse_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "benchmarks" / "quality.md"
INITS = ("he", "xavier", "xavier_uniform")
DEFAULT_INIT = RunConfig.model_fields["model"].annotation.model_fields["init"].default  # type: ignore[union-attr]


@dataclass(frozen=True)
class QualitySet:
    name: str
    description: str
    config: dict[str, Any]  # a run config without seed and model.init
    write: Callable[[Path], str] | None = None  # writes the dataset into a folder, returns it


def _iris(folder: Path) -> str:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return str(write_npz(folder / "iris.npz", X, y))


def _classification(folder: Path) -> str:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=4000, n_features=20, n_informative=10, n_redundant=4, n_classes=4,
        n_clusters_per_class=2, class_sep=1.0, flip_y=0.02, random_state=0,
    )  # fmt: skip
    return str(write_npz(folder / "classification.npz", X, y))


def _relu_net(*units: int) -> list[dict[str, Any]]:
    hidden = [{"units": n, "activation": "relu"} for n in units[:-1]]
    return [*hidden, {"units": units[-1], "activation": "softmax"}]


SETS = (
    QualitySet(
        "digits",
        "builtin digits, 1,797 × 64, 10 classes, 20% validation; 64-64-10 relu, Adam lr 0.005, "
        "l2 1e-4, 20 epochs, batch 32 × 4 workers (examples/digits.json's network and training)",
        {
            "dataset": {"source": "builtin:digits", "validation_fraction": 0.2},
            "model": {"layers": _relu_net(64, 10)},
            "loss": "cross_entropy",
            "optimizer": {"name": "adam", "learning_rate": 0.005},
            "l2": 0.0001,
            "epochs": 20,
            "batch_size": 32,
            "workers": 4,
        },
    ),
    QualitySet(
        "iris",
        "sklearn.datasets.load_iris, 150 × 4, 3 classes, 30% validation (45 examples: one is "
        "2.2 points); 4-16-3 relu, Adam lr 0.01, l2 1e-4, 50 epochs, batch 16 × 1",
        {
            "dataset": {"source": "<iris>", "validation_fraction": 0.3},
            "model": {"layers": _relu_net(16, 3)},
            "loss": "cross_entropy",
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "l2": 0.0001,
            "epochs": 50,
            "batch_size": 16,
            "workers": 1,
        },
        _iris,
    ),
    QualitySet(
        "make_classification",
        "make_classification(n_samples=4000, n_features=20, n_informative=10, n_redundant=4, "
        "n_classes=4, n_clusters_per_class=2, flip_y=0.02, random_state=0), 25% validation; "
        "20-64-64-4 relu, Adam lr 0.001, l2 1e-4, 30 epochs, batch 32 × 2 workers",
        {
            "dataset": {"source": "<classification>", "validation_fraction": 0.25},
            "model": {"layers": _relu_net(64, 64, 4)},
            "loss": "cross_entropy",
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            "l2": 0.0001,
            "epochs": 30,
            "batch_size": 32,
            "workers": 2,
        },
        _classification,
    ),
)


def _config(
    quality_set: QualitySet, source: str | None, seed: int, init: str, quick: bool
) -> RunConfig:
    document = json.loads(json.dumps(quality_set.config))
    document["run_id"] = f"quality-{quality_set.name}-{seed}".replace("_", "-")
    document["seed"] = seed
    document["model"]["init"] = init
    if source is not None:
        document["dataset"]["source"] = source
    if quick:
        document["epochs"] = 2
    return parse_config(document)


def measure(quality_set: QualitySet, seeds: list[int], folder: Path, quick: bool) -> dict[str, Any]:
    """Every system on every seed: ``{system: {"accuracy": [...], "val_loss": [...]}}``."""
    source = quality_set.write(folder) if quality_set.write is not None else None
    runs: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        base = _config(quality_set, source, seed, DEFAULT_INIT, quick)
        data = prepare_dataset(base)  # the same split and standardization for every system
        for init in INITS:
            final = train(_config(quality_set, source, seed, init, quick), data).metrics[-1]
            run = runs.setdefault(f"stepnet, init {init}", {"accuracy": [], "val_loss": []})
            run["accuracy"].append(float(final["val_accuracy"]))
            run["val_loss"].append(float(final["val_loss"]))
        for system, runner in (("scikit-learn MLPClassifier", run_sklearn), ("PyTorch", run_torch)):
            result = runner(base, data.prepared)  # the baselines get the prepared arrays
            if "skipped" not in result:
                runs.setdefault(system, {"accuracy": []})["accuracy"].append(result["val_accuracy"])
        print(f"  {quality_set.name} seed {seed} done", file=sys.stderr, flush=True)
    return runs


def _mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    array = np.asarray(values) * scale
    return f"{array.mean():.{digits}f} ± {array.std():.{digits}f}"


def render(results: dict[str, dict[str, Any]], seeds: list[int], seconds: float) -> str:
    import sklearn

    lines = [
        "# Model quality at equal work",
        "",
        "Generated by `python -m bench.quality` (`bench/quality.py`); do not edit by hand.",
        "",
        f"- Run: {datetime.now(UTC).isoformat(timespec='seconds')}, {seconds:.0f} s; "
        f"Python {platform.python_version()}, numpy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}, torch {torch_version() or 'not installed'}",
        f"- Seeds: {', '.join(map(str, seeds))}. Seed s sets stepnet's split, initial weights "
        "and shuffles, and scikit-learn's and PyTorch's `random_state`.",
        "- Equal work: the same prepared data (stepnet's split and standardization for the "
        "seed), layers, activations, optimizer and hyper-parameters, epochs, L2 (scikit-learn "
        "`alpha = l2 × batch_size × workers`, as it divides alpha by the batch's rows) and "
        "examples per optimizer update (`batch_size × workers`); initial weights and shuffles "
        "are each system's own.",
        "- Accuracy and loss: the final epoch's, on the validation part, mean ± std over the "
        "seeds (in points for accuracy). *Δ vs scikit-learn*: stepnet's accuracy minus "
        "scikit-learn's on the same split, mean ± std over the seeds.",
        f"- stepnet's default initialization is `{DEFAULT_INIT}` (`model.init`); the "
        "pipeline's weights equal the reference's bit for bit, so these are also the "
        "qualities of `stepnet local` and of a deployed run. Why `he` trails: "
        "`lambdas/trainer/nn/initializers.py`.",
        "",
    ]
    for name, result in results.items():
        runs = result["runs"]
        sklearn_accuracy = np.asarray(runs["scikit-learn MLPClassifier"]["accuracy"])
        lines += [f"## {name}", "", result["description"] + ".", ""]
        lines += [
            "| system | val accuracy % | Δ vs scikit-learn (points) | val loss |",
            "| --- | ---: | ---: | ---: |",
        ]
        for system, run in runs.items():
            delta = "—"
            if system.startswith("stepnet"):
                delta = _mean_std(list(np.asarray(run["accuracy"]) - sklearn_accuracy), digits=2)
            loss = _mean_std(run["val_loss"], scale=1.0, digits=4) if "val_loss" in run else "—"
            label = f"**{system}** (default)" if system.endswith(f"init {DEFAULT_INIT}") else system
            lines.append(f"| {label} | {_mean_std(run['accuracy'])} | {delta} | {loss} |")
        lines.append("")
        lines.append("Per seed, val accuracy %:")
        lines.append("")
        for system, run in runs.items():
            each = ", ".join(f"{100 * a:.1f}" for a in run["accuracy"])
            lines.append(f"- {system}: {each}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 epochs: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help=f"default {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    seeds = list(range(2 if args.quick else args.seeds))
    out = args.out or (ROOT / "out" / "quality-quick.md" if args.quick else DEFAULT_OUT)
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for quality_set in SETS:
            results[quality_set.name] = {
                "description": quality_set.description,
                "runs": measure(quality_set, seeds, Path(folder), args.quick),
            }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, seeds, time.perf_counter() - started) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
