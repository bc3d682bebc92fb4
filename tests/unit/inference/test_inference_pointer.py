"""inference.pointer and inference.keys: the production pointer and the batch keys, spelled once
and in agreement with the trainer's names."""

from __future__ import annotations

import json

import pytest

from inference import model, pointer
from inference.errors import ModelError
from inference.keys import batch_input
from inference.pointer import ProductionPointer, check_pointer_model, pointer_key
from trainer import config, dal
from trainer.contract import names
from trainer.training import exports


def test_a_pointer_round_trips_and_names_its_model() -> None:
    # Given
    production = ProductionPointer(run_id="digits-7", version=1250)

    # When
    read = ProductionPointer.from_json(production.to_json())

    # Then
    assert read == production
    assert json.loads(production.to_json()) == {"run_id": "digits-7", "version": 1250}
    assert production.model_prefix == "runs/digits-7/model/"
    assert pointer_key("digits") == "models/digits/production.json"


def test_readers_ignore_keys_they_do_not_know() -> None:
    # When
    read = ProductionPointer.from_json(b'{"run_id": "r", "version": 3, "promoted_at": "today"}')

    # Then
    assert read == ProductionPointer("r", 3)


@pytest.mark.parametrize(
    "data",
    [b"nope", b"[]", b'{"run_id": "r"}', b'{"run_id": "a/b", "version": 1}',
     b'{"run_id": "r", "version": "1"}', b'{"run_id": "r", "version": true}'],
)  # fmt: skip
def test_an_invalid_pointer_is_a_model_error(data: bytes) -> None:
    # When / Then
    with pytest.raises(ModelError, match=r"models/p/production\.json is not a valid pointer"):
        ProductionPointer.from_json(data, where="models/p/production.json")


@pytest.mark.parametrize("name", ["", "a/b", "x" * 65, "sp ace", "..", "é"])
def test_pipeline_names_are_path_safe(name: str) -> None:
    # When / Then
    with pytest.raises(ValueError, match="pipeline name"):
        pointer_key(name)


def test_a_model_must_be_the_one_its_pointer_names() -> None:
    # Given
    production = ProductionPointer("r", 3)

    # When / Then
    check_pointer_model(production, "r", 3)
    with pytest.raises(ModelError, match=r"names run 'r' version 3 but .* is run 'r' version 4"):
        check_pointer_model(production, "r", 4)


def test_names_agree_with_the_trainer_s() -> None:
    # Then
    assert pointer.RUNS_PREFIX == names.S3_RUNS_PREFIX
    assert pointer.model_prefix("r-1") == dal.model_prefix("r-1")
    assert pointer.RUN_ID_PATTERN.pattern == config.RUN_ID_PATTERN
    assert (model.MODEL_NPZ, model.MODEL_JSON) == (exports.MODEL_NPZ, exports.MODEL_JSON)


@pytest.mark.parametrize(
    ("key", "output", "error"),
    [
        ("inference/digits/in/a.csv", "inference/digits/out/a.csv", "inference/digits/out/a.error.json"),
        ("inference/digits/in/day/2.NPZ", "inference/digits/out/day/2.csv", "inference/digits/out/day/2.error.json"),
        ("inference/digits/in/notes.txt", "inference/digits/out/notes.txt.csv", "inference/digits/out/notes.txt.error.json"),
    ],
)  # fmt: skip
def test_batch_inputs_map_to_their_output_and_error_keys(key: str, output: str, error: str) -> None:
    # When
    source = batch_input(key)

    # Then
    assert source is not None
    assert (source.pipeline, source.key, source.output_key, source.error_key) == (
        "digits",
        key,
        output,
        error,
    )


@pytest.mark.parametrize(
    "key",
    ["inference/digits/out/a.csv", "inference/digits/in/", "inference/a b/in/x.csv",
     "runs/x/model/model.npz", "inference/digits/a.csv"],
)  # fmt: skip
def test_other_keys_are_not_batch_inputs(key: str) -> None:
    # Then
    assert batch_input(key) is None
