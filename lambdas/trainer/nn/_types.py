"""Array type aliases shared by the ``trainer.nn`` modules (typing only, no behaviour)."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

#: A floating-point ndarray (float32 in training, float64 in gradient checks).
Array: TypeAlias = npt.NDArray[np.floating[Any]]

#: One dense layer's parameters ``(W, b)`` or gradients ``(dW, db)`` as plain tuples; the named
#: form is :class:`trainer.nn.params.LayerParams`, which is such a tuple.
LayerTuple: TypeAlias = tuple[Array, Array]
