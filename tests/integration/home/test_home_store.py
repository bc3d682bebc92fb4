"""The home store's own guarantees, beyond the contract it shares with DynamoDB + S3
(tests/integration/store and registry run that on both): persistence, expiry, integrity, many
writer processes at once, and writes killed half way."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stepnet.home import Home, open_home
from stepnet.home.lifecycle import (
    INTERRUPTED,
    RunInHomeError,
    check_new_run,
    claim,
    run_state,
)
from trainer.store import ImmutableTensorError, TensorIntegrityError, TensorNotFoundError, keys

BUCKET = "stepnet-data-test"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _home(path: Path, **options: object) -> Home:
    return open_home(path, bucket=BUCKET, **options)  # type: ignore[arg-type]


def _bundle(seed: int, size: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"W": rng.standard_normal((size, size)), "b": rng.standard_normal(size)}


def test_what_one_process_wrote_another_reads_after_it_ended(tmp_path: Path) -> None:
    # Given a home written by one store (a process) and then dropped
    writer = _home(tmp_path)
    writer.runs.create_run("r1", '{"epochs": 2}')
    writer.runs.set_status("r1", "RUNNING")
    writer.tensors.put(keys.weights_key("r1", 3), _bundle(3))
    writer.objects.put_bytes("runs/r1/model/model.json", b"{}")
    del writer
    # When a new store opens the folder
    reader = _home(tmp_path)
    # Then every record, tensor and object is there
    assert reader.runs.list_runs() == ["r1"]
    assert reader.runs.get_status("r1")["status"] == "RUNNING"
    np.testing.assert_array_equal(
        reader.tensors.get(keys.weights_key("r1", 3))["W"], _bundle(3)["W"]
    )
    assert reader.objects.get_bytes(f"s3://{BUCKET}/runs/r1/model/model.json") == b"{}"


def test_scratch_expires_after_the_ttl_and_is_swept(tmp_path: Path) -> None:
    # Given a scratch bundle written with a one-hour TTL
    clock = FakeClock()
    home = _home(tmp_path, clock=clock, scratch_ttl_seconds=3600)
    key = keys.activation_key("r", 1, 0, 1)
    home.tensors.put(key, {"A": np.ones(4)}, immutable=False)
    # When the hour is nearly over, it is there; when it is over, it is not
    clock.now += 3599
    np.testing.assert_array_equal(home.tensors.get(key)["A"], np.ones(4))
    clock.now += 1
    with pytest.raises(TensorNotFoundError, match="expired"):
        home.tensors.get(key)
    # Then a sweep deletes its row and its file
    assert home.sweep() == 1
    assert not any(p.is_file() for p in (tmp_path / "tensors").rglob("*"))


def test_tampered_bytes_fail_the_integrity_check(tmp_path: Path) -> None:
    # Given an immutable bundle whose file was changed behind the store's back
    _home(tmp_path).tensors.put("r/weights/v000001", _bundle(1))
    (path,) = (tmp_path / "tensors").rglob("v000001.*")
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    # When another process reads it, Then the sha256 check refuses it
    with pytest.raises(TensorIntegrityError, match="sha256"):
        _home(tmp_path).tensors.get("r/weights/v000001")


def test_latest_weights_version_is_the_highest_written(tmp_path: Path) -> None:
    # Given weights versions 0, 1 and 12 of a run, and another run's 40
    home = _home(tmp_path)
    assert home.latest_weights_version("r") is None
    for version in (0, 1, 12):
        home.tensors.put(keys.weights_key("r", version), _bundle(version, 2))
    home.tensors.put(keys.weights_key("r2", 40), _bundle(40, 2))
    home.tensors.put(keys.optimizer_key("r", 13), _bundle(13, 2))
    # Then the run's latest is 12, and the latest with its optimizer state too is 1
    home.tensors.put(keys.optimizer_key("r", 1), _bundle(1, 2))
    assert home.latest_weights_version("r") == 12
    assert home.weights_versions("r") == [0, 1, 12]
    assert home.latest_complete_version("r") == 1
    assert home.latest_complete_version("r2") is None


def test_a_run_whose_process_is_gone_is_interrupted_and_not_started_again(tmp_path: Path) -> None:
    # Given a run recorded RUNNING by a process that has ended
    home = _home(tmp_path)
    home.runs.create_run("r", "{}")
    home.runs.set_status("r", "RUNNING")
    child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    child.start()
    child.join()
    home.runs.set_owner("r", child.pid or 0, os.uname().nodename)
    # Then it reads INTERRUPTED, and starting it again is refused with the way out
    assert run_state(home, "r") == INTERRUPTED
    with pytest.raises(RunInHomeError, match="--replace"):
        check_new_run(home, "r")
    # And a run owned by this live process is RUNNING and refused as such
    claim(home, "r")
    assert run_state(home, "r") == "RUNNING"
    with pytest.raises(RunInHomeError, match="is running"):
        check_new_run(home, "r")
    # But not if its pid now belongs to a process started at another time (a pid reused)
    owner = home.runs.owner("r") or {}
    home.runs.set_owner("r", owner["pid"], owner["host"], process_start="1")
    assert run_state(home, "r") == INTERRUPTED


def test_deleting_a_run_forgets_its_records_and_tensors_only(tmp_path: Path) -> None:
    # Given two runs
    home = _home(tmp_path)
    for run in ("a", "b"):
        home.runs.create_run(run, "{}")
        home.tensors.put(keys.weights_key(run, 1), _bundle(1, 2))
    orphan = tmp_path / "tensors" / "a" / "weights" / "v000002.0123"  # a killed writer's
    orphan.write_bytes(b"left behind")
    # When one is deleted
    home.delete_run("a")
    # Then the other is whole and the first can be written again with other content
    assert home.runs.list_runs() == ["b"]
    assert not orphan.exists()
    home.tensors.get(keys.weights_key("b", 1))
    home.tensors.put(keys.weights_key("a", 1), _bundle(2, 2))


# --- many processes -----------------------------------------------------------------------------


def _writer(home: Path, worker: int, rounds: int) -> None:
    store = _home(home)
    for i in range(rounds):
        store.tensors.put(f"shared/weights/v{i:06d}", _bundle(i, 16))  # everyone: same content
        store.tensors.put(f"own/w{worker}/v{i:06d}", _bundle(1000 * worker + i, 16))
        store.tensors.put(f"shared/scratch/mb{i:03d}", _bundle(i, 8), immutable=False)
        store.runs.put_epoch_metrics("r", i, {"train_loss": float(i)})


def test_several_processes_write_the_same_and_different_keys_at_once(tmp_path: Path) -> None:
    # Given a run, and four processes writing the same keys and their own at once
    _home(tmp_path).runs.create_run("r", "{}")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(tmp_path, w, 30)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    # Then every one finished, and every key holds its writer's exact bundle
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    home = _home(tmp_path)
    for i in range(30):
        np.testing.assert_array_equal(
            home.tensors.get(f"shared/weights/v{i:06d}")["W"], _bundle(i, 16)["W"]
        )
        np.testing.assert_array_equal(
            home.tensors.get(f"shared/scratch/mb{i:03d}")["b"], _bundle(i, 8)["b"]
        )
        for w in range(4):
            expected = _bundle(1000 * w + i, 16)["W"]
            np.testing.assert_array_equal(home.tensors.get(f"own/w{w}/v{i:06d}")["W"], expected)
    assert [row["epoch"] for row in home.runs.list_epoch_metrics("r")] == list(range(30))
    # And a different bundle under a shared immutable key is still refused
    with pytest.raises(ImmutableTensorError):
        home.tensors.put("shared/weights/v000000", _bundle(99, 16))


def _write_forever(home: Path, started: Any) -> None:
    store = _home(home)
    i = 0
    while True:
        # large bundles (8 MB) so that a kill often lands inside a write
        store.tensors.put(f"big/weights/v{i:06d}", _bundle(i, 1024))
        store.tensors.put("big/scratch/latest", _bundle(i, 1024), immutable=False)
        started.set()
        i += 1


def test_a_writer_killed_at_any_moment_leaves_no_half_bundle(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    rng = np.random.default_rng(5)
    for _ in range(6):
        # Given a process writing big bundles in a loop, killed (SIGKILL) at a random moment
        started = context.Event()
        process = context.Process(target=_write_forever, args=(tmp_path, started))
        process.start()
        assert started.wait(60)
        time.sleep(float(rng.uniform(0, 0.3)))
        os.kill(process.pid or 0, signal.SIGKILL)
        process.join()
        # Then every bundle the index holds reads back whole, with its digest checked
        home = _home(tmp_path)
        written = home.tensors.versions("big/weights/")
        assert written
        for key in written:
            version = int(key.rpartition("/v")[2])
            np.testing.assert_array_equal(home.tensors.get(key)["b"], _bundle(version, 1024)["b"])
        latest = home.tensors.get("big/scratch/latest")["b"]
        assert any(np.array_equal(latest, _bundle(v, 1024)["b"]) for v in range(len(written) + 1))
