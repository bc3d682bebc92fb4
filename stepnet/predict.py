"""``stepnet predict MODEL_DIR_OR_RUN INPUT --out FILE``: the inference function's code, locally.

The model comes from a folder with ``model.npz`` and ``model.json`` (``stepnet reference --out``,
``stepnet local``, ``stepnet fetch``), or from a run id: the run's exported model, read from the
stack's bucket (AWS, or ``stepnet serve`` with ``--endpoint-url``) like ``stepnet fetch`` reads it.
The rows (``.csv`` with a header of feature columns, or ``.npz`` with ``X``) are parsed, predicted
and written by :mod:`inference.rows`, :mod:`inference.model` and :mod:`inference.output`, the
Lambda's own modules; only the per-invocation size limits do not apply here.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from inference.errors import InputError
from inference.model import MODEL_JSON, MODEL_NPZ, Model, Prediction
from inference.output import csv_bytes
from inference.pointer import RUN_ID_PATTERN, model_prefix
from inference.rows import Limits, parse_file

if TYPE_CHECKING:
    from stepnet.client import StepnetClient

LOCAL_LIMITS = Limits(
    max_input_bytes=sys.maxsize, max_cells=sys.maxsize, max_output_cells=sys.maxsize, fix=""
)
"""No per-invocation limit on this machine: the file only has to fit its memory."""


def is_model_dir(source: str) -> bool:
    """Whether ``source`` names a folder (else it is taken for a run id)."""
    return Path(source).expanduser().is_dir()


def check_source(source: str) -> None:
    """InputError unless ``source`` is a folder or could be a run id."""
    if not is_model_dir(source) and not RUN_ID_PATTERN.match(source):
        raise InputError(
            f"{source} is neither a folder nor a run id; pass a folder with {MODEL_NPZ} and "
            f"{MODEL_JSON} (e.g. out/digits-demo) or the id of a finished run"
        )


def model_from_run(client: StepnetClient, run_id: str) -> Model:
    """The exported model of ``run_id`` in the stack's bucket (``runs/<run_id>/model/``)."""
    objects = client.store.objects
    npz, document = (
        objects.get_bytes(objects.uri(model_prefix(run_id) + name))
        for name in (MODEL_NPZ, MODEL_JSON)
    )
    return Model.from_bytes(npz, document)


def predict_file(model: Model, path: Path) -> Prediction:
    """The model's prediction for every row of a ``.csv`` or ``.npz`` file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    X = parse_file(path.name, data, model.n_features, model.n_outputs, LOCAL_LIMITS)
    return model.predict(X)


def write_predictions(prediction: Prediction, out: Path) -> Path:
    """Write the prediction CSV to ``out`` whole: a temporary file beside it, then a rename, so
    ``out`` is never a partial file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(csv_bytes(prediction))
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return out
