"""Tensor keys: one spelling for every bundle of a run."""

from __future__ import annotations

import pytest

from trainer.store import keys


def test_keys_are_spelled_as_documented() -> None:
    # Given
    run = "digits-demo"

    # When
    spelled = {
        "weights": keys.weights_key(run, 12),
        "optimizer": keys.optimizer_key(run, 12),
        "activation": keys.activation_key(run, 12, 3, 1),
        "output grad": keys.output_grad_key(run, 12, 3, 2),
        "gradient": keys.gradient_key(run, 12, 3, 1),
        "gradients": keys.gradients_key(run, 12, 3),
        "batch": keys.batch_key(run, 3, 42, 3),
        "dataset": keys.dataset_key(run),
        "shard": keys.shard_key(run, 3),
        "evaluation": keys.evaluation_key(run, 3, 7),
    }

    # Then
    assert spelled == {
        "weights": "digits-demo/weights/v000012",
        "optimizer": "digits-demo/optimizer/v000012",
        "activation": "digits-demo/scratch/v000012/mb003/A1",
        "output grad": "digits-demo/scratch/v000012/mb003/dZ2",
        "gradient": "digits-demo/scratch/v000012/mb003/grad1",
        "gradients": "digits-demo/scratch/v000012/mb003/grads",
        "batch": "digits-demo/batches/e0003/s000042/mb003",
        "dataset": "digits-demo/data/dataset",
        "shard": "digits-demo/shards/s00003",
        "evaluation": "digits-demo/evaluations/e0003/g07",
    }


def test_padded_numbers_sort_in_numeric_order() -> None:
    # Given
    versions = [0, 2, 10, 999, 1000, 123456]

    # When
    spelled = [keys.weights_key("r", version) for version in versions]

    # Then
    assert sorted(spelled) == spelled


@pytest.mark.parametrize(
    "build",
    [
        lambda: keys.gradient_key("r", 0, 0, 0),
        lambda: keys.weights_key("r", -1),
        lambda: keys.weights_key("a/b", 0),
        lambda: keys.weights_key("", 0),
        lambda: keys.activation_key("r", 0, -1, 1),
        lambda: keys.batch_key("r", 0, 1.5, 0),
        lambda: keys.gradient_key("r", True, 0, 1),
        lambda: keys.shard_key("r", -1),
    ],
    ids=["layer 0", "negative version", "slash", "empty run", "mb", "float", "bool", "shard"],
)
def test_bad_parts_are_rejected(build) -> None:
    # Given a key with a part out of range

    # When / Then
    with pytest.raises(ValueError):
        build()
