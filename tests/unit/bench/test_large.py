"""The large-data benchmark's own pieces: its dataset, its request accounting, its section."""

from __future__ import annotations

import os

import numpy as np

from bench import large, sections
from stepnet.datasets import synthetic_classification


def test_the_shards_are_the_synthetic_blobs_drawn_shard_by_shard() -> None:
    # Given 1,000 rows in shards of 300, and the in-memory generator's 1,000 rows
    shards = list(large.blob_shards(1_000, shard_rows=300, seed=3))
    X_ref, _ = synthetic_classification(n=1_000, d=784, k=10, seed=3)

    # When they are put together
    X = np.concatenate([X for X, _ in shards])
    y = np.concatenate([y for _, y in shards])

    # Then: 4 shards, float32, every class in every shard, the same class centers
    assert [len(s[1]) for s in shards] == [300, 300, 300, 100] and X.dtype == np.float32
    assert all(set(s[1]) == set(range(10)) for s in shards)
    centers = np.stack([X[y == c].mean(axis=0) for c in range(10)])
    overall = X_ref.mean(axis=0)
    assert np.abs(centers.mean(axis=0) - overall).max() < 0.5  # noise of 100 rows per class
    again = list(large.blob_shards(1_000, shard_rows=300, seed=3))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(shards, again, strict=True))


def test_calls_are_named_by_operation_and_objects_by_kind() -> None:
    # Given calls as a sandbox's botocore sends them
    item = ("POST", "https://dynamodb.us-east-1.amazonaws.com/",
            [("X-Amz-Target", "DynamoDB_20120810.GetItem")])  # fmt: skip
    ranged = ("GET", "https://stepnet-data-1.s3.amazonaws.com/runs/r/data/part-0.npy",
              [("Range", "bytes=0-9")])  # fmt: skip
    put = ("PUT", "https://s3.us-east-1.amazonaws.com/bucket/tensors/r/w/v1", [])
    listing = ("GET", "https://bucket.s3.amazonaws.com/?list-type=2&prefix=datasets", [])

    # When classified
    named = [large.classify(*call) for call in (item, ranged, put, listing)]

    # Then each has its operation, and object calls their key
    assert named == [
        ("GetItem", None),
        ("GetObject (range)", "runs/r/data/part-0.npy"),
        ("PutObject", "tensors/r/w/v1"),
        ("S3 GET list", None),
    ]
    assert [large.object_kind(k) for k in ("datasets/x/part-1.npz", "runs/r/data/p",
            "tensors/r/w", "runs/r/model/model.npz")] == ["dataset", "dataset", "tensor", "other"]  # fmt: skip


def test_a_section_is_replaced_in_place_and_every_one_kept_by_the_other_bench() -> None:
    # Given a page with two marked sections between other text
    large_begin, large_end = sections.markers("bench.large")
    faults_begin, faults_end = sections.markers("bench.faults")
    page = (
        f"# Benchmarks\n\nbefore\n\n{large_begin}\nold\n{large_end}\n\n"
        f"{faults_begin}\nf\n{faults_end}\nafter\n"
    )

    # When one section is replaced, and the sections are kept
    replaced = sections.splice(page, "bench.large", f"{large_begin}\nnew\n{large_end}\n")
    kept = sections.kept(replaced)

    # Then the rest of the page stays, and both sections are kept, the new one first
    assert replaced == page.replace("\nold\n", "\nnew\n")
    assert kept == f"{large_begin}\nnew\n{large_end}\n\n{faults_begin}\nf\n{faults_end}\n"
    assert sections.splice("# B\n", "bench.faults", "S\n") == "# B\n\nS\n"
    assert sections.kept("# B\n") == ""


def test_the_tree_of_this_process_is_measured() -> None:
    # Given this process, When its tree is measured
    processes, rss_kb, pss_kb = large.tree_memory_kb(os.getpid())

    # Then it has at least itself, resident, PSS at most RSS
    assert processes >= 1 and 0 < pss_kb <= rss_kb
