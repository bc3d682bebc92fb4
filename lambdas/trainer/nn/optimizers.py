"""Parameter update rules: SGD, momentum and Adam, as pure functions over dicts of arrays.

One layer's parameters are a dict such as ``{"W": W, "b": b}`` and its gradients a dict with
the same keys (``grads["W"] = dLdW`` including any L2 term). The optimizer state is another
``dict[str, ndarray]`` (so it can be stored like the weights):

* sgd:      ``{}``;                             ``p ← p - lr g``
* momentum: ``{"v_W", "v_b"}``;                 ``v ← μ v + g``;  ``p ← p - lr v``
* adam:     ``{"m_W", "m_b", "v_W", "v_b"}``;   with ``t = step + 1``,
  ``m ← β1 m + (1-β1) g``, ``v ← β2 v + (1-β2) g²``,
  ``m̂ = m / (1-β1^t)``, ``v̂ = v / (1-β2^t)``, ``p ← p - lr m̂ / (sqrt(v̂) + ε)``.

All arithmetic runs in each parameter's dtype: gradients, state and the Python-float
hyper-parameters are cast to it, so float32 weights stay float32. Inputs are never mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from trainer.nn._types import Array

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer and its hyper-parameters (only those of ``name`` are used).

    Attributes:
        name: one of :data:`OPTIMIZERS`.
        learning_rate: lr > 0.
        momentum: μ in [0, 1) (momentum only).
        beta1: β1 in [0, 1) (adam only).
        beta2: β2 in [0, 1) (adam only).
        epsilon: ε > 0 (adam only).
    """

    name: str
    learning_rate: float
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.name!r}; expected one of {OPTIMIZERS}")
        if not self.learning_rate > 0.0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate}")
        for field in ("momentum", "beta1", "beta2"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{field} must be in [0, 1); got {value}")
        if not self.epsilon > 0.0:
            raise ValueError(f"epsilon must be > 0; got {self.epsilon}")


def _state_keys(spec: OptimizerSpec, names: list[str]) -> list[str]:
    if spec.name == "momentum":
        return [f"v_{n}" for n in names]
    if spec.name == "adam":
        return [f"m_{n}" for n in names] + [f"v_{n}" for n in names]
    return []


def init_state(spec: OptimizerSpec, params: Mapping[str, Array]) -> dict[str, Array]:
    """Fresh optimizer state for one layer: zeros shaped and typed like each parameter.

    Args:
        spec: the optimizer.
        params: e.g. ``{"W": W, "b": b}``.

    Returns:
        sgd ``{}``; momentum ``{"v_W": 0, "v_b": 0}``; adam ``{"m_W", "m_b", "v_W", "v_b"}``
        all zeros (keys are ``"m_"`` / ``"v_"`` + the parameter's name).
    """
    return {key: np.zeros_like(params[key[2:]]) for key in _state_keys(spec, list(params))}


def apply_update(
    spec: OptimizerSpec,
    params: Mapping[str, Array],
    grads: Mapping[str, Array],
    state: Mapping[str, Array],
    step: int,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """One optimizer step for one layer; returns new dicts and leaves the inputs untouched.

    Args:
        spec: the optimizer.
        params: e.g. ``{"W": W, "b": b}``, W of shape (n_in, n_out), b of shape (n_out,).
        grads: the same keys and shapes as ``params`` (``dLdW``, ``dLdb``).
        state: as returned by :func:`init_state` or by the previous :func:`apply_update`.
        step: number of updates already applied to these parameters (0 for the first one);
            Adam's bias correction uses ``t = step + 1``.

    Returns:
        ``(new_params, new_state)``, every array in its parameter's dtype.

    Raises:
        ValueError: missing or extra gradient / state keys, mismatched shapes, or step < 0.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0; got {step}")
    names = list(params)
    if set(grads) != set(names):
        raise ValueError(f"grads keys {sorted(grads)} must match params keys {sorted(names)}")
    expected = _state_keys(spec, names)
    if set(state) != set(expected):
        raise ValueError(f"{spec.name} state must have keys {expected}; got {sorted(state)}")

    new_params: dict[str, Array] = {}
    new_state: dict[str, Array] = {}
    for name in names:
        p = params[name]
        dtype = p.dtype
        g = np.asarray(grads[name], dtype=dtype)
        if g.shape != p.shape:
            raise ValueError(f"grads[{name!r}] has shape {g.shape}, params has {p.shape}")
        lr = dtype.type(spec.learning_rate)
        if spec.name == "sgd":
            new_params[name] = p - lr * g
        elif spec.name == "momentum":
            v = dtype.type(spec.momentum) * np.asarray(state[f"v_{name}"], dtype=dtype) + g
            new_state[f"v_{name}"] = v
            new_params[name] = p - lr * v
        else:
            t = step + 1
            b1, b2 = dtype.type(spec.beta1), dtype.type(spec.beta2)
            one_minus_b1, one_minus_b2 = dtype.type(1.0 - spec.beta1), dtype.type(1.0 - spec.beta2)
            m_old = np.asarray(state[f"m_{name}"], dtype=dtype)
            v_old = np.asarray(state[f"v_{name}"], dtype=dtype)
            m = b1 * m_old + one_minus_b1 * g
            v = b2 * v_old + one_minus_b2 * (g * g)
            m_hat = m / dtype.type(1.0 - spec.beta1**t)
            v_hat = v / dtype.type(1.0 - spec.beta2**t)
            new_state[f"m_{name}"] = m
            new_state[f"v_{name}"] = v
            new_params[name] = p - lr * m_hat / (np.sqrt(v_hat) + dtype.type(spec.epsilon))
    # Keep the init_state key order (m_* before v_*), independent of the loop order above.
    return new_params, {key: new_state[key] for key in expected}
