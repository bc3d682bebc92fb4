"""A `stepnet local` process killed at any moment (SIGKILL to its whole process group: the engine
and its Lambda sandboxes, as a machine losing power) is continued by `stepnet resume` to the
weights an uninterrupted run has. A few kill points here; `python -m bench.kills` sweeps random
ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stepnet.home import HOME_VARIABLE, open_home
from stepnet.home.database import DATABASE_FILE
from stepnet.reference import train
from tests.engine.conftest import digits_config, max_weight_difference
from trainer.config import parse_config

pytestmark = pytest.mark.engine

STEPS = 6  # digits: 1,437 training rows in steps of 64 × 4


def _stepnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "stepnet.cli", *args]


# as soon as the run is recorded (most likely before its dataset is prepared: then the resume
# starts it again); inside epoch 1; inside epoch 2
@pytest.mark.parametrize("after_version", [None, 2, STEPS + 3])
def test_a_killed_local_run_resumes_to_the_references_weights(
    tmp_path: Path, after_version: int | None
) -> None:
    # Given a fused digits run of 2 epochs started by the CLI with a home of its own
    document = digits_config(run_id="killed", epochs=2, workers=4, batch_size=64, mode="fused")
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(document))
    home = tmp_path / "home"
    env = os.environ | {HOME_VARIABLE: str(home)}
    process = subprocess.Popen(
        _stepnet("local", str(config_file), "--out", str(tmp_path / "killed")),
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip

    # When its process group gets SIGKILL once weights version `after_version` is complete (or
    # the run is recorded)
    deadline = time.monotonic() + 300
    store = None
    while True:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the run did not reach the version in 300 s"
        if store is None and (home / DATABASE_FILE).exists():
            store = open_home(home)
        if store is not None and "killed" in store.runs.list_runs():
            if after_version is None:
                break
            if (store.latest_complete_version("killed") or 0) >= after_version:
                break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    # and `stepnet resume` continues it
    resumed = subprocess.run(
        _stepnet("resume", "killed", "--out", str(tmp_path / "resumed")),
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip

    # Then the resumed run finished with the reference's weights, bit for bit
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    with np.load(tmp_path / "resumed" / "model.npz") as model:
        weights = {name: model[name] for name in model.files}
    difference = max_weight_difference(train(parse_config(document)).params, weights)
    assert difference == 0.0, f"max |resumed - reference| = {difference}"
