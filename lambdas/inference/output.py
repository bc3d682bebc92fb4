"""Predictions written out: the CSV of ``stepnet predict`` and batch files, the JSON of the API.

CSV, one line per input row, in input order:

* classification: ``prediction`` (the class label), then ``p_<class>`` for each class in the
  model's class order (the softmax probabilities);
* regression: ``y0, y1, …``, one column per output;
* batch files add ``run_id`` and ``model_version`` (the production model that made them) as the
  last two columns, the same on every line.

Numbers are the float32 outputs written in their shortest form that reads back to the same
float32 (``numpy``'s ``str``), so ``np.float32(field)`` is the model's output bit for bit.

JSON (online): see :func:`prediction_document`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inference.model import Prediction


def csv_header(prediction: Prediction, provenance: tuple[str, int] | None = None) -> list[str]:
    """The column names (see the module doc)."""
    if prediction.classes is not None:
        columns = ["prediction", *(f"p_{c}" for c in prediction.classes)]
    else:
        columns = [f"y{j}" for j in range(prediction.outputs.shape[1])]
    if provenance is not None:
        columns += ["run_id", "model_version"]
    return columns


def csv_bytes(prediction: Prediction, provenance: tuple[str, int] | None = None) -> bytes:
    """The whole CSV file (header and one line per row, ``\\n`` line ends) as UTF-8 bytes.

    Args:
        prediction: the model's outputs for n rows.
        provenance: ``(run_id, version)`` to add as the last two columns, or None.
    """
    cells = prediction.outputs.astype(str)  # shortest repr that round-trips each float32
    if prediction.classes is not None:
        labels = np.asarray([_field(str(label)) for label in prediction.labels()], dtype=object)
        cells = np.concatenate([labels[:, None], cells.astype(object)], axis=1)
    lines = [",".join(_field(name) for name in csv_header(prediction, provenance))]
    suffix = "" if provenance is None else f",{_field(provenance[0])},{provenance[1]}"
    lines.extend(",".join(row) + suffix for row in cells.tolist())
    return ("\n".join(lines) + "\n").encode()


def _field(text: str) -> str:
    """A CSV field: quoted when it holds a comma, a quote or a line break."""
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def prediction_document(
    prediction: Prediction, *, pipeline: str, run_id: str, version: int
) -> dict[str, Any]:
    """The online response body.

    Classification::

        {"pipeline": …, "run_id": …, "model_version": …, "classes": [c_1, …, c_k],
         "predictions": [label per row], "probabilities": [[p_1, …, p_k] per row]}

    Regression::

        {"pipeline": …, "run_id": …, "model_version": …, "outputs": [[y_1, …, y_k] per row]}

    Numbers are the float32 outputs as the float64 equal to each (exact).
    """
    document: dict[str, Any] = {"pipeline": pipeline, "run_id": run_id, "model_version": version}
    values = prediction.outputs.tolist()
    if prediction.classes is not None:
        document["classes"] = list(prediction.classes)
        document["predictions"] = prediction.labels()
        document["probabilities"] = values
    else:
        document["outputs"] = values
    return document
