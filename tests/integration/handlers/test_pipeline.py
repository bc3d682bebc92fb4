"""The handlers, called in the workflow's order against the moto store, train the reference's
weights: same schedule, same math, bit for bit (see ``pipeline_driver``)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.limits import tuned_limits
from support.pipeline_driver import Pipeline, invoke, microbatch_task

from stepnet.datasets import synthetic_regression, write_npz
from stepnet.reference import TrainedModel, prepare_dataset, train
from trainer import dal, settings
from trainer.config import parse_config
from trainer.store import ImmutableTensorError, keys
from trainer.training.schedule import EVALUATION_EVENTS, events_per_step, step_layout

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 2
TOLERANCE = 1e-6  # the pipeline is expected to agree exactly (max difference 0.0)
REGRESSION_KEY = "datasets/reg.npz"

Params = list[tuple[np.ndarray, np.ndarray]]


def digits_document() -> dict[str, Any]:
    """examples/digits.json for 2 epochs on 3 workers."""
    document: dict[str, Any] = json.loads((ROOT / "examples" / "digits.json").read_text())
    return document | {"run_id": "digits-pipeline", "epochs": EPOCHS, "workers": 3}


def regression_document(source: str) -> dict[str, Any]:
    return {
        "run_id": "reg-pipeline",
        "dataset": {"source": source},
        "model": {
            "layers": [{"units": 16, "activation": "tanh"}, {"units": 2, "activation": "linear"}]
        },
        "loss": "mse",
        "optimizer": {"name": "momentum", "learning_rate": 0.05, "momentum": 0.9},
        "l2": 0.001,
        "epochs": EPOCHS,
        "batch_size": 16,
        "workers": 3,
        "seed": 11,
    }


@dataclass(frozen=True)
class Reference:
    trained: TrainedModel
    microbatches_per_epoch: int

    @property
    def steps_per_epoch(self) -> int:
        return self.trained.version // EPOCHS


@pytest.fixture(scope="module")
def regression_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synthetic_regression(n=300, d=6, k=2) as an .npz: 240 training rows, 5 steps an epoch."""
    X, y = synthetic_regression(n=300, d=6, k=2)
    return write_npz(tmp_path_factory.mktemp("datasets") / "reg.npz", X, y)


@pytest.fixture(scope="module")
def references(regression_file: Path) -> dict[str, Reference]:
    """stepnet.reference.train on both datasets (local copies of what the pipeline reads)."""
    result = {}
    for name, document in (
        ("digits", digits_document()),
        ("regression", regression_document(str(regression_file))),
    ):
        config = parse_config(document)
        n_train = prepare_dataset(config).split.n_train
        layout = step_layout(n_train, config.batch_size, config.workers)
        result[name] = Reference(
            trained=train(config, epochs=EPOCHS),
            microbatches_per_epoch=sum(len(step) for step in layout.steps),
        )
    return result


@pytest.fixture
def regression_source(handler_env: Any, regression_file: Path) -> str:
    """The regression .npz uploaded to the mocked bucket; its s3:// URI."""
    handler_env.s3.put_object(
        Bucket=handler_env.bucket, Key=REGRESSION_KEY, Body=regression_file.read_bytes()
    )
    return f"s3://{handler_env.bucket}/{REGRESSION_KEY}"


def max_abs_diff(got: Params, expected: Params) -> float:
    assert len(got) == len(expected)
    worst = 0.0
    for (W, b), (W_ref, b_ref) in zip(got, expected, strict=True):
        for array, reference in ((W, W_ref), (b, b_ref)):
            assert array.shape == reference.shape
            assert array.dtype == reference.dtype
            worst = max(worst, float(np.max(np.abs(array.astype(np.float64) - reference))))
    return worst


def pipeline_weights(run_id: str, version: int) -> Params:
    return dal.load_params(settings.store(), run_id, version, 2)


def s3_object(aws: Any, key: str) -> bytes:
    body: bytes = aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read()
    return body


def npz_params(data: bytes) -> Params:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        assert sorted(archive.files) == ["W1", "W2", "b1", "b2"]
        return [(archive[f"W{layer}"], archive[f"b{layer}"]) for layer in (1, 2)]


# --- the map items -------------------------------------------------------------------------------


