"""The divergence guard's pure checks: every non-finite loss, gradient or updated weight is found
and named where it is; finite values pass; the error's message reads back into where it
happened."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trainer.nn.params import LayerParams
from trainer.store.runs import MAX_CAUSE_CHARS, trimmed_cause
from trainer.training.divergence import (
    DIVERGENCE_ERROR,
    Divergence,
    DivergenceError,
    Stage,
    check_evaluation,
    check_finite,
    check_weights,
    travelling_loss,
)

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=32)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
WHERE = {"epoch": 3, "step": 12, "microbatch": 5, "version": 46}


def _layers(shapes: list[tuple[int, int]]) -> st.SearchStrategy[list[LayerParams]]:
    return st.tuples(
        *(
            st.builds(
                LayerParams,
                arrays(np.float32, (n_in, n_out), elements=FINITE),
                arrays(np.float32, (n_out,), elements=FINITE),
            )
            for n_in, n_out in shapes
        )
    ).map(list)


SHAPES = st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=3).flatmap(
    _layers
)


@given(loss=FINITE, gradients=SHAPES)
def test_finite_losses_and_gradients_pass(loss: float, gradients: list[LayerParams]) -> None:
    # Given finite values / When / Then nothing is raised
    check_finite(loss, gradients, **WHERE)
    check_weights(gradients, epoch=1, step=0, version=0)


@given(gradients=SHAPES, bad=NON_FINITE, data=st.data())
def test_one_non_finite_gradient_is_named_with_its_layer_and_the_step(
    gradients: list[LayerParams], bad: float, data: st.DataObject
) -> None:
    # Given finite gradients but one value of one array
    layer = data.draw(st.integers(0, len(gradients) - 1))
    slot = data.draw(st.sampled_from(["W", "b"]))
    array = np.array(getattr(gradients[layer], slot))
    index = data.draw(st.integers(0, array.size - 1))
    array.flat[index] = bad
    gradients[layer] = gradients[layer]._replace(**{slot: array})

    # When
    with pytest.raises(DivergenceError) as raised:
        check_finite(1.0, gradients, **WHERE)

    # Then it names the array, the epoch, step and micro-batch, and the last good version
    divergence = raised.value.divergence
    assert divergence == Divergence(
        epoch=3,
        step=12,
        microbatch=5,
        what=f"d{slot}{layer + 1} has 1 non-finite values (first: {bad})",
        last_good_version=46,
    )
    assert str(raised.value) == (
        f"training diverged at epoch 3, step 12, micro-batch 5: d{slot}{layer + 1} has 1 "
        f"non-finite values (first: {bad}); weights version 46 is the last good one"
    )


@given(loss=NON_FINITE)
def test_a_non_finite_loss_is_found_before_the_gradients_and_so_is_a_null_one(loss: float) -> None:
    # Given a non-finite loss (as computed, and as it travels in JSON: null) and bad gradients
    gradients = [LayerParams(np.full((2, 2), np.nan), np.zeros(2))]

    # When / Then
    for travelled in (loss, travelling_loss(loss)):
        with pytest.raises(DivergenceError, match="micro-batch 5: loss is not finite"):
            check_finite(travelled, gradients, **WHERE)
    assert travelling_loss(loss) is None
    assert travelling_loss(0.25) == 0.25


def test_weights_an_update_overflowed_name_the_step_and_no_micro_batch() -> None:
    # Given weights with an infinity in the second layer's bias
    params = [
        LayerParams(np.ones((3, 2)), np.zeros(2)),
        LayerParams(np.ones((2, 1)), np.array([np.inf])),
    ]

    # When
    with pytest.raises(DivergenceError) as raised:
        check_weights(params, epoch=2, step=0, version=5)

    # Then
    assert raised.value.divergence.microbatch is None
    assert str(raised.value) == (
        "training diverged at epoch 2, step 0, the update: updated b2 has 1 non-finite values "
        "(first: inf); weights version 5 is the last good one"
    )


@pytest.mark.parametrize(
    ("train_loss", "val_loss", "what"),
    [
        (0.5, math.inf, "validation loss not finite"),
        (math.nan, 0.5, "train loss not finite"),
        (math.nan, -math.inf, "train and validation loss not finite"),
    ],
)
def test_an_evaluation_that_is_not_finite_keeps_the_previous_epochs_version(
    train_loss: float, val_loss: float, what: str
) -> None:
    # Given / When
    with pytest.raises(DivergenceError) as raised:
        check_evaluation(train_loss, val_loss, epoch=4, steps=12, version=36)

    # Then
    assert raised.value.divergence == Divergence(4, 12, None, what, 36, stage="evaluation")
    assert str(raised.value) == (
        f"training diverged at epoch 4, step 12, the evaluation: {what}; weights version 36 is "
        "the last good one"
    )
    check_evaluation(0.5, 0.25, epoch=4, steps=12, version=36)  # finite: nothing raised


@given(
    epoch=st.integers(1, 9_999),
    step=st.integers(0, 10**6),
    where=st.integers(0, 40) | st.sampled_from(["update", "evaluation"]),
    version=st.integers(0, 10**9),
    what=st.text(min_size=1, max_size=80),
)
def test_a_divergence_reads_back_from_its_readable_cause(
    epoch: int, step: int, where: int | Stage, version: int, what: str
) -> None:
    # Given a divergence, as the Training machine sees it (Lambda's errorType: the class name)
    if isinstance(where, int):
        divergence = Divergence(epoch, step, where, what, version)
    else:
        divergence = Divergence(epoch, step, None, what, version, stage=where)
    cause = f"{DivergenceError.__name__}: {DivergenceError(divergence)}"

    # When / Then
    assert DivergenceError.__name__ == DIVERGENCE_ERROR
    assert Divergence.from_cause(cause) == divergence
    assert Divergence.from_cause(f"ValueError: {divergence.message()}") is None
    assert Divergence.from_cause("ValueError: shapes not aligned") is None


@given(cause=st.text(max_size=3 * MAX_CAUSE_CHARS), limit=st.integers(40, 5_000))
def test_a_cause_is_trimmed_to_its_limit_keeping_its_head(cause: str, limit: int) -> None:
    # Given / When
    trimmed = trimmed_cause(cause, limit)

    # Then
    assert len(trimmed) <= limit
    if len(cause) <= limit:
        assert trimmed == cause
    else:
        head = trimmed.split("… (")[0]
        assert cause.startswith(head)
        assert trimmed.endswith(f"({len(cause) - len(head)} more characters)")
