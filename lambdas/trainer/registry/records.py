"""The registry's records as values, and the rules that read them (pure: no store).

* :class:`ModelVersion`: a finished run's model, registered in its pipeline.
* :class:`Decision`: whether the workflow's last stage promoted it, and why.
* :class:`Production`: the pipeline's served model, with the history of every change (when, why,
  what it replaced); :meth:`Production.pointer` is what ``models/<pipeline>/production.json``
  says (``inference.pointer``).
* :func:`decide`: the promotion rule (``promote_if``) applied to a candidate and the served model.
* :func:`rollback_target`: what a rollback restores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from inference.pointer import ProductionPointer

Action = Literal["promote", "manual", "rollback"]
"""How a model became production: the workflow's rule, ``stepnet promote``, ``stepnet rollback``."""

HISTORY_LIMIT: Final = 100
"""Changes the production record keeps (the oldest are dropped; ~200 bytes each, far below
DynamoDB's 400 KB item limit). A rollback needs only the entry that made the current model."""

HIGHER_IS_BETTER: Final = {"val_accuracy": True, "val_loss": False}


class RegistryError(ValueError):
    """A registry request that cannot be done; the message says why and what to do."""


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class ModelVersion:
    """A finished run's model in its pipeline.

    ``version`` is the weights version the model was exported at (optimizer steps; model.json's
    ``version``, the production pointer's). ``metrics``: the final epoch's row of metrics.json.
    ``promote_if``: the run's promotion rule, resolved (``metric``, ``margin``).
    ``config_digest``: sha256 of the training recipe (``trainer.registry.service``).
    ``dataset``: the source and the facts Initialize recorded (sizes, classes).
    ``model_uri``: the folder of ``files`` (model.npz, model.json, metrics.json URIs).
    """

    pipeline: str
    run_id: str
    version: int
    loss: str
    metrics: Mapping[str, float | int]
    promote_if: Mapping[str, Any]
    config_digest: str
    dataset: Mapping[str, Any]
    model_uri: str
    files: Mapping[str, str]
    created_at: str = ""  # set by the store

    def document(self) -> dict[str, Any]:
        """The record's content (``created_at`` is the record's own attribute)."""
        document = asdict(self)
        document.pop("created_at")
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ModelVersion:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in document.items() if k in names})

    def metric(self, name: str) -> float | None:
        """The final ``name`` metric if it is a finite number, else None."""
        value = _float(self.metrics.get(name))
        return value if value is not None and math.isfinite(value) else None

    def pointer(self) -> ProductionPointer:
        return ProductionPointer(run_id=self.run_id, version=self.version)


@dataclass(frozen=True)
class Decision:
    """The workflow's decision on a model: ``promoted`` or not, and ``reason``; the metric
    compared, the candidate's value and the served model's (``production``: run id, version and
    value), if there was one."""

    pipeline: str
    run_id: str
    version: int
    promoted: bool
    reason: str
    metric: str
    candidate: float | None
    production: Mapping[str, Any] | None
    decided_at: str

    def document(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Decision:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in document.items() if k in names})


@dataclass(frozen=True)
class HistoryEntry:
    """One change of production: ``action`` put ``run_id`` (model ``version``) in place of
    ``previous`` (``{"run_id", "version"}``, None for the pipeline's first) ``at``, because
    ``reason``."""

    action: Action
    run_id: str
    version: int
    previous: Mapping[str, Any] | None
    at: str
    reason: str


