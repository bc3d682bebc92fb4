"""The production model of each pipeline, loaded once per container and kept while it is current.

A container answers many requests; loading a model (two S3 GETs, parsing ~1 MB for a
784-256-128-10 network) happens on its first request for a pipeline and again only when the
pipeline's production pointer (:mod:`inference.pointer`) names another ``(run_id, version)``. The
pointer itself is re-read at most every ``ttl_seconds``, so a warm request costs no S3 call and
a promotion is noticed within ``ttl_seconds`` (a demotion too: a deleted pointer means 404).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from inference.errors import ModelError, NoModelError
from inference.model import MODEL_JSON, MODEL_NPZ, Model
from inference.pointer import ProductionPointer, check_pointer_model, pointer_key

Reader = Callable[[str], bytes | None]
"""Reads one object of the bucket by key: its bytes, or None when there is no such object."""


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A pipeline's production model: the pointer that named it and the loaded model."""

    pipeline: str
    pointer: ProductionPointer
    model: Model


@dataclass
class _Entry:
    served: ServedModel
    checked_at: float  # clock() when the pointer was last read


class ModelCache:
    """Loaded production models by pipeline (the ``max_pipelines`` used last)."""

    def __init__(
        self,
        read: Reader,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_pipelines: int = 4,
    ) -> None:
        self._read = read
        self._ttl = ttl_seconds
        self._clock = clock
        self._max = max_pipelines
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.loads = 0  # models loaded so far (tests and logs)

    def get(self, pipeline: str) -> ServedModel:
        """The pipeline's production model.

        Raises:
            ValueError: not a valid pipeline name.
            NoModelError: the pipeline has no production pointer.
            ModelError: the pointer or the model files it names are missing or invalid.
        """
        key = pointer_key(pipeline)
        now = self._clock()
        entry = self._entries.get(pipeline)
        if entry is not None and now - entry.checked_at < self._ttl:
            self._entries.move_to_end(pipeline)
            return entry.served
        data = self._read(key)
        if data is None:
            self._entries.pop(pipeline, None)
            raise NoModelError(
                f"pipeline {pipeline!r} has no production model (no {key} in the bucket); "
                "promote a trained run first"
            )
        pointer = ProductionPointer.from_json(data, where=key)
        if entry is None or entry.served.pointer != pointer:
            entry = _Entry(ServedModel(pipeline, pointer, self._load(pointer)), now)
            self._entries[pipeline] = entry
        entry.checked_at = now
        self._entries.move_to_end(pipeline)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return entry.served

    def _load(self, pointer: ProductionPointer) -> Model:
        files = []
        for name in (MODEL_NPZ, MODEL_JSON):
            data = self._read(pointer.model_prefix + name)
            if data is None:
                raise ModelError(
                    f"the production model is missing {pointer.model_prefix}{name} (run "
                    f"{pointer.run_id!r}); promote a run that finished"
                )
            files.append(data)
        model = Model.from_bytes(files[0], files[1])
        check_pointer_model(pointer, model.run_id, model.version)
        self.loads += 1
        return model
