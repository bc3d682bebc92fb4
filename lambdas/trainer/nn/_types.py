"""Array type aliases shared by the ``trainer.nn`` modules (typing only, no behaviour)."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

#: A floating-point ndarray (float32 in training, float64 in gradient checks).
Array: TypeAlias = npt.NDArray[np.floating[Any]]

#: One dense layer's parameters ``(W, b)``: W of shape (n_in, n_out), b of shape (n_out,).
LayerParams: TypeAlias = tuple[Array, Array]

#: One dense layer's gradients ``(dW, db)``, shaped like :data:`LayerParams`.
LayerGrads: TypeAlias = tuple[Array, Array]