@dataclass(frozen=True)
class Production:
    """A pipeline's served model (``run_id``, ``version``), why and when it became production,
    the record's ``revision`` (its write count) and the ``history`` of changes, oldest first."""

    pipeline: str
    run_id: str
    version: int
    revision: int
    action: Action
    since: str
    reason: str
    history: tuple[HistoryEntry, ...] = field(default_factory=tuple)

    def document(self) -> dict[str, Any]:
        """The record's content (``revision`` is the record's own attribute)."""
        document = asdict(self)
        document.pop("revision")
        document["history"] = [asdict(entry) for entry in self.history]
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Production:
        history = tuple(HistoryEntry(**entry) for entry in document.get("history", []))
        names = set(cls.__dataclass_fields__) - {"history"}
        return cls(**{k: v for k, v in document.items() if k in names}, history=history)

    def pointer(self) -> ProductionPointer:
        return ProductionPointer(run_id=self.run_id, version=self.version)

    def pointer_json(self) -> bytes:
        """``models/<pipeline>/production.json``: the pointer's keys (``inference.pointer``),
        plus the record's revision and when and why (readers ignore keys they do not know)."""
        document = json.loads(self.pointer().to_json())
        document |= {"revision": self.revision, "since": self.since, "action": self.action}
        return json.dumps(document, sort_keys=True).encode()

    def replaced_by(
        self, model: ModelVersion, *, action: Action, at: str, reason: str
    ) -> Production:
        """The next revision: ``model`` in production, the change appended to the history."""
        return first_production(model, action=action, at=at, reason=reason, before=self)


def first_production(
    model: ModelVersion,
    *,
    action: Action,
    at: str,
    reason: str,
    before: Production | None = None,
) -> Production:
    """``model`` as production, replacing ``before`` (None: the pipeline's first)."""
    previous = None if before is None else {"run_id": before.run_id, "version": before.version}
    entry = HistoryEntry(action, model.run_id, model.version, previous, at, reason)
    history = (*(before.history if before else ()), entry)[-HISTORY_LIMIT:]
    revision = 1 if before is None else before.revision + 1
    return Production(
        pipeline=model.pipeline, run_id=model.run_id, version=model.version, revision=revision,
        action=action, since=at, reason=reason, history=history,
    )  # fmt: skip


def decide(
    candidate: ModelVersion, served: ModelVersion | None, served_production: Production | None
) -> tuple[bool, str, float | None, dict[str, Any] | None]:
    """The promotion rule of the candidate's run (``promote_if``: metric and margin).

    Returns (promote, reason, the candidate's value, the served model as ``{"run_id",
    "version", "value"}`` or None). Promoted: the pipeline serves nothing yet, or the candidate's
    final metric beats the served model's by more than the margin (higher accuracy, lower loss).
    Not promoted: it does not, or a value to compare is missing or not finite.
    """
    metric = str(candidate.promote_if["metric"])
    margin = float(candidate.promote_if["margin"])
    value = candidate.metric(metric)
    if served_production is None:
        if value is None:
            return False, f"the run has no finite final {metric}; nothing was promoted", None, None
        return True, f"the pipeline's first model ({metric} {value:.6g})", value, None
    production: dict[str, Any] = {
        "run_id": served_production.run_id,
        "version": served_production.version,
        "value": None if served is None else served.metric(metric),
    }
    where = f"production model {served_production.run_id!r}"
    if value is None:
        return False, f"the run has no finite final {metric}", None, production
    if served is None:
        reason = f"{where} is not registered in this pipeline, so there is no {metric} to compare"
        return False, reason + "; promote by hand (stepnet promote)", value, production
    theirs = production["value"]
    if theirs is None:
        reason = f"{where} has no {metric} to compare (its loss is {served.loss!r})"
        return False, reason + "; promote by hand (stepnet promote)", value, production
    gain = value - theirs if HIGHER_IS_BETTER[metric] else theirs - value
    compared = f"{metric} {value:.6g} vs {theirs:.6g} of {where}"
    if gain > margin:
        return True, f"{compared}: better by {gain:.6g} (margin {margin:g})", value, production
    return False, f"{compared}: not better by more than the margin {margin:g}", value, production


def rollback_target(production: Production) -> Mapping[str, Any]:
    """What a rollback restores: the model the current one replaced when it was promoted (or
    promoted by hand). Repeated rollbacks walk back through the promotions."""
    for entry in reversed(production.history):
        if entry.run_id == production.run_id and entry.action in ("promote", "manual"):
            if entry.previous is None:
                break
            return entry.previous
    raise RegistryError(
        f"pipeline {production.pipeline!r} has nothing to roll back to: {production.run_id!r} "
        "is the first model it served (as far as its history goes)"
    )
