"""Optimizers: each rule against hand-computed steps, state layout, dtype, purity."""

import math

import numpy as np
import pytest

from trainer.nn import OPTIMIZERS, OptimizerSpec, apply_update, init_state


def _params(dtype: type = np.float64) -> dict[str, np.ndarray]:
    return {"W": np.array([[1.0, -1.0]], dtype=dtype), "b": np.array([0.5], dtype=dtype)}


def test_optimizers_lists_every_name() -> None:
    # Given / When / Then
    assert OPTIMIZERS == ("sgd", "momentum", "adam")


@pytest.mark.parametrize(
    ("name", "keys"),
    [("sgd", []), ("momentum", ["v_W", "v_b"]), ("adam", ["m_W", "m_b", "v_W", "v_b"])],
)
def test_init_state_is_zeros_shaped_and_typed_like_the_params(name: str, keys: list[str]) -> None:
    # Given
    params = _params(np.float32)

    # When
    state = init_state(OptimizerSpec(name, 0.1), params)

    # Then
    assert list(state) == keys
    for key, value in state.items():
        assert value.shape == params[key[2:]].shape
        assert value.dtype == np.float32
        assert not value.any()


def test_sgd_step_by_hand() -> None:
    # Given
    spec = OptimizerSpec("sgd", learning_rate=0.1)
    params = {"W": np.array([1.0, 2.0]), "b": np.array([0.0])}
    grads = {"W": np.array([0.5, -1.0]), "b": np.array([2.0])}

    # When
    new, state = apply_update(spec, params, grads, {}, step=0)

    # Then p - lr g
    np.testing.assert_allclose(new["W"], [0.95, 2.1], rtol=1e-15)
    np.testing.assert_allclose(new["b"], [-0.2], rtol=1e-15)
    assert state == {}


def test_momentum_two_steps_by_hand() -> None:
    # Given μ = 0.9, lr = 0.1
    spec = OptimizerSpec("momentum", learning_rate=0.1, momentum=0.9)
    params = {"W": np.array([1.0, -1.0])}
    state = init_state(spec, params)

    # When
    p1, s1 = apply_update(spec, params, {"W": np.array([1.0, -2.0])}, state, step=0)
    p2, s2 = apply_update(spec, p1, {"W": np.array([0.5, 0.5])}, s1, step=1)

    # Then v1 = g1 = [1, -2]; p1 = p0 - 0.1 v1; v2 = 0.9 v1 + g2 = [1.4, -1.3]; p2 = p1 - 0.1 v2
    np.testing.assert_allclose(s1["v_W"], [1.0, -2.0], rtol=1e-15)
    np.testing.assert_allclose(p1["W"], [0.9, -0.8], rtol=1e-15)
    np.testing.assert_allclose(s2["v_W"], [1.4, -1.3], rtol=1e-15)
    np.testing.assert_allclose(p2["W"], [0.76, -0.67], rtol=1e-14)


def test_adam_two_steps_by_hand() -> None:
    # Given one scalar parameter p0 = 1, gradients 0.5 then -0.25, lr = 0.01, default betas
    spec = OptimizerSpec("adam", learning_rate=0.01)
    params = {"W": np.array([1.0])}
    state = init_state(spec, params)

    # When
    p1, s1 = apply_update(spec, params, {"W": np.array([0.5])}, state, step=0)
    p2, s2 = apply_update(spec, p1, {"W": np.array([-0.25])}, s1, step=1)

    # Then
    # t=1: m = 0.1·0.5 = 0.05, v = 0.001·0.25 = 0.00025, m̂ = 0.5, v̂ = 0.25
    p1_expected = 1.0 - 0.01 * 0.5 / (0.5 + 1e-8)
    assert s1["m_W"][0] == pytest.approx(0.05, rel=1e-14)
    assert s1["v_W"][0] == pytest.approx(0.00025, rel=1e-14)
    assert p1["W"][0] == pytest.approx(p1_expected, rel=1e-14)
    # t=2: m = 0.9·0.05 - 0.1·0.25 = 0.02, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
    #      m̂ = 0.02 / (1 - 0.9²) = 0.02 / 0.19, v̂ = 0.00031225 / (1 - 0.999²) = .../0.001999
    m_hat, v_hat = 0.02 / 0.19, 0.00031225 / 0.001999
    assert s2["m_W"][0] == pytest.approx(0.02, rel=1e-13)
    assert s2["v_W"][0] == pytest.approx(0.00031225, rel=1e-13)
    assert p2["W"][0] == pytest.approx(
        p1_expected - 0.01 * m_hat / (math.sqrt(v_hat) + 1e-8), rel=1e-13
    )


