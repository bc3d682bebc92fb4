"""The divergence guard: a non-finite loss, gradient or updated weight stops the run at that step.

Called where the values meet, in one order whatever the mode: Update checks each micro-batch's
loss and gradients, in worker order, before the optimizer applies them, then the new weights
before they are written (the micro-batch handlers only send a non-finite loss as null, since JSON
has no NaN: :func:`travelling_loss`). So the micro-batch named is the first non-finite one in
worker order, the same one ``stepnet reference`` names. Evaluate checks the epoch's losses
(:func:`check_evaluation`) before it records them: finite weights can still overflow on rows the
steps did not see, and the last good version is then the one the previous epoch evaluated.
A failed check raises :class:`DivergenceError`; Lambda reports it with ``errorType``
``"DivergenceError"`` (the exception's class name), which the Steps machine catches by name
(:data:`DIVERGENCE_ERROR`) and the Training machine turns into a failed run whose model is the
last good weights version (``trainer.handlers.fail``, docs/workflow.md).

The error's message names where it happened and the last good version, in one format written by
:meth:`Divergence.message` and read back by :meth:`Divergence.from_cause` (the Training machine
only sees the message, nested in its children's causes).

Pure (numpy only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import numpy as np

from trainer.nn.params import LayerParams

DIVERGENCE_ERROR: Final = "DivergenceError"  # the errorType Lambda reports: the class's name
DIVERGED: Final = "stepnet.Diverged"  # the Error of the Fail states a divergence ends in (ASL)


Stage = Literal["micro-batch", "update", "evaluation"]


@dataclass(frozen=True)
class Divergence:
    """Where a run diverged: ``epoch`` (from 1), ``step`` within the epoch (from 0, as the cursor
    counts; for the evaluation, the epoch's number of steps: after its last), the ``stage`` that
    found it — a ``micro-batch`` (``microbatch``: the worker's index, from 0), the optimizer's
    ``update`` (its new weights) or the epoch's ``evaluation`` (``microbatch`` None for both) —
    what was not finite, and ``last_good_version``, the newest weights version that is kept
    (every version written passed the checks)."""

    epoch: int
    step: int
    microbatch: int | None
    what: str
    last_good_version: int
    stage: Stage = "micro-batch"

    def __post_init__(self) -> None:
        if (self.stage == "micro-batch") != (self.microbatch is not None):
            raise ValueError(f"a micro-batch is named for the micro-batch stage only: {self}")

    def message(self) -> str:
        """The error's message, e.g. ``training diverged at epoch 3, step 12, micro-batch 5:
        loss is not finite; weights version 46 is the last good one``."""
        where = (
            f"micro-batch {self.microbatch}" if self.microbatch is not None else _STAGES[self.stage]
        )
        return (
            f"training diverged at epoch {self.epoch}, step {self.step}, {where}: {self.what}; "
            f"weights version {self.last_good_version} is the last good one"
        )

    def document(self) -> dict[str, Any]:
        """As ``model.json``'s ``diverged`` and the run's status record hold it."""
        return asdict(self)

    @classmethod
    def from_cause(cls, cause: str) -> Divergence | None:
        """The divergence a readable cause (``DivergenceError: training diverged at …``) tells,
        or None if the cause is another error's."""
        found = _MESSAGE.search(cause)
        if found is None or not cause.startswith(f"{DIVERGENCE_ERROR}: "):
            return None
        microbatch = found["microbatch"]
        stage: Stage = "micro-batch"
        if microbatch is None:
            stage = next(s for s, text in _STAGES.items() if text == found["stage"])
        return cls(
            epoch=int(found["epoch"]),
            step=int(found["step"]),
            microbatch=None if microbatch is None else int(microbatch),
            what=found["what"],
            last_good_version=int(found["version"]),
            stage=stage,
        )


_STAGES: Final[dict[Stage, str]] = {"update": "the update", "evaluation": "the evaluation"}
_MESSAGE: Final = re.compile(
    r"training diverged at epoch (?P<epoch>\d+), step (?P<step>\d+), "
    r"(?:micro-batch (?P<microbatch>\d+)|(?P<stage>the update|the evaluation)): (?P<what>.*); "
    r"weights version (?P<version>\d+) is the last good one",
    flags=re.DOTALL,
)


class DivergenceError(Exception):
    """A loss, gradient or weight of the run is NaN or infinite (:class:`Divergence` says where).
    Not transient: the workflow does not retry it."""

    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.message())
        self.divergence = divergence


def _not_finite(name: str, values: np.ndarray) -> str | None:
    """``"dW2 has 3 non-finite values (first: nan)"`` or None if every value is finite."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    first = values[bad].flat[0]
    return f"{name} has {int(bad.sum())} non-finite values (first: {float(first)})"


def travelling_loss(loss: float) -> float | None:
    """A micro-batch's loss as it travels in the workflow's JSON state: None (``null``) when it
    is NaN or infinite, which JSON cannot hold; :func:`check_finite` reads None as not finite."""
    return loss if math.isfinite(loss) else None


def check_finite(
    loss: float | None,
    gradients: Sequence[LayerParams],
    *,
    epoch: int,
    step: int,
    microbatch: int,
    version: int,
) -> None:
    """Raise :class:`DivergenceError` if one micro-batch's ``loss`` (a scalar; None: a loss that
    travelled as null, :func:`travelling_loss`) or any of its ``gradients`` is NaN or ±inf.

    ``gradients[l-1] = (dW_l, db_l)``, shapes ``(n_{l-1}, n_l)`` and ``(n_l,)``, layers from 1
    (any shapes are accepted). ``version`` is the
    weights version the step started from: the last good one named in the error. The loss is
    checked first, then the layers in order; the first non-finite one is named.
    """
    found: str | None = None
    if loss is None or not math.isfinite(loss):
        found = "loss is not finite"
    for layer, (dW, db) in enumerate(gradients, start=1):
        if found is not None:
            break
        found = _not_finite(f"dW{layer}", np.asarray(dW)) or _not_finite(
            f"db{layer}", np.asarray(db)
        )
    if found is not None:
        raise DivergenceError(Divergence(epoch, step, microbatch, found, version))


def check_weights(params: Sequence[LayerParams], *, epoch: int, step: int, version: int) -> None:
    """Raise :class:`DivergenceError` if the weights an update made from finite gradients
    overflowed: ``params[l-1] = (W_l, b_l)``, shapes ``(n_{l-1}, n_l)`` and ``(n_l,)``.
    ``version`` is the version the update started from (the last good one); the error names
    the step and the update, no micro-batch."""
    for layer, (W, b) in enumerate(params, start=1):
        found = _not_finite(f"W{layer}", np.asarray(W)) or _not_finite(f"b{layer}", np.asarray(b))
        if found is not None:
            raise DivergenceError(
                Divergence(epoch, step, None, f"updated {found}", version, stage="update")
            )


def check_evaluation(
    train_loss: float, val_loss: float, *, epoch: int, steps: int, version: int
) -> None:
    """Raise :class:`DivergenceError` if an epoch's evaluated losses (scalars) are not finite:
    its final weights overflow on some rows. ``steps``: the epoch's steps (the error names the
    step after its last); ``version``: the version the previous epoch evaluated (0 before the
    first), the last good one."""
    bad = [name for name, loss in (("train", train_loss), ("validation", val_loss))
           if not math.isfinite(loss)]  # fmt: skip
    if bad:
        what = f"{' and '.join(bad)} loss not finite"
        raise DivergenceError(Divergence(epoch, steps, None, what, version, stage="evaluation"))
