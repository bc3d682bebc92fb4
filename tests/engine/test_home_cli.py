"""``stepnet local`` keeps its runs in the home by default; ``stepnet runs`` and ``stepnet show``
read them after the process ended; running a finished run's command again reports it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stepnet.cli import main
from stepnet.home import home_dir, open_home
from tests.engine.conftest import digits_config, load_weights

pytestmark = pytest.mark.engine


def _config(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(digits_config(run_id="kept", epochs=2, mode="fused", **changes)))
    return path


def test_a_local_run_stays_inspectable_and_its_command_can_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run trained with `stepnet local` (its home: $STEPNET_HOME, tests/conftest.py)
    config, out = _config(tmp_path), tmp_path / "out"
    assert main(["local", str(config), "--out", str(out)]) == 0
    trained = load_weights(out / "model.npz")
    capsys.readouterr()

    # When the home is listed, Then the run is there, finished, with its last metrics
    assert main(["runs"]) == 0
    listed = capsys.readouterr().out
    assert "kept" in listed and "SUCCEEDED" in listed and "2/2" in listed

    # When it is shown, Then its status, dataset, epochs, weights and model are named
    assert main(["show", "kept"]) == 0
    shown = capsys.readouterr().out
    for expected in ("SUCCEEDED", "builtin:digits", "1437 training", "epochs done", "2/2"):
        assert expected in shown
    home = open_home(home_dir())
    version = home.latest_weights_version("kept")
    assert version is not None and f"version {version}" in shown

    # When the same command runs again, Then it reports the finished run and writes its model
    (out / "model.npz").unlink()
    assert main(["local", str(config), "--out", str(out)]) == 0
    assert "finished already" in capsys.readouterr().out
    assert load_weights(out / "model.npz").keys() == trained.keys()

    # When it runs with --replace, Then it trains again, to the same weights
    assert main(["local", str(config), "--out", str(out), "--replace"]) == 0
    again = load_weights(out / "model.npz")
    assert all((again[name] == trained[name]).all() for name in trained)


def test_an_unknown_run_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # When / Then: one line naming the run, exit 2
    assert main(["show", "nothing-here"]) == 2
    assert "'nothing-here' does not exist" in capsys.readouterr().out


def test_an_interrupted_run_is_not_started_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a run recorded RUNNING whose process is gone (killed)
    home = open_home(home_dir())
    home.runs.create_run("kept", json.dumps(digits_config(run_id="kept")))
    home.runs.set_status("kept", "RUNNING")
    home.runs.set_owner("kept", _dead_pid(), os.uname().nodename)

    # When its command runs again, Then it is refused, naming its state and the way out
    assert main(["local", str(_config(tmp_path)), "--out", str(tmp_path / "out")]) == 2
    refusal = capsys.readouterr().out
    assert "INTERRUPTED" in refusal and "--replace" in refusal
    assert main(["runs"]) == 0
    assert "INTERRUPTED" in capsys.readouterr().out


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_the_emulated_store_keeps_nothing(tmp_path: Path) -> None:
    # Given a run on the emulated store
    config = tmp_path / "config.json"
    config.write_text(json.dumps(digits_config(run_id="gone", epochs=1, mode="fused")))
    assert main(["local", str(config), "--out", str(tmp_path / "out"), "--store", "emulated"]) == 0
    # Then the home holds nothing of it
    assert not home_dir().exists() or "gone" not in open_home(home_dir()).runs.list_runs()


def test_a_sandbox_opens_the_home_itself_and_loads_nothing_of_moto(tmp_path: Path) -> None:
    # Given an account whose store is a home, and a function configured as the stack's are
    from stepnet.engine import LocalAccount
    from trainer.contract import names

    with LocalAccount(home=tmp_path / "home") as account:
        forward = account.runtime.configuration(names.function_name(account.stack_name, "Forward"))
        account.runtime.register(
            "probe", "tests.engine.sandbox_handlers.store_of", memory_mb=512, timeout_s=30,
            environment=forward.environment,
        )  # fmt: skip

        # When it runs in a sandbox
        payload, error = account.runtime.invoke("probe", {})

    # Then its store is the home, opened in the sandbox, and moto was never imported there
    assert error is None, payload
    assert payload == {"store": "stepnet.home.Home", "moto_loaded": []}