def test_adam_first_step_moves_each_weight_by_about_lr() -> None:
    # Given gradients of very different magnitudes
    spec = OptimizerSpec("adam", learning_rate=0.001)
    params = {"W": np.zeros(4)}
    grads = {"W": np.array([1e-3, -5.0, 200.0, -0.1])}

    # When
    new, _ = apply_update(spec, params, grads, init_state(spec, params), step=0)

    # Then m̂ = g and v̂ = g², so the step is lr · g / (|g| + ε) ≈ -lr · sign(g)
    np.testing.assert_allclose(new["W"], -0.001 * np.sign(grads["W"]), rtol=1e-5)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
def test_float32_params_stay_float32(name: str, grad_dtype: type) -> None:
    # Given float32 weights (gradients possibly float64)
    spec = OptimizerSpec(name, learning_rate=0.01)
    rng = np.random.default_rng(50)
    params = {"W": rng.standard_normal((3, 2)).astype(np.float32), "b": np.zeros(2, np.float32)}
    state = init_state(spec, params)

    # When three updates are applied
    for step in range(3):
        grads: dict[str, np.ndarray] = {
            k: rng.standard_normal(v.shape).astype(grad_dtype) for k, v in params.items()
        }
        params, state = apply_update(spec, params, grads, state, step)

    # Then
    assert all(v.dtype == np.float32 for v in params.values())
    assert all(v.dtype == np.float32 for v in state.values())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_apply_update_does_not_mutate_its_inputs(name: str) -> None:
    # Given a non-trivial state (after one update)
    spec = OptimizerSpec(name, learning_rate=0.1)
    params = _params()
    grads = {"W": np.array([[0.3, -0.2]]), "b": np.array([1.0])}
    params, state = apply_update(spec, params, grads, init_state(spec, params), 0)
    copies = [{k: v.copy() for k, v in d.items()} for d in (params, grads, state)]

    # When
    new_params, new_state = apply_update(spec, params, grads, state, 1)

    # Then
    for original, copy in zip((params, grads, state), copies, strict=True):
        assert all(np.array_equal(original[k], copy[k]) for k in copy)
    for new, old in ((new_params, params), (new_state, state)):
        assert all(not np.shares_memory(new[k], old[k]) for k in new)
    assert not np.array_equal(new_params["W"], params["W"])


def test_mismatched_keys_and_negative_step_are_errors() -> None:
    # Given
    adam = OptimizerSpec("adam", 0.1)
    params = _params()
    grads = {"W": np.zeros((1, 2)), "b": np.zeros(1)}

    # When / Then
    with pytest.raises(ValueError, match="grads keys"):
        apply_update(adam, params, {"W": grads["W"]}, init_state(adam, params), 0)
    with pytest.raises(ValueError, match="state must have keys"):
        apply_update(adam, params, grads, {}, 0)
    with pytest.raises(ValueError, match="step"):
        apply_update(adam, params, grads, init_state(adam, params), -1)
    with pytest.raises(ValueError, match="shape"):
        bad = {"W": np.zeros((2, 1)), "b": np.zeros(1)}
        apply_update(adam, params, bad, init_state(adam, params), 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "rmsprop", "learning_rate": 0.1}, "unknown optimizer"),
        ({"name": "sgd", "learning_rate": 0.0}, "learning_rate"),
        ({"name": "momentum", "learning_rate": 0.1, "momentum": 1.0}, "momentum"),
        ({"name": "adam", "learning_rate": 0.1, "beta2": -0.1}, "beta2"),
        ({"name": "adam", "learning_rate": 0.1, "epsilon": 0.0}, "epsilon"),
    ],
)
def test_optimizer_spec_validates_its_fields(kwargs: dict[str, object], message: str) -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match=message):
        OptimizerSpec(**kwargs)  # type: ignore[arg-type]


def test_optimizer_spec_is_frozen() -> None:
    # Given
    spec = OptimizerSpec("sgd", 0.1)

    # When / Then
    with pytest.raises(AttributeError):
        spec.learning_rate = 0.2  # type: ignore[misc]
