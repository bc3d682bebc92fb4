"""The single-process reference trainer: the pipeline's schedule and math, in one process, no AWS.

``stepnet reference CONFIG --out DIR`` runs it. It calls the very functions the handlers call
(``trainer.data`` for the shards, the split, the statistics and the rows; ``trainer.training``
for the schedule, the steps and the evaluation; ``trainer.nn``), on the dataset as
``stepnet start``/``local`` would upload it (a large single file cut into the same shards), so
the pipeline's weights and metrics must equal its own step for step; tests assert it.

Like the functions, it never holds the dataset when it need not: shards that can be read in
place (uncompressed ``.npz``) are read by byte ranges of the local files; only a shard that has
to be converted (a CSV, a compressed ``.npz``, a single file's shuffled rows) is held in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from stepnet import sources
from trainer.config import RunConfig
from trainer.data.blocks import Split, block_segments, split_blocks
from trainer.data.dataset import (
    Dataset,
    PreparedShard,
    ShardInfo,
    shard_classes,
    shard_moments,
)
from trainer.data.dataset import prepare_dataset as merge_prepared_shards
from trainer.data.prepare import PreparedData
from trainer.data.rows import ArrayShard, Fetch, RangeShard, ShardAccess, read_segments
from trainer.data.shards import (
    DEFAULT_SHARD_MB,
    CheckedShard,
    Schema,
    check_schemas,
    check_shard,
)
from trainer.nn import microbatch_gradients
from trainer.training import exports
from trainer.training.divergence import (
    Divergence,
    DivergenceError,
    check_evaluation,
    check_finite,
    check_weights,
)
from trainer.training.schedule import microbatch_segments, step_layout
from trainer.training.step import (
    Params,
    activations,
    apply_step,
    epoch_evaluation,
    evaluate_shard,
    initial_state,
    step_loss_sum,
)

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainedModel:
    """What a training produced: final weights, the model document and per-epoch metrics;
    ``diverged`` when the divergence guard stopped it (the weights are then the last good ones,
    ``version`` theirs, as the workflow exports them)."""

    params: Params
    model: dict[str, Any]
    metrics: list[dict[str, Any]]
    version: int
    diverged: Divergence | None = None


@dataclass(frozen=True, eq=False)
class LocalDataset:
    """A run's dataset prepared in this process: the same :class:`Dataset` and split as the
    pipeline's, and a way to read each shard's rows."""

    config: RunConfig
    dataset: Dataset
    split: Split
    shards: list[ShardAccess]

    def rows(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """Every row of ``part`` ("train" or "val"), in the split's block order, standardized
        (``X``, ``Y``): for in-memory baselines and tests, on datasets that fit in memory."""
        segments = block_segments(self.split.blocks, self.split.part(part))
        X, y = read_segments(self.shards, segments)
        X_std, Y = self.dataset.batch(X, y, self.config.model.layers[-1].units)
        return X_std, Y

    @cached_property
    def prepared(self) -> PreparedData:
        X_train, Y_train = self.rows("train")
        X_val, Y_val = self.rows("val")
        return PreparedData(
            X_train=X_train,
            Y_train=Y_train,
            X_val=X_val,
            Y_val=Y_val,
            mean=self.dataset.mean,
            std=self.dataset.std,
            classes=self.dataset.classes,
        )


def _file_fetch(path: Path) -> Fetch:
    def fetch(start: int, stop: int) -> bytes:
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read(stop - start)

    return fetch


def prepare_dataset(
    config: RunConfig, base: Path = Path(), shard_mb: int = DEFAULT_SHARD_MB
) -> LocalDataset:
    """Check and prepare the config's dataset (builtin, a local file or a local folder of
    shards) as the pipeline's CheckShards, PrepareShards and Start do, shard by shard."""
    units = config.model.layers[-1].units
    named: list[tuple[str, Schema]] = []
    accesses: list[ShardAccess] = []
    infos: list[ShardInfo] = []
    classes: list[np.ndarray | None] = []

    def add(access: ShardAccess, info: ShardInfo, y: np.ndarray) -> None:
        accesses.append(access)
        infos.append(info)
        classes.append(shard_classes(y) if config.is_classification else None)

    def check(data: bytes, name: str) -> CheckedShard:
        return check_shard(
            data, name, label=config.dataset.label,
            classification=config.is_classification, n_outputs=units,
        )  # fmt: skip

    folder = sources.local_shards(config.dataset.source, base)
    if folder is None:  # one file: shuffled once and cut as `stepnet start` uploads it
        data, name = sources.read_local(config.dataset.source, base)
        checked = check(data, name)
        named.append((name, checked.schema))
        for index, (X, y) in enumerate(
            sources.file_shards(checked.X, checked.y, len(data), shard_mb)
        ):
            add(ArrayShard(X, y), ShardInfo(f"{name}#{index}", len(X), 0, 0), y)
    else:
        for path in folder:
            checked = check(path.read_bytes(), str(path))
            named.append((str(path), checked.schema))
            rows = int(checked.X.shape[0])
            if checked.layout is None:  # converted in memory, as PrepareShards converts it
                access: ShardAccess = ArrayShard(np.array(checked.X), np.array(checked.y))
                info = ShardInfo(str(path), rows, 0, 0)
            else:
                x_array, y_array = checked.layout
                schema = checked.schema
                access = RangeShard(
                    fetch=_file_fetch(path), x_offset=x_array.offset, y_offset=y_array.offset,
                    n_features=schema.n_features, x_dtype=schema.x_dtype,
                    y_dtype=schema.y_dtype, y_columns=schema.y_columns,
                )  # fmt: skip
                info = ShardInfo(str(path), rows, x_array.offset, y_array.offset)
            add(access, info, checked.y)
    schema = check_schemas(named)
    rows_per_shard = tuple(info.rows for info in infos)
    split = split_blocks(
        rows_per_shard, config.block_rows, config.dataset.validation_fraction, config.seed
    )
    prepared = [
        PreparedShard(
            shard=info,
            moments=shard_moments(access, split, index, schema.n_features),
            classes=found,
        )
        for index, (info, access, found) in enumerate(zip(infos, accesses, classes, strict=True))
    ]
    dataset, split = merge_prepared_shards(config, schema, prepared)
    return LocalDataset(config=config, dataset=dataset, split=split, shards=accesses)


