"""The outputs of a training, whoever trained it: ``model.npz``, ``model.json``, ``metrics.json``.

- ``model.npz``: arrays ``W1, b1, W2, b2, …`` with ``W{l}`` of shape (inputs, units).
- ``model.json``: ``layers`` (as in the config), ``loss``, ``standardize`` (per-feature ``mean`` and
  ``std`` of the training part), ``classes`` (classification: original labels in output order),
  ``n_features``, ``run_id``, ``epochs`` and ``version`` (optimizer steps applied); a run stopped
  by the divergence guard (``trainer.training.divergence``) exports its last good weights and
  says so: ``"diverged": {"epoch", "step", "microbatch", "what", "last_good_version"}`` (absent
  otherwise), ``version`` being that last good version.
- ``metrics.json``: ``{"run_id": …, "epochs": [{"epoch", "train_loss", "val_loss",
  "val_accuracy"?, "version"?}, …]}`` — ``train_loss`` is the data loss (no L2) of the epoch's
  final weights on the whole training part; the pipeline adds ``version``, the weights version
  the epoch ended on.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer.config import RunConfig
from trainer.messages import EpochMetrics
from trainer.nn.params import flatten

MODEL_NPZ = "model.npz"
MODEL_JSON = "model.json"
METRICS_JSON = "metrics.json"


def model_npz_bytes(params: Sequence[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """The weights as an uncompressed ``.npz`` with ``W1, b1, …``."""
    buffer = io.BytesIO()
    np.savez(buffer, **flatten(params))  # type: ignore[arg-type]
    return buffer.getvalue()


def model_document(
    config: RunConfig,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[Any] | None,
    version: int,
    diverged: dict[str, Any] | None = None,
) -> dict[str, Any]:
    document = {
        "run_id": config.run_id,
        "layers": [layer.model_dump() for layer in config.model.layers],
        "loss": config.loss,
        "n_features": len(mean),
        "standardize": {"mean": [float(m) for m in mean], "std": [float(s) for s in std]},
        "classes": list(classes) if classes is not None else None,
        "epochs": config.epochs,
        "version": version,
    }
    if diverged is not None:
        document["diverged"] = dict(diverged)
    return document


def metrics_document(run_id: str, epochs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"run_id": run_id, "epochs": list(epochs)}


def epoch_metrics(
    epoch: int, train_loss: float, val_loss: float, val_accuracy: float | None
) -> dict[str, Any]:
    """One row of ``metrics.json`` (see :class:`trainer.messages.EpochMetrics`)."""
    metrics = EpochMetrics(
        epoch=epoch, train_loss=train_loss, val_loss=val_loss, val_accuracy=val_accuracy
    )
    return dict(metrics.row())


def json_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()
