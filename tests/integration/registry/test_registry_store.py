"""The registry's records in the runs table (trainer.store.registry through RunStore) on moto:
model versions and decisions are written once, the production record only over the revision
its writer read, and a pipeline lists in one Query."""

from __future__ import annotations

import pytest

from trainer.store import RecordConflictError, Store
from trainer.store.registry import ProductionChangedError


def test_a_model_version_is_written_once(store: Store) -> None:
    # Given
    runs = store.runs
    runs.put_model_version("digits", "r-1", {"version": 3, "metrics": {"val_loss": 0.5}})

    # When the same version is registered again (a retried task), then a different one
    runs.put_model_version("digits", "r-1", {"version": 3, "metrics": {"val_loss": 0.5}})
    with pytest.raises(RecordConflictError, match="different model version of run 'r-1'"):
        runs.put_model_version("digits", "r-1", {"version": 4, "metrics": {"val_loss": 0.5}})

    # Then the first stands, with when it was registered
    stored = runs.get_model_version("digits", "r-1")
    assert stored is not None and stored["version"] == 3 and stored["created_at"].endswith("Z")
    assert runs.get_model_version("digits", "r-2") is None


def test_the_first_decision_stands(store: Store) -> None:
    # When
    first = store.runs.put_decision("digits", "r-1", {"promoted": True, "reason": "first"})
    second = store.runs.put_decision("digits", "r-1", {"promoted": False, "reason": "retry"})

    # Then
    assert first["reason"] == second["reason"] == "first"
    assert store.runs.get_decision("digits", "r-1") == first


def test_production_is_replaced_only_over_the_revision_its_writer_read(store: Store) -> None:
    # Given revision 1
    runs = store.runs
    runs.put_production("digits", {"run_id": "a"}, 1)

    # When a writer that read nothing (another first promotion) and one that read revision 1
    # both write, then one that still holds revision 1
    with pytest.raises(ProductionChangedError, match="changed since revision 0 was read"):
        runs.put_production("digits", {"run_id": "b"}, 1)
    runs.put_production("digits", {"run_id": "c"}, 2)
    with pytest.raises(ProductionChangedError, match="changed since revision 1 was read"):
        runs.put_production("digits", {"run_id": "d"}, 2)

    # Then revision 2 is c's
    production = runs.get_production("digits")
    assert production is not None
    assert (production["run_id"], production["revision"]) == ("c", 2)


def test_a_pipeline_lists_its_records_and_the_index_its_pipelines(store: Store) -> None:
    # Given two pipelines (one registered twice: the index keeps one record)
    runs = store.runs
    for pipeline, run_id in (("digits", "r-1"), ("digits", "r-2"), ("iris", "i-1")):
        runs.put_model_version(pipeline, run_id, {"version": 1})
        runs.add_pipeline(pipeline)
    runs.put_decision("digits", "r-1", {"promoted": True})
    runs.put_production("digits", {"run_id": "r-1"}, 1)

    # When
    records = runs.list_registry("digits")

    # Then
    assert sorted(records) == ["decision#r-1", "model#r-1", "model#r-2", "production"]
    assert runs.list_pipelines() == ["digits", "iris"]
    assert runs.list_registry("nothing") == {}


def test_a_pipeline_name_cannot_escape_its_partition(store: Store) -> None:
    # When / Then
    with pytest.raises(ValueError, match="without '#'"):
        store.runs.get_production("a#b")
