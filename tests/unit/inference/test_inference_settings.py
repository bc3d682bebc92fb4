"""inference.settings: the function's environment, named like the trainer's."""

from __future__ import annotations

import pytest

from inference.settings import VARIABLES, InferenceEnvironment, MisconfiguredError
from trainer.contract.environment import VARIABLES as TRAINER_VARIABLES


def test_the_environment_round_trips_with_defaults() -> None:
    # Given
    env = InferenceEnvironment(bucket="stepnet-bucket", pointer_ttl_seconds=2.5)

    # When
    read = InferenceEnvironment.from_env(env.to_env())

    # Then
    assert read == env and read.memory_mb == 1769


def test_lambda_s_memory_variable_sizes_the_batch_limits() -> None:
    # When
    env = InferenceEnvironment.from_env(
        {"STEPNET_BUCKET": "b-1", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"}
    )

    # Then
    assert env.memory_mb == 3008 and env.pointer_ttl_seconds == 5.0


def test_a_bad_environment_names_every_bad_variable() -> None:
    # When / Then
    with pytest.raises(MisconfiguredError, match=r"STEPNET_BUCKET .*STEPNET_POINTER_TTL_SECONDS"):
        InferenceEnvironment.from_env({"STEPNET_POINTER_TTL_SECONDS": "-1"})


def test_the_bucket_variable_is_the_trainer_s() -> None:
    # Then
    assert VARIABLES["bucket"] == TRAINER_VARIABLES["bucket"]
