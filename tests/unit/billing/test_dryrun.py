"""The dry run: the handlers' own run() on a store of shapes, in the workflow's order."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stepnet.billing import dryrun
from stepnet.billing.dryrun import DatasetInput, EstimateError, ShapeTensors
from stepnet.billing.rules import item_bytes
from stepnet.datasets import synthetic_classification, write_npz
from trainer.config import parse_config
from trainer.contract import workflow
from trainer.data.blocks import split_blocks
from trainer.data.readers import read_dataset
from trainer.store import TensorNotFoundError, codec, keys
from trainer.store.tensors import tensor_item

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _config(**changes: Any) -> Any:
    document = json.loads((EXAMPLES / "digits.json").read_text())
    return parse_config(document | changes)


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_put(
        self, key: str, item: dict[str, Any], *, encoded_bytes: int, spilled: bool, scratch: bool
    ) -> None:
        self.events.append(("put", key, item, encoded_bytes, spilled, scratch))

    def on_get(self, keys: Any, *, batch: bool) -> None:
        self.events.append(("get", list(keys), batch))


# --- the store of shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("immutable", [True, False], ids=["immutable", "scratch"])
def test_a_put_is_told_with_the_item_the_tensor_store_would_write(immutable: bool) -> None:
    # Given a store of shapes whose clock is fixed, a small bundle and a large one
    recorder = _Recorder()
    tensors = ShapeTensors(inline_limit=1_000, clock=lambda: 1_700_000_000.0)
    tensors.observers.append(recorder)
    small = {"W": np.ones((4, 3), np.float32), "b": np.ones(3, np.float32)}
    large = {"X": np.ones((50, 20), np.float32)}

    # When both are put
    tensors.put("r/small", small, immutable=immutable)
    tensors.put("r/large", large, immutable=immutable)

    # Then each is told with the one writer's item, sized by the codec's exact length
    expires = None if immutable else 1_700_000_000 + tensors.scratch_ttl_seconds
    for (_, key, item, encoded, spilled, scratch), bundle in zip(
        recorder.events, (small, large), strict=True
    ):
        length = len(codec.encode(bundle))
        assert (encoded, spilled, scratch) == (length, length > 1_000, not immutable)
        payload = b"" if spilled else bytes(length)
        assert item == tensor_item(
            key, length, spilled=spilled, expires_at=expires, payload=payload
        )
        assert item_bytes(item) > (0 if spilled else length)


def test_reads_return_zeros_of_the_recorded_shapes_without_the_memory() -> None:
    # Given a large immutable bundle, a scratch one and an integer schedule
    tensors = ShapeTensors()
    tensors.put("r/data/train", {"X": np.ones((60_000, 784), np.float32)})
    tensors.put("r/scratch/A1", {"A": np.ones((8, 3))}, immutable=False)
    tensors.put("r/schedules/e0001", {"sizes": np.array([[32, 32], [5, 0]])})

    # When read back
    data = tensors.get("r/data/train")["X"]
    (activation,) = (b["A"] for b in tensors.get_many(["r/scratch/A1"]))
    sizes = tensors.get("r/schedules/e0001")["sizes"]

    # Then immutable floats are read-only zero views (no memory), scratch writable zeros,
    # integers their values (they steer the handlers)
    assert data.shape == (60_000, 784) and data.dtype == np.float32
    assert data.strides == (0, 0) and not data.flags.writeable and not data.any()
    assert activation.flags.writeable and activation.shape == (8, 3) and not activation.any()
    np.testing.assert_array_equal(sizes, [[32, 32], [5, 0]])
    with pytest.raises(TensorNotFoundError):
        tensors.get("r/never/written")


# --- the dataset Initialize reads ---------------------------------------------------------------


def test_a_local_dataset_is_served_where_stepnet_start_uploads_it(tmp_path: Path) -> None:
    # Given a config whose dataset is a local file
    X, y = synthetic_classification(n=60, d=4, k=3, seed=1)
    path = write_npz(tmp_path / "blobs.npz", X, y)
    config = _config(dataset={"source": str(path)})

    # When the dry run's input is made
    dataset = DatasetInput.of(config, bucket="b")

    # Then it is the file's bytes, at uploads/<sha256 prefix>-<name> of the bucket
    (uri, data), *_ = dataset.objects.items()
    assert dataset.source == uri and data == path.read_bytes()
    assert uri.startswith("s3://b/uploads/") and uri.endswith("-blobs.npz")
    assert DatasetInput.of(_config()) == DatasetInput("builtin:digits")


@pytest.mark.parametrize("fraction", [0.2, 1 / 7, 0.5, 0.01])
@pytest.mark.parametrize("source", ["s3://bucket/data.npz", "s3://bucket/data.csv"])
def test_a_stand_in_has_the_shape_asked_for(fraction: float, source: str) -> None:
    # Given a dataset the estimate cannot read, and the shape it should have
    config = _config(dataset={"source": source, "validation_fraction": fraction})

    # When a stand-in is made for 1,000 training examples of 12 features
    dataset = DatasetInput.of(config, n_train=1_000, n_features=12)

    # Then Initialize's reader reads it, with 10 classes, and its split leaves 1,000
    X, y = read_dataset(dataset.objects[source], source)
    assert X.shape[1] == 12 and set(np.unique(y)) == set(range(10))
    result = dryrun.dry_run(config, dataset, modes=("fused",))
    assert result.info["n_train"] == 1_000 and result.info["n_features"] == 12


@pytest.mark.parametrize(
    ("n_train", "n_features", "expected"), [(500, None, (500, 64)), (None, 10, (1437, 10))]
)
def test_one_count_given_the_other_comes_from_the_dataset(
    n_train: int | None, n_features: int | None, expected: tuple[int, int]
) -> None:
    # Given the builtin digits (1,797 × 64) and one count overridden
    config = _config()

    # When the dry run trains on a stand-in
    dataset = DatasetInput.of(config, n_train=n_train, n_features=n_features)
    result = dryrun.dry_run(config, dataset, modes=("fused",))

    # Then the count given is used, the other is the dataset's (after its split)
    assert (result.info["n_train"], result.info["n_features"]) == expected
    assert dataset.source.endswith("-digits.npz")


def test_an_s3_dataset_needs_its_shape() -> None:
    # Given a dataset in S3, When / Then the dry run says what to pass
    with pytest.raises(EstimateError, match="pass n_train and n_features"):
        DatasetInput.of(_config(dataset={"source": "s3://bucket/data.npz"}))


# --- running the handlers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run() -> dryrun.DryRun:
    return dryrun.dry_run(_config(), DatasetInput("builtin:digits"))


def test_the_run_level_handlers_run_once_on_the_real_dataset(digits_run: dryrun.DryRun) -> None:
    # Given the digits dry run, Then Start recorded the real split (blocks of 4 rows), and every
    # function ran: the shard passes and the evaluation over the one group of the one shard
    assert (digits_run.info["n_train"], digits_run.info["n_val"]) == (1437, 360)
    assert digits_run.layout.n_steps == 12
    assert digits_run.groups == 1 and len(digits_run.evaluate_shards) == 1
    functions = {i.function for i in (*digits_run.fixed, digits_run.plan, digits_run.evaluate)}
    functions |= {i.function for i in digits_run.evaluate_shards}
    for steps in digits_run.steps.values():
        for step in steps:
            functions.add(step.update.function)
            functions |= {i.function for mb in step.microbatches for i in mb.invocations}
    assert functions == set(workflow.EPOCH_FUNCTIONS) | set(workflow.RUN_FUNCTIONS)
    # Plan stored nothing (each micro-batch reads its rows from the shard); the one shard, a
    # single file, was converted (shuffled) into one object; Finalize exported 3 files
    assert digits_run.plan.store.ddb_writes == digits_run.plan.store.s3_puts == 0
    (prepare,) = digits_run.prepare_shards
    assert prepare.store.s3_puts == 1
    assert digits_run.finalize.store.s3_puts == 3


@pytest.mark.parametrize("mode", workflow.MODES)
def test_the_first_and_last_steps_follow_the_workflow(digits_run: dryrun.DryRun, mode: str) -> None:
    # Given the epoch's first and last steps in `mode` (12 steps: 4 micro-batches of 32 each,
    # the last one micro-batch of 29)
    first, last = digits_run.steps[mode]

    # Then every micro-batch ran the workflow's path, and Update read all of the step's
    path = workflow.microbatch_functions(mode, 2)
    assert (first.step, last.step) == (0, 11)
    assert [mb.rows for mb in first.microbatches] == [32] * 4
    assert [mb.rows for mb in last.microbatches] == [29]
    for mb in (*first.microbatches, *last.microbatches):
        assert [i.function for i in mb.invocations] == path
    assert len(first.microbatches[0].invocations) == len(path)
    # Update: the dataset (its size), then the weights, the optimizer state and a batch of
    # gradients
    assert first.update.store.ddb_reads == 1 + 3
    assert first.update.store.ddb_writes == 2  # one weights bundle, one optimizer-state bundle


def test_a_forward_reads_its_input_and_weights_and_writes_its_activation(
    digits_run: dryrun.DryRun,
) -> None:
    # Given the first micro-batch's invocations per layer
    forward, *_ = digits_run.steps["per_layer"][0].microbatches[0].invocations

    # Then: the dataset and layer 1's weights read, the micro-batch's rows read from the shard
    # (blocks of 4 rows: one range of X and one of y per block, or per run of adjacent blocks),
    # the micro-batch kept for Loss and Backward and the activation (32 × 64 floats) written
    assert (forward.store.ddb_reads, forward.store.ddb_writes) == (2, 2)
    assert 2 + 1 <= forward.store.s3_gets <= 2 * 32 // 4 + 1  # and the spilled W1
    assert forward.store.bytes_read >= 32 * (64 + 8)  # uint8 pixels, int64 labels
    batch = {"X": np.zeros((32, 64), np.float32), "Y": np.zeros((32, 10), np.float32)}
    assert forward.store.bytes_written == len(codec.encode(batch)) + len(
        codec.encode({"A": np.zeros((32, 64), np.float32)})
    )


def test_the_dry_run_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a small dry run, When it runs, Then the handlers' log lines are silenced
    dryrun.dry_run(_config(epochs=2), DatasetInput("builtin:digits"), modes=("fused",))
    assert capsys.readouterr().out == ""


def test_keys_have_fixed_widths_so_one_step_stands_for_all() -> None:
    # Given keys of different versions and steps, Then they have the same length (zero-padded)
    assert len(keys.weights_key("r", 1)) == len(keys.weights_key("r", 999_999))
    assert len(keys.batch_key("r", 1, 0, 0)) == len(keys.batch_key("r", 1, 99_999, 39))


def test_a_csv_stand_in_names_the_label_column() -> None:
    # Given a CSV dataset in S3 with a named label column
    config = _config(dataset={"source": "s3://b/d.csv", "label": "digit"})

    # When / Then the stand-in has it last, and Initialize reads it
    data = dryrun.stand_in(config, 100, 5)
    assert io.BytesIO(data).readline().decode().strip().endswith(",digit")
    X, y = read_dataset(data, "d.csv", "digit")
    assert len(np.unique(y)) == 10 and X.shape == (dryrun._examples_for(config, 100), 5)
    split = split_blocks((len(X),), config.block_rows, config.dataset.validation_fraction, 0)
    assert split.n_train >= 100
