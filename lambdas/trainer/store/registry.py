"""The model registry's records in the runs table: one partition per pipeline, and an index.

Partition ``pipeline#<name>`` (``RUNS_PK``; a run id cannot contain ``#``, so no run's partition
is ever one), the sort key (``RUNS_SK``) names the record::

    "model#<run_id>"      a registered model version (trainer.registry.ModelVersion)  write-once
    "decision#<run_id>"   whether the workflow promoted it, and why (Decision)         write-once
    "production"          the served model and its history (Production)               replaced,
                                                                                      conditionally

and partition ``registry#pipelines`` holds one ``pipeline#<name>`` record per pipeline (write-once),
so that the pipelines are listed with a Query rather than a Scan.

Every record keeps its content as canonical JSON in ``document`` (floats exact, as the run
records). The production record also carries ``revision`` (N), the number of times it was
written: a writer replaces revision r only if the record still holds r (a conditional put), so
two promotions cannot interleave; the loser reads again and decides again.

Each item is built by one function here and read by one, used by ``RunStore`` and by the billing
code's dry run alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from trainer.contract.names import RUNS_PK, RUNS_SK
from trainer.store.errors import StoreError
from trainer.store.runs import CREATED_AT, UPDATED_AT, Item, canonical_json

PIPELINE_PARTITION_PREFIX: Final = "pipeline#"
PIPELINES_PARTITION: Final = "registry#pipelines"  # the index: one record per pipeline
MODEL_RECORD_PREFIX: Final = "model#"
DECISION_RECORD_PREFIX: Final = "decision#"
PRODUCTION_RECORD: Final = "production"

DOCUMENT: Final = "document"  # S: the record's content, canonical JSON
REVISION: Final = "revision"  # N: the production record's write count (1 for the first)


class ProductionChangedError(StoreError):
    """The production record is not at the revision a writer read: someone else promoted (or
    rolled back) in between. Read it again and decide again."""

    def __init__(self, pipeline: str, expected: int) -> None:
        self.pipeline = pipeline
        super().__init__(
            f"the production record of pipeline {pipeline!r} changed since revision "
            f"{expected - 1} was read (another promotion or rollback); read it again"
        )


def pipeline_partition(pipeline: str) -> str:
    """``pipeline#<name>``: the partition of a pipeline's registry records."""
    if not isinstance(pipeline, str) or not pipeline or "#" in pipeline:
        raise ValueError(f"pipeline must be a non-empty name without '#', got {pipeline!r}")
    return f"{PIPELINE_PARTITION_PREFIX}{pipeline}"


def model_record(run_id: str) -> str:
    return f"{MODEL_RECORD_PREFIX}{run_id}"


def decision_record(run_id: str) -> str:
    return f"{DECISION_RECORD_PREFIX}{run_id}"


def registry_key(pipeline: str, record: str) -> Item:
    """The key of one record of a pipeline."""
    return {RUNS_PK: {"S": pipeline_partition(pipeline)}, RUNS_SK: {"S": record}}


def pipeline_index_key(pipeline: str) -> Item:
    """The key of a pipeline's record in the index partition."""
    return {RUNS_PK: {"S": PIPELINES_PARTITION}, RUNS_SK: {"S": pipeline_partition(pipeline)}}


def _document(value: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"a registry document must be a mapping, got {type(value).__name__}")
    return {"S": canonical_json(dict(value))}


def model_version_item(
    pipeline: str, run_id: str, document: Mapping[str, Any], created_at: str
) -> Item:
    """A ``model#<run_id>`` record: a registered model version (write-once)."""
    return {
        **registry_key(pipeline, model_record(run_id)),
        DOCUMENT: _document(document),
        CREATED_AT: {"S": created_at},
    }


def decision_item(pipeline: str, run_id: str, document: Mapping[str, Any], created_at: str) -> Item:
    """A ``decision#<run_id>`` record: the workflow's promotion decision (write-once)."""
    return {
        **registry_key(pipeline, decision_record(run_id)),
        DOCUMENT: _document(document),
        CREATED_AT: {"S": created_at},
    }


def production_item(
    pipeline: str, document: Mapping[str, Any], revision: int, updated_at: str
) -> Item:
    """The ``production`` record at ``revision`` (1 for a pipeline's first)."""
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        raise ValueError(f"revision must be an integer >= 1, got {revision!r}")
    return {
        **registry_key(pipeline, PRODUCTION_RECORD),
        DOCUMENT: _document(document),
        REVISION: {"N": str(revision)},
        UPDATED_AT: {"S": updated_at},
    }


def revision_condition(revision: int) -> dict[str, Any]:
    """The condition under which revision ``revision`` of a revised record (the production
    record, a retraining claim) may be written: the record does not exist (revision 1), or
    holds ``revision - 1``."""
    if revision == 1:
        return {
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": RUNS_PK},
        }
    return {
        "ConditionExpression": "#rev = :previous",
        "ExpressionAttributeNames": {"#rev": REVISION},
        "ExpressionAttributeValues": {":previous": {"N": str(revision - 1)}},
    }


def pipeline_item(pipeline: str, created_at: str) -> Item:
    """A pipeline's record in the index partition (write-once)."""
    return {**pipeline_index_key(pipeline), CREATED_AT: {"S": created_at}}


def document_of(item: Item) -> dict[str, Any]:
    """A registry record's content, with its ``created_at`` / ``updated_at`` (and the production
    record's ``revision``) added."""
    document: dict[str, Any] = json.loads(item[DOCUMENT]["S"])
    for attribute in (CREATED_AT, UPDATED_AT):
        if attribute in item:
            document[attribute] = item[attribute]["S"]
    if REVISION in item:
        document[REVISION] = int(item[REVISION]["N"])
    return document


def pipeline_of(item: Item) -> str:
    """The pipeline an index record names."""
    return str(item[RUNS_SK]["S"]).removeprefix(PIPELINE_PARTITION_PREFIX)
