"""trainer.training.memory: the formula of docs/data.md, and the checks that refuse a config or
a shard that cannot fit before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import large
from stepnet.cli import main
from trainer import settings
from trainer.config import parse_config
from trainer.contract.functions import FUNCTIONS
from trainer.data.errors import DatasetError
from trainer.training import memory
from trainer.training.memory import MB, DatasetShape, MemoryFitError

SIZES = {name: spec.memory_mb for name, spec in FUNCTIONS.items()}
ONE_MILLION = DatasetShape(
    rows=1_000_000, n_features=784, row_bytes=784 * 4 + 8, x_itemsize=4, shards=49,
    largest_shard_bytes=64 * MB,
)  # fmt: skip


def config(**changes: Any) -> Any:
    """The large-data benchmark's config (``python -m bench.large``), with ``changes``."""
    (workload, *_) = large.workloads()
    return parse_config(workload.config("s3://bucket/shards/") | changes)


def test_the_benchmark_fits_every_function_with_room() -> None:
    # Given the 1,000,000 × 784 benchmark (49 shards of 64 MB), When estimated
    needs = memory.estimate(config(), ONE_MILLION, SIZES)

    # Then every function needs less than 80% of its size: the contract's sizes fit the formula
    for name, need in needs.items():
        assert need.bytes <= memory.HEADROOM * SIZES[name] * MB, (name, need.mb)
    memory.check(config(), ONE_MILLION, SIZES)
    # and nothing but the block table grows with the dataset
    small = DatasetShape(**(ONE_MILLION.__dict__ | {"rows": 70_000, "shards": 4}))
    for name, need in memory.estimate(config(), small, SIZES).items():
        grown = needs[name].bytes - need.bytes
        assert 0 <= grown <= 5 * MB, (name, grown)


def test_the_parameters_are_counted_as_float32() -> None:
    # When / Then: 784·256 + 256 + 256·128 + 128 + 128·10 + 10 parameters, 4 bytes each
    assert memory.parameter_bytes(config(), 784) == 4 * 235_146


def test_a_batch_too_large_for_gradients_is_refused_with_the_fix() -> None:
    # Given a batch of 60,000 rows of 784 features
    large = config(batch_size=60_000, workers=1)

    # When / Then
    with pytest.raises(MemoryFitError) as raised:
        memory.check(large, ONE_MILLION, SIZES)
    message = str(raised.value)
    assert "Gradients needs about" in message and "micro-batch" in message
    assert '-c \'memory={"Gradients":' in message and "lower batch_size" in message
    assert "Forward" not in message  # per-layer functions do not run in fused mode


def test_one_task_per_step_is_bounded_by_the_model_and_one_micro_batch() -> None:
    # Given mode per_step: one task computes the step's micro-batches one after the other
    per_step = config(mode="per_step", workers=4)
    need = memory.estimate(per_step, ONE_MILLION, SIZES)["TrainStep"]
    P = memory.parameter_bytes(per_step, 784)

    # Then its need holds the model, its Adam moments and a gradient per micro-batch, and one
    # micro-batch's rows and activations: it does not grow with the workers' rows
    assert need.parts["weights, moments, gradients"] == P * (2 + 2 * 2 + 4)
    assert (
        need.parts["micro-batch"]
        == memory.estimate(per_step, ONE_MILLION, SIZES)["Gradients"].parts["micro-batch"]
    )
    more = memory.estimate(config(mode="per_step", workers=40), ONE_MILLION, SIZES)["TrainStep"]
    assert more.bytes - need.bytes == 36 * P
    # and a batch too large for it is refused naming TrainStep, not the other modes' functions
    with pytest.raises(MemoryFitError) as raised:
        memory.check(config(mode="per_step", batch_size=60_000, workers=1), ONE_MILLION, SIZES)
    message = str(raised.value)
    assert "TrainStep needs about" in message and "lower batch_size" in message
    assert "Gradients" not in message and "Forward" not in message


def test_a_larger_function_lets_the_same_config_through() -> None:
    # Given the config refused above, When Gradients gets the memory the message asks for
    large = config(batch_size=60_000, workers=1)
    need = memory.estimate(large, ONE_MILLION, SIZES)["Gradients"]

    # Then it fits
    memory.check(large, ONE_MILLION, SIZES | {"Gradients": int(need.mb / 0.8) + 64})


def test_the_cache_is_bounded_by_the_functions_memory() -> None:
    # When / Then: an eighth of the memory, 256 MB at most, the default outside Lambda
    assert settings.cache_bytes({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}) == 32 * MB
    assert settings.cache_bytes({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}) == 256 * MB
    assert settings.cache_bytes({}) == 256 * MB
    assert memory.cache_bytes(256) == 32 * MB


def test_a_shard_too_large_for_its_function_is_refused_before_it_is_read() -> None:
    # Given CheckShards' 1,769 MB
    limit = memory.largest_shard_bytes("CheckShards", "npz", 1769)
    assert 300 * MB < limit < 400 * MB
    assert memory.largest_shard_bytes("CheckShards", "csv", 1769) < limit

    # When / Then
    memory.check_shard_fits("CheckShards", "s3://b/p/a.npz", limit, 1769)
    with pytest.raises(DatasetError) as raised:
        memory.check_shard_fits("CheckShards", "s3://b/p/a.npz", limit + 1, 1769)
    assert str(raised.value).startswith("dataset: shard s3://b/p/a.npz is ")
    assert "--shard-mb" in str(raised.value)
    assert memory.own_memory_mb({}) == FUNCTIONS["CheckShards"].memory_mb
    assert memory.own_memory_mb({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"}) == 3008


def test_stepnet_cost_refuses_a_config_that_cannot_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a local dataset of 784 features and a config with a huge batch
    X = np.zeros((100, 784), np.float32)
    y = np.arange(100) % 10
    np.savez(tmp_path / "wide.npz", X=X, y=y)
    document = json.loads(config(batch_size=60_000).to_json())
    document["dataset"]["source"] = str(tmp_path / "wide.npz")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))

    # When
    code = main(["cost", str(path)])

    # Then it says which function, before any estimate is made
    assert code == 2
    out = capsys.readouterr().out
    assert "does not fit its functions' memory" in out and "Gradients needs about" in out