def test_the_driver_builds_map_items_like_the_item_selector() -> None:
    # Given
    asl = json.loads((ROOT / "statemachine" / "steps.asl.json").read_text())
    selector = asl["States"]["Train step"]["ItemSelector"]
    cursor = {
        "run_id": "r", "epoch": 2, "step": 5, "version": 17, "layers": 3, "workers": 2,
        "mode": "fused", "microbatches": [0, 1],
    }  # fmt: skip

    # When
    item = microbatch_task(cursor, 1)

    # Then
    assert set(item) == {name.removesuffix(".$") for name in selector}
    for name, value in selector.items():
        if name.endswith(".$"):
            path = value.removeprefix("$.cursor.")
            expected = 1 if value == "$$.Map.Item.Value" else cursor[path]
            assert item[name.removesuffix(".$")] == expected
        else:
            assert item[name] == value


# --- the pipeline trains the reference's weights ---------------------------------------------------


@dataclass(frozen=True)
class Variant:
    dataset: str
    mode: str
    threads: int  # 0: a step's micro-batches one after the other

    def __str__(self) -> str:
        order = f"{self.threads}-threads" if self.threads else "sequential"
        return f"{self.dataset}-{self.mode}-{order}"


VARIANTS = [
    Variant("digits", "per_layer", threads=3),
    Variant("regression", "per_layer", threads=0),
    Variant("digits", "fused", threads=0),
    Variant("regression", "fused", threads=3),
    Variant("digits", "per_step", threads=0),  # one task per step: no Map, nothing to thread
    Variant("regression", "per_step", threads=0),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_the_pipeline_trains_the_reference_weights(
    variant: Variant,
    handler_env: Any,
    regression_file: Path,
    references: dict[str, Reference],
) -> None:
    # Given
    if variant.dataset == "digits":
        document = digits_document()
    else:
        handler_env.s3.put_object(
            Bucket=handler_env.bucket, Key=REGRESSION_KEY, Body=regression_file.read_bytes()
        )
        document = regression_document(f"s3://{handler_env.bucket}/{REGRESSION_KEY}")
    document = document | {"mode": variant.mode}
    run_id = document["run_id"]
    reference = references[variant.dataset]

    # When
    pipeline = Pipeline(threads=variant.threads)
    summary = pipeline.train(document, execution_name=run_id)

    # Then: the weights of the last version are the reference's
    version = reference.trained.version
    diff = max_abs_diff(pipeline_weights(run_id, version), reference.trained.params)
    print(f"{variant}: max |pipeline - reference| weight difference = {diff!r}")
    assert diff <= TOLERANCE, f"{variant}: max |pipeline - reference| weight difference = {diff!r}"

    # and every step ran once per micro-batch in the mode's tasks (per_step: one task a step)
    items = EPOCHS * reference.microbatches_per_epoch
    tasks = {f: pipeline.calls[f] for f in ("Forward", "Loss", "Backward", "Gradients")}
    steps = {f: pipeline.calls[f] for f in ("Update", "TrainStep")}
    if variant.mode == "per_step":
        assert steps == {"Update": 0, "TrainStep": version}
        assert tasks == dict.fromkeys(tasks, 0)
    elif variant.mode == "per_layer":
        assert steps == {"Update": version, "TrainStep": 0}
        assert tasks == {"Forward": 2 * items, "Loss": items, "Backward": 2 * items, "Gradients": 0}
    else:
        assert steps == {"Update": version, "TrainStep": 0}
        assert tasks == {"Forward": 0, "Loss": 0, "Backward": 0, "Gradients": items}

    # and the run moved epoch by epoch to done
    assert [p["epoch"] for p in pipeline.progress] == [1, 2, 3]
    assert [p["version"] for p in pipeline.progress] == [
        e * reference.steps_per_epoch for e in range(EPOCHS + 1)
    ]
    assert [p["done"] for p in pipeline.progress] == [False, False, True]
    assert pipeline.progress[1]["epoch_name"] == f"{run_id}-epoch-002"

    # and Finalize summed it up and exported the reference's model and metrics
    metrics = [
        row | {"version": epoch * reference.steps_per_epoch}
        for epoch, row in enumerate(reference.trained.metrics, start=1)
    ]
    assert summary == {
        "run_id": run_id,
        "status": "SUCCEEDED",
        "epochs": EPOCHS,
        "version": version,
        "model_uri": f"s3://{handler_env.bucket}/runs/{run_id}/model/",
        "metrics": metrics[-1],
    }
    assert_exports_match(handler_env, run_id, reference.trained, variant.dataset)


def assert_exports_match(aws: Any, run_id: str, reference: TrainedModel, dataset: str) -> None:
    """Finalize's files in S3 hold the reference's model and metrics; the run is SUCCEEDED."""
    prefix = f"runs/{run_id}/model/"
    exported = npz_params(s3_object(aws, prefix + "model.npz"))
    diff = max_abs_diff(exported, reference.params)
    assert diff <= TOLERANCE, f"{dataset}: max |model.npz - reference| = {diff!r}"

    # model.json is the reference's model document (classes only for classification)
    model = json.loads(s3_object(aws, prefix + "model.json"))
    assert model == reference.model
    assert (model["classes"] is None) == (dataset == "regression")

    # metrics.json has the reference's rows, plus the weights version each epoch ended on
    metrics = json.loads(s3_object(aws, prefix + "metrics.json"))
    assert metrics["run_id"] == run_id
    steps = reference.version // EPOCHS
    assert [row.pop("version") for row in metrics["epochs"]] == [steps, 2 * steps]
    assert metrics["epochs"] == reference.metrics
    assert all(("val_accuracy" in row) == (dataset == "digits") for row in metrics["epochs"])

    status = settings.store().runs.get_status(run_id)
    assert status["status"] == "SUCCEEDED"
    assert status["model_uri"] == f"s3://{aws.bucket}/{prefix}"


def test_a_long_epoch_continues_in_parts_with_the_same_weights(
    handler_env: Any,
    regression_source: str,
    references: dict[str, Reference],
) -> None:
    # Given: a history budget of two steps, so the 5-step epochs continue in new executions
    per_step = events_per_step(workers=3, layers=2, mode="per_layer")
    document = regression_document(regression_source)

    # When
    pipeline = Pipeline()
    with tuned_limits(history_event_budget=2 * per_step + EVALUATION_EVENTS):
        pipeline.train(document, execution_name="reg-pipeline")

    # Then: each epoch was cut into parts 1, 2, 3 after steps 2 and 4
    full = [(c["epoch"], c["step"], c["part"], c["continuation_name"]) for c in pipeline.cursors]
    full = [entry for entry, c in zip(full, pipeline.cursors, strict=True) if c["chunk_full"]]
    assert full == [
        (1, 2, 2, "reg-pipeline-epoch-001-part-02"),
        (1, 4, 3, "reg-pipeline-epoch-001-part-03"),
        (2, 2, 2, "reg-pipeline-epoch-002-part-02"),
        (2, 4, 3, "reg-pipeline-epoch-002-part-03"),
    ]
    # and the weights are still the reference's
    reference = references["regression"].trained
    diff = max_abs_diff(pipeline_weights("reg-pipeline", reference.version), reference.params)
    assert diff <= TOLERANCE, f"max |pipeline - reference| = {diff!r}"


# --- retries and immutability ----------------------------------------------------------------------


def test_a_pipeline_whose_every_task_is_retried_trains_the_same_weights(
    handler_env: Any, regression_source: str, references: dict[str, Reference]
) -> None:
    # Given
    document = regression_document(regression_source)

    # When: every task runs twice with the same event (the driver asserts equal results)
    pipeline = Pipeline(retry=True, threads=3)
    pipeline.train(document, execution_name="reg-pipeline")

    # Then
    reference = references["regression"].trained
    diff = max_abs_diff(pipeline_weights("reg-pipeline", reference.version), reference.params)
    assert diff <= TOLERANCE, f"max |pipeline - reference| = {diff!r}"


def first_step(source: str) -> dict[str, Any]:
    """Initialize a 1-epoch regression run and plan epoch 1; returns the first cursor."""
    document = regression_document(source) | {"epochs": 1}
    run = Pipeline().initialize(document, "reg-pipeline")
    return invoke("Plan", {"run_id": run["run_id"], "epoch": 1, "version": 0})


def bundle(key: str) -> dict[str, np.ndarray]:
    """A stored bundle read from DynamoDB / S3, not from the in-process cache."""
    store = settings.store()
    store.tensors.clear_cache()
    return {name: np.array(array) for name, array in store.tensors.get(key).items()}


def tensor_items(aws: Any) -> int:
    count: int = aws.dynamodb.scan(TableName=aws.tensors_table, Select="COUNT")["Count"]
    return count


def test_a_retried_forward_returns_the_same_task_and_activation(
    handler_env: Any, regression_source: str
) -> None:
    # Given
    cursor = first_step(regression_source)
    task = microbatch_task(cursor, 1)
    first = invoke("Forward", task)
    activation = bundle(first["key"])

    # When
    again = invoke("Forward", task)

    # Then
    assert again == first
    assert first["layer"] == 2
    assert first["key"] == keys.activation_key("reg-pipeline", 0, 1, 1)
    np.testing.assert_array_equal(bundle(again["key"])["A"], activation["A"])


def test_a_retried_backward_returns_the_same_task_and_gradients(
    handler_env: Any, regression_source: str
) -> None:
    # Given: micro-batch 0 went forward, through the cost and back through layer 2
    cursor = first_step(regression_source)
    task = microbatch_task(cursor, 0)
    while task["layer"] <= task["layers"]:
        task = invoke("Forward", task)
    task = invoke("Loss", task)
    first = invoke("Backward", task)
    gradient = bundle(first["key"])

    # When
    again = invoke("Backward", task)

    # Then it returns the same task and rewrites the same bundle: layer 2's gradients and the
    # delta it passes to layer 1, together (one write)
    assert again == first
    assert first["layer"] == 1
    assert first["key"] == keys.gradient_key("reg-pipeline", 0, 0, 2)
    assert sorted(gradient) == ["dW", "dZ", "db"]
    for name in ("dW", "db", "dZ"):
        np.testing.assert_array_equal(bundle(again["key"])[name], gradient[name])


def test_a_retried_update_returns_the_same_cursor_and_leaves_the_weights(
    handler_env: Any, regression_source: str
) -> None:
    # Given: the first step's micro-batches are done and the update ran once
    cursor = first_step(regression_source)
    pipeline = Pipeline()
    for microbatch in cursor["microbatches"]:
        pipeline.microbatch(microbatch_task(cursor, microbatch))
    step = {"cursor": cursor, "losses": [0.5] * len(cursor["microbatches"])}
    first = invoke("Update", step)
    weights = {
        (version, layer): bundle(keys.weights_key("reg-pipeline", version))
        for version in (0, 1)
        for layer in (1, 2)
    }
    items = tensor_items(handler_env)

    # When
    again = invoke("Update", step)

    # Then
    assert again == first
    assert (first["step"], first["version"]) == (1, 1)
    assert tensor_items(handler_env) == items
    for (version, layer), stored in weights.items():
        now = bundle(keys.weights_key("reg-pipeline", version))
        for name in (f"W{layer}", f"b{layer}"):
            np.testing.assert_array_equal(now[name], stored[name])
    assert not np.array_equal(weights[1, 1]["W1"], weights[0, 1]["W1"])  # the update did update


def test_a_retried_whole_step_returns_the_same_cursor_and_leaves_the_weights(
    handler_env: Any, regression_source: str
) -> None:
    # Given: the first step, trained in one task (mode per_step), once
    cursor = first_step(regression_source)
    step = {"cursor": cursor | {"mode": "per_step"}}
    planned = tensor_items(handler_env)
    first = invoke("TrainStep", step)
    weights = bundle(keys.weights_key("reg-pipeline", 1))
    optimizer = bundle(keys.optimizer_key("reg-pipeline", 1))
    items = tensor_items(handler_env)

    # When
    again = invoke("TrainStep", step)

    # Then the same cursor (its micro-batches' losses included), no new item, the same version
    assert again == first
    assert (first["step"], first["version"]) == (1, 1)
    assert len(first["losses"]) == len(cursor["microbatches"])
    assert tensor_items(handler_env) == items
    for key, stored in (
        (keys.weights_key("reg-pipeline", 1), weights),
        (keys.optimizer_key("reg-pipeline", 1), optimizer),
    ):
        now = bundle(key)
        assert sorted(now) == sorted(stored)
        for name in stored:
            np.testing.assert_array_equal(now[name], stored[name])
    # and it wrote the two bundles of version 1 and nothing else: no gradient, no scratch
    assert items == planned + 2
    scanned = handler_env.dynamodb.scan(TableName=handler_env.tensors_table)["Items"]
    assert not any("/scratch/" in str(item) for item in scanned)


def test_a_weights_version_cannot_be_overwritten(handler_env: Any, regression_source: str) -> None:
    # Given
    first_step(regression_source)
    store = settings.store()
    key = keys.weights_key("reg-pipeline", 0)
    stored = bundle(key)

    # When / Then: different content is refused, the same content is a no-op
    with pytest.raises(ImmutableTensorError, match="immutable"):
        store.tensors.put(key, {**stored, "W1": stored["W1"] + 1})
    store.tensors.put(key, stored)
    now = bundle(key)
    np.testing.assert_array_equal(now["W1"], stored["W1"])
    np.testing.assert_array_equal(now["b2"], stored["b2"])


def test_loaded_weights_are_read_only(handler_env: Any, regression_source: str) -> None:
    # Given
    first_step(regression_source)

    # When
    (W, b), _ = pipeline_weights("reg-pipeline", 0)

    # Then
    with pytest.raises(ValueError, match="read-only"):
        W[0, 0] = 1.0
    assert not b.flags.writeable
