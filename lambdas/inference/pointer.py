"""The production-model pointer: which trained run a pipeline serves. Its one definition.

One small JSON object per pipeline in the stack's bucket::

    models/<pipeline>/production.json
    {"run_id": "digits-2026-11-20", "version": 2250}

``run_id`` names the run whose exported model (``runs/<run_id>/model/model.npz`` and
``model.json``) is served; ``version`` is that model's ``version`` (the optimizer steps behind its
weights, as ``model.json`` records it; the inference function checks they agree). Writers may add
other keys (e.g. ``"promoted_at"``, ``"promoted_by"``); readers ignore them.

Promotion = one PUT of this object (S3 writes are atomic and strongly read-after-write
consistent): the inference function re-reads it at most every ``STEPNET_POINTER_TTL_SECONDS`` and
loads the new model when ``(run_id, version)`` changed. No object: the pipeline has no
production model (the API answers 404). The registry workflow writes it with
:func:`pointer_key` and :meth:`ProductionPointer.to_json`.

A pipeline name is 1-64 characters of ``A-Z a-z 0-9 _ -`` (it is a path segment of S3 keys and
of the API's route).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from inference.errors import ModelError

MODELS_PREFIX = "models/"
POINTER_NAME = "production.json"
RUNS_PREFIX = "runs/"  # trainer.contract.names.S3_RUNS_PREFIX (a test checks they agree)
PIPELINE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")  # trainer.config.RUN_ID_PATTERN


def check_pipeline(pipeline: str) -> str:
    """``pipeline`` if it is a valid name, else ValueError saying what a name may hold."""
    if not isinstance(pipeline, str) or not PIPELINE_PATTERN.match(pipeline):
        raise ValueError(
            f"pipeline name {pipeline!r} is not 1-64 characters of letters, digits, '_' or '-'"
        )
    return pipeline


def pointer_key(pipeline: str) -> str:
    """``models/<pipeline>/production.json``."""
    return f"{MODELS_PREFIX}{check_pipeline(pipeline)}/{POINTER_NAME}"


def model_prefix(run_id: str) -> str:
    """``runs/<run_id>/model/``, where a finished run's model files are (``trainer.dal``)."""
    return f"{RUNS_PREFIX}{run_id}/model/"


@dataclass(frozen=True)
class ProductionPointer:
    """The served model of a pipeline: ``run_id`` and the model ``version``."""

    run_id: str
    version: int

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not RUN_ID_PATTERN.match(self.run_id):
            raise ValueError(f"run_id {self.run_id!r} is not a stepnet run id")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            raise ValueError(f"version must be an integer >= 0, got {self.version!r}")

    @property
    def model_prefix(self) -> str:
        return model_prefix(self.run_id)

    def to_json(self) -> bytes:
        """The object's bytes (what the registry writes)."""
        return json.dumps({"run_id": self.run_id, "version": self.version}).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str = "the production pointer") -> ProductionPointer:
        """Parse the object; ModelError (naming ``where``) if it is not a valid pointer."""
        try:
            document = json.loads(data)
            return cls(run_id=document["run_id"], version=document["version"])
        except (ValueError, KeyError, TypeError) as error:
            raise ModelError(
                f"{where} is not a valid pointer ({error}); it must be a JSON object "
                '{"run_id": "<run id>", "version": <model version>}'
            ) from None


def check_pointer_model(pointer: ProductionPointer, run_id: str, version: int) -> None:
    """ModelError unless the model files a pointer names are that run's model of that version."""
    if (run_id, version) != (pointer.run_id, pointer.version):
        raise ModelError(
            f"the production pointer names run {pointer.run_id!r} version {pointer.version} but "
            f"{pointer.model_prefix}model.json is run {run_id!r} version {version}; promote the "
            "version the run exported"
        )
