"""A network's parameters, one spelling: a list of :class:`LayerParams` ``(W, b)``.

Bundles in the store and ``model.npz`` name the arrays: per layer ``{"W", "b"}``
(:meth:`LayerParams.as_dict`), or a whole network flattened as ``W1, b1, W2, b2, …``
(:func:`flatten`; gradients with the prefix ``d``: ``dW1, db1, …``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from trainer.nn._types import Array


class LayerParams(NamedTuple):
    """One dense layer: ``W`` of shape (n_in, n_out), ``b`` of shape (n_out,). Gradients use
    the same type (``dW``, ``db`` in the same slots)."""

    W: Array
    b: Array

    def as_dict(self, prefix: str = "") -> dict[str, Array]:
        """``{"W": W, "b": b}`` (``{"dW": …, "db": …}`` with ``prefix="d"``)."""
        return {f"{prefix}W": self.W, f"{prefix}b": self.b}

    @classmethod
    def from_dict(cls, bundle: Mapping[str, Array], prefix: str = "") -> LayerParams:
        return cls(bundle[f"{prefix}W"], bundle[f"{prefix}b"])


def flatten(layers: Sequence[tuple[Array, Array]], prefix: str = "") -> dict[str, Array]:
    """``{f"{prefix}W1": W_1, f"{prefix}b1": b_1, …}``, layers numbered from 1."""
    bundle: dict[str, Array] = {}
    for index, (W, b) in enumerate(layers, start=1):
        bundle[f"{prefix}W{index}"] = W
        bundle[f"{prefix}b{index}"] = b
    return bundle


def unflatten(bundle: Mapping[str, Array], layers: int, prefix: str = "") -> list[LayerParams]:
    """The inverse of :func:`flatten` for a network of ``layers`` layers."""
    return [
        LayerParams(bundle[f"{prefix}W{index}"], bundle[f"{prefix}b{index}"])
        for index in range(1, layers + 1)
    ]
