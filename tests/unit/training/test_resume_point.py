"""Where a stopped run continues (trainer.training.resume)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainer.training.cursor import (
    continuation_name,
    epoch_name,
    is_chunk_name,
    parse_epoch_name,
    resume_name,
    training_attempt,
)
from trainer.training.resume import ResumePoint, last_version, resume_point


@given(st.integers(0, 5_000), st.data())
def test_the_last_complete_version_is_found_in_few_probes(last: int, data: st.DataObject) -> None:
    # Given versions 0..complete written, of at most `last`
    complete = data.draw(st.integers(0, last))
    probes: list[int] = []

    def is_complete(version: int) -> bool:
        probes.append(version)
        return version <= complete

    # When / Then the binary search finds it in about log2(last) probes
    assert last_version(is_complete, last) == complete
    assert len(probes) <= last.bit_length() + 1


def test_a_run_without_version_0_never_started() -> None:
    with pytest.raises(ValueError, match="never started"):
        last_version(lambda version: False, 10)


@given(
    steps=st.integers(1, 50),
    epochs=st.integers(1, 6),
    data=st.data(),
)
def test_a_resume_point_continues_where_the_weights_stand(
    steps: int, epochs: int, data: st.DataObject
) -> None:
    # Given the last complete version and the epochs evaluated by then
    version = data.draw(st.integers(0, epochs * steps))
    done = version // steps
    at_an_epochs_end = version % steps == 0 and done > 0
    evaluated = data.draw(st.sampled_from([done - 1, done])) if at_an_epochs_end else done

    # When
    point = resume_point(version=version, steps=steps, epochs=epochs, evaluated=evaluated)

    # Then the point is a step of an epoch (or the end), its version that step's, never past
    # the stored one, and at most one step is redone
    assert point.version == (point.epoch - 1) * steps + point.step
    assert 0 <= point.step < steps
    assert version - 1 <= point.version <= version
    assert point.epoch == evaluated + 1 or (point.epoch == done and evaluated == done - 1)
    assert 1 <= point.epoch <= epochs + 1


def test_an_epoch_trained_but_not_evaluated_redoes_its_last_step() -> None:
    # Given every step of epoch 2 of 3 applied (10 steps an epoch), epoch 1 evaluated
    point = resume_point(version=20, steps=10, epochs=3, evaluated=1)

    # Then epoch 2's last step runs again (rewriting version 20 unchanged), then its evaluation
    assert point == ResumePoint(epoch=2, step=9, version=19)
    assert resume_point(version=20, steps=10, epochs=3, evaluated=2) == ResumePoint(3, 0, 20)
    assert resume_point(version=30, steps=10, epochs=3, evaluated=3) == ResumePoint(4, 0, 30)


@pytest.mark.parametrize(
    ("version", "evaluated", "problem"),
    [(31, 3, "is not one of"), (25, 0, "do not fit"), (25, 1, "do not fit"), (10, 2, "do not fit")],
)
def test_a_store_that_does_not_fit_the_run_is_refused(
    version: int, evaluated: int, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        resume_point(version=version, steps=10, epochs=3, evaluated=evaluated)


def test_resumed_executions_are_named_for_their_attempt() -> None:
    # Given / When / Then
    assert epoch_name("run", 3) == "run-epoch-003"
    assert epoch_name("run", 3, 2) == "run-epoch-003-r2"
    assert continuation_name("run", 3, 1, 2) == "run-epoch-003-r2-part-01"
    assert parse_epoch_name("run", "run-epoch-003-r2-part-01") == 3
    assert parse_epoch_name("run", "run-epoch-003-r2") == 3
    assert is_chunk_name("run", "run-epoch-003-r2-part-01")
    assert not is_chunk_name("run", "run-epoch-003-r2")
    assert resume_name("run", 2) == "run-resume-2"
    assert [training_attempt("run", n) for n in ("run", "run-resume-2", "run-2", "other")] == [
        0, 2, None, None,
    ]  # fmt: skip
    with pytest.raises(ValueError, match=">= 1"):
        resume_name("run", 0)