def train(
    config: RunConfig,
    data: LocalDataset | None = None,
    on_epoch: EpochCallback | None = None,
    epochs: int | None = None,
) -> TrainedModel:
    """Train ``config`` on the pipeline's schedule; ``epochs`` may stop early."""
    data = data if data is not None else prepare_dataset(config)
    dataset, split, shards = data.dataset, data.split, data.shards
    n_outputs = config.model.layers[-1].units
    params, states = initial_state(config, dataset.n_features)
    acts = activations(config)
    layout = step_layout(split.n_train, config.batch_size, config.workers)
    version = 0
    metrics: list[dict[str, Any]] = []
    diverged: Divergence | None = None
    try:
        for epoch in range(1, (epochs or config.epochs) + 1):
            loss_sum = 0.0
            evaluated, evaluated_version = params, version  # the previous epoch's
            for step, slices in enumerate(layout.steps):
                per_worker, sizes, losses = [], [], []
                for microbatch, (start, stop) in enumerate(slices):
                    segments = microbatch_segments(
                        split, config.seed, epoch, layout, step, microbatch
                    )
                    X, Y = dataset.batch(*read_segments(shards, segments), n_outputs)
                    loss, grads = microbatch_gradients(params, acts, config.loss, X, Y)
                    # the divergence guard, in Update's order: each micro-batch's loss and
                    # gradients in worker order, then the updated weights
                    check_finite(
                        loss, grads, epoch=epoch, step=step, microbatch=microbatch, version=version
                    )
                    per_worker.append(grads)
                    sizes.append(stop - start)
                    losses.append(loss)
                updated, states = apply_step(config, params, states, per_worker, sizes, version)
                check_weights(updated, epoch=epoch, step=step, version=version)
                params = updated
                loss_sum = step_loss_sum(loss_sum, losses, sizes)
                version += 1
            evaluations = [
                evaluate_shard(config, dataset, shards[s], split, s, params)
                for s in range(len(shards))
            ]
            train_loss, val_loss, val_accuracy = epoch_evaluation(
                config, evaluations, split, loss_sum
            )
            try:
                check_evaluation(
                    train_loss, val_loss, epoch=epoch, steps=version - evaluated_version,
                    version=evaluated_version,
                )  # fmt: skip
            except DivergenceError:  # the model is the version the previous epoch evaluated
                params, version = evaluated, evaluated_version
                raise
            row = exports.epoch_metrics(epoch, train_loss, val_loss, val_accuracy)
            metrics.append(row)
            if on_epoch is not None:
                on_epoch(row)
    except DivergenceError as error:  # stop there: the last good weights are the model
        diverged = error.divergence
    model = exports.model_document(
        config,
        mean=dataset.mean.tolist(),  # (d,) float64 as Python floats: the same JSON numbers
        std=dataset.std.tolist(),
        classes=dataset.classes,
        version=version,
        diverged=None if diverged is None else diverged.document(),
    )
    return TrainedModel(
        params=params, model=model, metrics=metrics, version=version, diverged=diverged
    )


def write_outputs(out_dir: Path, trained: TrainedModel, run_id: str) -> None:
    """``model.npz``, ``model.json`` and ``metrics.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / exports.MODEL_NPZ).write_bytes(exports.model_npz_bytes(trained.params))
    (out_dir / exports.MODEL_JSON).write_bytes(exports.json_bytes(trained.model))
    document = exports.metrics_document(run_id, trained.metrics)
    (out_dir / exports.METRICS_JSON).write_bytes(exports.json_bytes(document))
