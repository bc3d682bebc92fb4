"""A pipeline's retraining claim: the record that lets one retraining run at a time per pipeline.

Partition ``pipeline#<name>`` (the registry's, ``trainer.store.registry``), sort key ``retrain``::

    {"holder": <Retrain execution name> | null, "run_id": <the run it trains> | null,
     "pending": {"run_id", "config", "source", "received_at"} | null}

plus ``revision`` (N): the record is replaced with a conditional put on its revision, as the
production record is, so two Retrain executions cannot both take a pipeline, and an upload
recorded as pending is never lost to a concurrent release (the loser reads again and decides
again: ``trainer.registry.retrain``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from trainer.store.errors import StoreError
from trainer.store.registry import DOCUMENT, REVISION, registry_key
from trainer.store.runs import UPDATED_AT, Item, canonical_json

CLAIM_RECORD: Final = "retrain"


class ClaimChangedError(StoreError):
    """The claim record is not at the revision a writer read: another Retrain execution changed
    it in between. Read it again and decide again."""

    def __init__(self, pipeline: str, expected: int) -> None:
        self.pipeline = pipeline
        super().__init__(
            f"the retraining claim of pipeline {pipeline!r} changed since revision "
            f"{expected - 1} was read; read it again"
        )


def claim_key(pipeline: str) -> Item:
    return registry_key(pipeline, CLAIM_RECORD)


def claim_item(pipeline: str, document: Mapping[str, Any], revision: int, updated_at: str) -> Item:
    """The claim record at ``revision`` (1 for a pipeline's first)."""
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        raise ValueError(f"revision must be an integer >= 1, got {revision!r}")
    return {
        **claim_key(pipeline),
        DOCUMENT: {"S": canonical_json(dict(document))},
        REVISION: {"N": str(revision)},
        UPDATED_AT: {"S": updated_at},
    }
