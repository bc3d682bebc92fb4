"""The shared names module is complete: every handler is sized, every machine has its file."""

from pathlib import Path

from trainer.contract import names

STATEMACHINE_DIR = Path(__file__).resolve().parents[3] / "statemachine"
HANDLERS_DIR = Path(__file__).resolve().parents[3] / "lambdas" / "trainer" / "handlers"


def test_every_handler_has_a_size_and_a_module() -> None:
    # Given / When
    sized = set(names.FUNCTION_SIZES)
    modules = {path.stem for path in HANDLERS_DIR.glob("[!_]*.py")}

    # Then
    assert sized == set(names.HANDLERS)
    assert {path.split(".")[2] for path in names.HANDLERS.values()} == modules
    for memory_mb, timeout_s in names.FUNCTION_SIZES.values():
        assert 128 <= memory_mb <= 10_240 and 1 <= timeout_s <= 900


def test_every_state_machine_file_exists() -> None:
    for file_name in names.STATE_MACHINES.values():
        assert (STATEMACHINE_DIR / file_name).is_file()
