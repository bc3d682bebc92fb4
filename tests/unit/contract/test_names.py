"""The shared names module: every state machine has its file."""

from pathlib import Path

from trainer.contract import names

STATEMACHINE_DIR = Path(__file__).resolve().parents[3] / "statemachine"


def test_every_state_machine_file_exists() -> None:
    for file_name in names.STATE_MACHINES.values():
        assert (STATEMACHINE_DIR / file_name).is_file()
