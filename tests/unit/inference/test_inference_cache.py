"""inference.cache: a model loaded once per container, replaced when its pointer changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.cache import ModelCache
from inference.errors import ModelError, NoModelError
from inference.pointer import ProductionPointer, pointer_key


class Bucket:
    """A dict of objects standing in for S3, counting the reads of each key."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.reads: dict[str, int] = {}

    def read(self, key: str) -> bytes | None:
        self.reads[key] = self.reads.get(key, 0) + 1
        return self.objects.get(key)

    def add_model(self, folder: Path, run_id: str) -> ProductionPointer:
        """Copy a model folder to runs/<run_id>/model/ (model.json rewritten to that run id);
        returns the pointer that names it."""
        meta = json.loads((folder / "model.json").read_text()) | {"run_id": run_id}
        prefix = f"runs/{run_id}/model/"
        self.objects[prefix + "model.npz"] = (folder / "model.npz").read_bytes()
        self.objects[prefix + "model.json"] = json.dumps(meta).encode()
        return ProductionPointer(run_id, meta["version"])

    def promote(self, pipeline: str, production: ProductionPointer) -> None:
        self.objects[pointer_key(pipeline)] = production.to_json()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bucket(classifier_dir: Path) -> Bucket:
    bucket = Bucket()
    bucket.promote("digits", bucket.add_model(classifier_dir, "run-a"))
    return bucket


def test_a_warm_container_reads_nothing_within_the_ttl(bucket: Bucket) -> None:
    # Given
    clock = Clock()
    cache = ModelCache(bucket.read, ttl_seconds=5, clock=clock)

    # When
    first = cache.get("digits")
    clock.now += 4.9
    second = cache.get("digits")

    # Then
    assert second is first and cache.loads == 1
    assert bucket.reads[pointer_key("digits")] == 1
    assert bucket.reads["runs/run-a/model/model.npz"] == 1


def test_an_unchanged_pointer_keeps_the_loaded_model(bucket: Bucket) -> None:
    # Given
    clock = Clock()
    cache = ModelCache(bucket.read, ttl_seconds=5, clock=clock)
    first = cache.get("digits")

    # When
    clock.now += 5
    second = cache.get("digits")

    # Then: the pointer was read again, the model was not
    assert second is first and cache.loads == 1
    assert bucket.reads[pointer_key("digits")] == 2


def test_a_promotion_is_noticed_after_the_ttl(bucket: Bucket, classifier_dir: Path) -> None:
    # Given
    clock = Clock()
    cache = ModelCache(bucket.read, ttl_seconds=5, clock=clock)
    assert cache.get("digits").pointer.run_id == "run-a"

    # When
    bucket.promote("digits", bucket.add_model(classifier_dir, "run-b"))
    before_ttl = cache.get("digits")
    clock.now += 5
    after_ttl = cache.get("digits")

    # Then
    assert before_ttl.pointer.run_id == "run-a"
    assert after_ttl.pointer.run_id == "run-b" and after_ttl.model.run_id == "run-b"
    assert cache.loads == 2


def test_a_removed_pointer_means_no_model(bucket: Bucket) -> None:
    # Given
    cache = ModelCache(bucket.read, ttl_seconds=0)
    cache.get("digits")

    # When
    del bucket.objects[pointer_key("digits")]

    # Then
    with pytest.raises(NoModelError, match="pipeline 'digits' has no production model"):
        cache.get("digits")
    with pytest.raises(NoModelError, match="'other'"):
        cache.get("other")


def test_a_pointer_to_missing_or_other_files_is_a_model_error(
    bucket: Bucket, classifier_dir: Path
) -> None:
    # Given
    cache = ModelCache(bucket.read, ttl_seconds=0)
    production = bucket.add_model(classifier_dir, "run-c")

    # When / Then: the files' version is not the pointer's
    bucket.promote("digits", ProductionPointer("run-c", production.version + 1))
    with pytest.raises(ModelError, match="version"):
        cache.get("digits")
    # the run exported nothing
    bucket.promote("digits", ProductionPointer("run-none", 1))
    with pytest.raises(ModelError, match=r"missing runs/run-none/model/model\.npz"):
        cache.get("digits")


def test_only_the_pipelines_used_last_stay_loaded(bucket: Bucket, classifier_dir: Path) -> None:
    # Given
    cache = ModelCache(bucket.read, ttl_seconds=60, max_pipelines=2)
    for pipeline in ("p1", "p2", "p3"):
        bucket.promote(pipeline, bucket.add_model(classifier_dir, f"run-{pipeline}"))

    # When
    cache.get("p1"), cache.get("p2"), cache.get("p1"), cache.get("p3"), cache.get("p1")
    cache.get("p2")

    # Then: p2 was dropped when p3 came, so it was loaded twice
    assert cache.loads == 4
