"""trainer.config: the run config contract; every error names the field and what is allowed."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inference import pointer
from trainer.config import PIPELINE_PATTERN, RUN_ID_PATTERN, ConfigError, RunConfig, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits.json"

Document = dict[str, Any]


def example() -> Document:
    document: Document = json.loads(EXAMPLE.read_text())
    return document


def changed(mutate: Callable[[Document], object]) -> Document:
    """The example config with ``mutate`` applied to a deep copy of it."""
    document = copy.deepcopy(example())
    mutate(document)
    return document


def set_path(path: str, value: Any) -> Callable[[Document], None]:
    """A mutation that sets the dotted ``path`` (list indices as numbers) to ``value``."""

    def mutate(document: Document) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def config_error(document: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config(document)
    return str(raised.value)


# --- valid configs -------------------------------------------------------------------------------


def test_the_example_config_parses() -> None:
    # Given
    text = EXAMPLE.read_text()

    # When
    config = parse_config(text)

    # Then
    assert config.run_id == "digits-demo"
    assert config.dataset.source == "builtin:digits"
    assert [(layer.units, layer.activation) for layer in config.model.layers] == [
        (64, "relu"),
        (10, "softmax"),
    ]
    assert config.loss == "cross_entropy"
    assert config.optimizer.name == "adam"
    assert config.optimizer.learning_rate == 0.005
    assert (config.epochs, config.batch_size, config.workers, config.seed) == (20, 32, 4, 7)
    assert config.l2 == 0.0001
    assert config.mode == "per_layer"  # the default
    assert config.is_classification
    assert config.n_layers == 2


def test_json_text_bytes_and_dict_give_equal_configs() -> None:
    # Given
    text = EXAMPLE.read_text()

    # When
    configs = [parse_config(text), parse_config(text.encode()), parse_config(json.loads(text))]

    # Then
    assert configs[0] == configs[1] == configs[2]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("optimizer", {"name": "momentum", "learning_rate": 0.1, "momentum": 0.5}),
        ("optimizer", {"name": "sgd", "learning_rate": 10.0}),
        ("optimizer", {"name": "adam", "learning_rate": 0.001, "beta1": 0.8, "epsilon": 1e-6}),
        ("run_id", "a" * 40),
        ("run_id", "Run_2-b"),
        ("mode", "fused"),
        ("workers", 40),
        ("epochs", 999),
        ("seed", 2**32 - 1),
        ("dataset", {"source": "s3://bucket/datasets/data.CSV", "label": "target"}),
        ("dataset.source", "./data/train.npz"),
        ("model.init", "xavier"),
    ],
)
def test_valid_variations_parse(path: str, value: Any) -> None:
    # Given
    document = changed(set_path(path, value))

    # When
    config = parse_config(document)

    # Then
    node: Any = config
    for part in path.split("."):
        node = getattr(node, part)
    expected = value if not isinstance(value, dict) else type(node).model_validate(value)
    assert node == expected


def test_mse_with_a_linear_last_layer_parses() -> None:
    # Given
    document = changed(set_path("loss", "mse"))
    document["model"]["layers"][-1]["activation"] = "linear"

    # When
    config = parse_config(document)

    # Then
    assert not config.is_classification


# --- bad fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "field", "allowed"),
    [
        ("optimizer.learning_rate", 0, "optimizer.learning_rate", "greater than 0"),
        ("optimizer.learning_rate", 11, "optimizer.learning_rate", "less than or equal to 10"),
        ("optimizer.name", "rmsprop", "optimizer.name", "'sgd', 'momentum' or 'adam'"),
        ("optimizer.beta2", 1.0, "optimizer.beta2", "less than 1"),
        ("model.layers.0.units", 0, "model.layers.0.units", "greater than or equal to 1"),
        ("model.layers.1.units", 65_537, "model.layers.1.units", "less than or equal to 65536"),
        ("model.layers.0.activation", "gelu", "model.layers.0.activation", "'relu', 'tanh'"),
        ("model.layers", [], "model.layers", "at least 1 item"),
        ("model.init", "lecun", "model.init", "'he' or 'xavier'"),
        ("run_id", "a" * 41, "run_id", RUN_ID_PATTERN),
        ("run_id", "my run", "run_id", RUN_ID_PATTERN),
        ("run_id", "", "run_id", RUN_ID_PATTERN),
        ("run_id", "a/b", "run_id", RUN_ID_PATTERN),
        ("dataset.source", "data.txt", "dataset.source", "a .npz or .csv file, a folder"),
        ("dataset.source", "builtin:mnist", "dataset.source", "'builtin:digits'"),
        ("dataset.validation_fraction", 0.0, "dataset.validation_fraction", "greater than 0"),
        ("dataset.validation_fraction", 1.0, "dataset.validation_fraction", "less than 1"),
        ("epochs", 0, "epochs", "greater than or equal to 1"),
        ("epochs", 1000, "epochs", "less than or equal to 999"),
        ("epochs", 2.5, "epochs", "valid integer"),
        ("batch_size", 0, "batch_size", "greater than or equal to 1"),
        ("workers", 0, "workers", "greater than or equal to 1"),
        ("workers", 41, "workers", "less than or equal to 40"),
        ("l2", -0.1, "l2", "greater than or equal to 0"),
        ("l2", float("nan"), "l2", "finite number"),
        ("seed", -1, "seed", "greater than or equal to 0"),
        ("seed", 2**32, "seed", "less than or equal to 4294967295"),
        ("loss", "hinge", "loss", "'cross_entropy' or 'mse'"),
        ("mode", "fast", "mode", "'per_layer', 'fused' or 'per_step'"),
    ],
)
def test_a_bad_field_is_named_with_what_is_allowed(
    path: str, value: Any, field: str, allowed: str
) -> None:
    # Given
    document = changed(set_path(path, value))

    # When
    message = config_error(document)

    # Then
    assert f"{field}: " in message
    assert allowed in message


@pytest.mark.parametrize("field", ["dataset", "model", "loss", "optimizer", "epochs", "batch_size"])
def test_a_missing_required_field_is_named(field: str) -> None:
    # Given
    document = changed(lambda d: d.pop(field))

    # When
    message = config_error(document)

    # Then
    assert f"{field}: Field required" in message


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (set_path("learning_rate", 0.1), "learning_rate"),
        (set_path("dataset.path", "x.npz"), "dataset.path"),
        (set_path("model.dropout", 0.5), "model.dropout"),
        (set_path("model.layers.0.dropout", 0.5), "model.layers.0.dropout"),
    ],
    ids=["top-level", "dataset", "model", "layer"],
)
def test_an_unknown_field_is_an_error(mutate: Callable[[Document], None], field: str) -> None:
    # Given
    document = changed(mutate)

    # When
    message = config_error(document)

    # Then
    assert f"{field}: unknown field" in message


def test_every_bad_field_is_listed() -> None:
    # Given
    document = changed(set_path("epochs", 0))
    document["batch_size"] = 0
    document["model"]["layers"][0]["units"] = -3

    # When
    message = config_error(document)

    # Then
    for field in ("epochs: ", "batch_size: ", "model.layers.0.units: "):
        assert field in message


@pytest.mark.parametrize("hidden", [0, 1])
def test_softmax_in_a_hidden_layer_is_an_error(hidden: int) -> None:
    # Given: three layers, softmax on a hidden one (and on the last, as cross_entropy needs)
    document = changed(
        set_path(
            "model.layers",
            [
                {"units": 16, "activation": "relu"},
                {"units": 16, "activation": "relu"},
                {"units": 10, "activation": "softmax"},
            ],
        )
    )
    document["model"]["layers"][hidden]["activation"] = "softmax"

    # When
    message = config_error(document)

    # Then
    assert f"model: layers[{hidden}]: softmax is allowed on the last layer only" in message
    assert "relu, tanh, sigmoid or linear" in message


@pytest.mark.parametrize("last", ["relu", "linear", "sigmoid", "tanh"])
def test_cross_entropy_needs_a_softmax_last_layer(last: str) -> None:
    # Given
    document = changed(set_path("model.layers.1.activation", last))

    # When
    message = config_error(document)

    # Then
    assert "loss 'cross_entropy' needs a softmax last layer" in message
    assert f"(model.layers[-1].activation is '{last}')" in message


def test_mse_with_a_softmax_last_layer_is_an_error() -> None:
    # Given
    document = changed(set_path("loss", "mse"))

    # When
    message = config_error(document)

    # Then
    assert "a softmax last layer needs loss 'cross_entropy'" in message
    assert "use 'mse' with a linear" in message


@pytest.mark.parametrize(
    ("optimizer", "extra", "takes"),
    [
        ({"name": "adam", "learning_rate": 0.01, "momentum": 0.9}, "['momentum']", "['beta1', "),
        ({"name": "momentum", "learning_rate": 0.01, "beta1": 0.9}, "['beta1']", "['momentum']"),
        ({"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "epsilon": 1e-7}, None, None),
    ],
    ids=["momentum-on-adam", "beta1-on-momentum", "momentum-and-epsilon-on-sgd"],
)
def test_optimizer_fields_that_do_not_apply_are_errors(
    optimizer: Document, extra: str | None, takes: str | None
) -> None:
    # Given
    document = changed(set_path("optimizer", optimizer))

    # When
    message = config_error(document)

    # Then
    name = optimizer["name"]
    assert f"optimizer: {extra or ['epsilon', 'momentum']} do not apply to optimizer '{name}'" in (
        message
    )
    if takes is not None:
        assert f"it takes {takes}" in message


def test_a_misspelled_optimizer_field_is_reported_as_unknown() -> None:
    # Given: learning_rate misspelled
    document = changed(set_path("optimizer", {"name": "sgd", "learning_rte": 0.1}))

    # When
    message = config_error(document)

    # Then
    assert "optimizer.learning_rte: unknown field" in message
    assert "optimizer.learning_rate: Field required" in message
    assert "do not apply" not in message


@pytest.mark.parametrize(
    ("path", "field"), [("l2", "l2"), ("optimizer.epsilon", "optimizer.epsilon")]
)
def test_an_infinite_number_is_an_error(path: str, field: str) -> None:
    # Given
    document = changed(set_path(path, float("inf")))

    # When
    message = config_error(document)

    # Then
    assert f"{field}: " in message


@pytest.mark.parametrize("field", ["epochs", "batch_size", "workers"])
def test_a_boolean_for_a_number_is_an_error(field: str) -> None:
    # Given
    document = changed(set_path(field, True))

    # When
    message = config_error(document)

    # Then
    assert f"{field}: " in message


# --- documents that are not configs -------------------------------------------------------------


@pytest.mark.parametrize("text", ["{not json", '{"epochs": 3,}', ""])
def test_invalid_json_text_is_a_config_error(text: str) -> None:
    # When
    message = config_error(text)

    # Then
    assert message.startswith("the config is not valid JSON: ")


@pytest.mark.parametrize("document", ["[1, 2]", '"config"', "3", [1, 2]])
def test_a_document_that_is_not_an_object_is_a_config_error(document: Any) -> None:
    # When
    message = config_error(document)

    # Then
    assert message == "the config must be a JSON object"


# --- run_id and to_json --------------------------------------------------------------------------


def test_to_json_round_trips_to_an_equal_config_and_keeps_the_run_id() -> None:
    # Given
    config = parse_config(example())

    # When
    again = parse_config(config.to_json())

    # Then
    assert again == config
    assert again.run_id == "digits-demo"
    assert again.to_json() == config.to_json()


def test_to_json_leaves_defaults_out() -> None:
    # Given: the example sets neither mode nor the optimizer's betas
    config = parse_config(example())

    # When
    document = json.loads(config.to_json())

    # Then
    assert "mode" not in document
    assert document["optimizer"] == {"name": "adam", "learning_rate": 0.005}
    assert document == example()


def test_a_config_without_run_id_gets_a_generated_valid_one() -> None:
    # Given
    document = changed(lambda d: d.pop("run_id"))

    # When
    first, second = parse_config(document), parse_config(document)

    # Then
    assert re.fullmatch(RUN_ID_PATTERN, first.run_id)
    assert first.run_id.startswith("run-")
    assert first.run_id != second.run_id
    assert json.loads(first.to_json())["run_id"] == first.run_id
    assert parse_config(first.to_json()) == first


def test_a_run_config_is_frozen() -> None:
    # Given
    config = parse_config(example())

    # When / Then
    with pytest.raises(ValueError, match="frozen"):
        config.epochs = 3  # type: ignore[misc]
    assert isinstance(config, RunConfig)


def test_a_per_layer_step_too_large_for_one_execution_is_an_error() -> None:
    # Given 40 workers through 36 layers, one task per layer
    document = changed(set_path("workers", 40))
    document["model"]["layers"] = [{"units": 4, "activation": "relu"}] * 35 + [
        {"units": 10, "activation": "softmax"}
    ]

    # When
    message = config_error(document)

    # Then the error says why and what to do; fused mode is accepted
    assert "workers × layers" in message and "use mode 'fused'" in message
    assert parse_config(document | {"mode": "fused"}).workers == 40


# --- the registry's fields --------------------------------------------------------------------


def test_a_run_s_pipeline_defaults_to_its_run_id_and_its_rule_to_the_loss_s_metric() -> None:
    # Given / When
    config = parse_config(example())

    # Then
    assert config.pipeline is None and config.pipeline_name == config.run_id
    assert config.promotion_metric == "val_accuracy" and config.promote_if.margin == 0.0
    assert "pipeline" not in json.loads(config.to_json())  # as the user wrote it


def test_a_pipeline_and_a_rule_are_kept() -> None:
    # Given
    document = example() | {
        "pipeline": "digits",
        "promote_if": {"metric": "val_loss", "margin": 0.01},
    }

    # When
    config = parse_config(document)

    # Then
    assert (config.pipeline_name, config.promotion_metric, config.promote_if.margin) == (
        "digits", "val_loss", 0.01,
    )  # fmt: skip
    assert parse_config(config.to_json()) == config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pipeline": "a/b"}, "pipeline: String should match pattern"),
        ({"pipeline": "x" * 65}, "pipeline: String should match pattern"),
        (
            {"promote_if": {"metric": "f1"}},
            "promote_if.metric: Input should be 'val_accuracy' or 'val_loss'",
        ),
        (
            {"promote_if": {"margin": -0.1}},
            "promote_if.margin: Input should be greater than or equal to 0",
        ),
        ({"promote_if": {"metric": "val_loss", "by": 1}}, "promote_if.by: unknown field"),
    ],
)
def test_a_bad_pipeline_or_rule_is_named(changes: Document, message: str) -> None:
    # When / Then
    assert message in config_error(example() | changes)


def test_accuracy_cannot_promote_a_regression_run() -> None:
    # Given an mse run asking for val_accuracy
    document = example() | {"loss": "mse", "promote_if": {"metric": "val_accuracy"}}
    document["model"]["layers"][-1]["activation"] = "linear"

    # When / Then
    assert "'val_accuracy' needs loss 'cross_entropy'" in config_error(document)
    assert parse_config(document | {"promote_if": {}}).promotion_metric == "val_loss"


def test_a_pipeline_name_is_what_the_inference_pointer_accepts() -> None:
    # Then (inference.pointer spells the pipeline names of S3 keys and API paths)
    assert pointer.PIPELINE_PATTERN.pattern == PIPELINE_PATTERN
