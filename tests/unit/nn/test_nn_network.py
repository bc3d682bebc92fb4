"""Network composition: whole-network gradients against finite differences, bit-for-bit
agreement of microbatch_gradients with the per-layer pipeline, aggregation, L2, predict."""

import io
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.gradcheck import numerical_gradient, relative_error

from trainer.nn import (
    add_l2,
    aggregate_gradients,
    backward_layer,
    forward_layer,
    init_network,
    l2_penalty,
    loss_value,
    microbatch_gradients,
    output_gradient,
    predict,
)

Params = list[tuple[np.ndarray, np.ndarray]]


def _problem(
    seed: int, sizes: list[int], loss: str, n: int, dtype: type = np.float64
) -> tuple[Params, np.ndarray, np.ndarray]:
    """Random params (non-zero biases), inputs X (n, sizes[0]) and targets Y (n, sizes[-1])."""
    rng = np.random.default_rng(seed)
    params: Params = [
        (W, (0.1 * rng.standard_normal(b.shape)).astype(dtype))
        for W, b in init_network("xavier", sizes, rng, dtype)
    ]
    X: np.ndarray = rng.standard_normal((n, sizes[0])).astype(dtype)
    Y: np.ndarray
    if loss == "cross_entropy":
        Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], size=n)]
    else:
        Y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    return params, X, Y


def _replace(params: Params, layer: int, which: int, value: np.ndarray) -> Params:
    out = list(params)
    W, b = out[layer]
    out[layer] = (value, b) if which == 0 else (W, value)
    return out


@pytest.mark.parametrize(
    ("activations", "loss"),
    [
        (["relu", "tanh", "softmax"], "cross_entropy"),
        (["sigmoid", "relu", "linear"], "mse"),
        (["tanh", "sigmoid", "sigmoid"], "mse"),
        (["linear", "relu", "tanh"], "mse"),
    ],
)
def test_three_layer_gradients_with_l2_match_central_differences(
    activations: list[str], loss: str
) -> None:
    # Given a 3-layer network and the total loss J = data loss + λ/2 Σ ||W||²
    params, X, Y = _problem(60, [4, 5, 4, 3], loss, n=6)
    lam = 0.05

    def total_loss(p: Params) -> float:
        return loss_value(loss, predict(p, activations, X), Y) + l2_penalty([W for W, _ in p], lam)

    # When
    value, grads = microbatch_gradients(params, activations, loss, X, Y)
    grads = add_l2(grads, params, lam)

    # Then the loss is the data loss and every dW, db matches dJ/dW, dJ/db
    assert value == loss_value(loss, predict(params, activations, X), Y)
    for layer, (dW, db) in enumerate(grads):
        for which, analytic in ((0, dW), (1, db)):
            numeric = numerical_gradient(
                lambda v, layer=layer, which=which: total_loss(  # type: ignore[misc]
                    _replace(params, layer, which, v)
                ),
                params[layer][which],
            )
            assert analytic.shape == params[layer][which].shape
            assert relative_error(analytic, numeric) < 1e-7, (layer, which)


def _roundtrip(array: np.ndarray) -> np.ndarray:
    """Serialize and load back, as a tensor passed between two Lambda invocations would be."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    buffer.seek(0)
    loaded: np.ndarray = np.load(buffer, allow_pickle=False)
    return loaded


@pytest.mark.parametrize(
    ("activations", "loss", "sizes"),
    [
        (["relu", "softmax"], "cross_entropy", [64, 32, 10]),
        (["tanh", "relu", "sigmoid", "linear"], "mse", [8, 16, 12, 6, 2]),
    ],
)
def test_microbatch_gradients_equal_the_per_layer_pipeline_bit_for_bit(
    activations: list[str], loss: str, sizes: list[int]
) -> None:
    # Given float32 params and a micro-batch, as the distributed pipeline sees them
    params, X, Y = _problem(61, sizes, loss, n=32, dtype=np.float32)
    L = len(params)

    # When the pipeline runs one function per "invocation", passing tensors through storage
    A = [_roundtrip(X)]
    for (W, b), activation in zip(params, activations, strict=True):
        A.append(_roundtrip(forward_layer(A[-1], _roundtrip(W), _roundtrip(b), activation)))
    pipeline_loss = loss_value(loss, A[-1], Y)
    dZ = _roundtrip(output_gradient(loss, activations[-1], A[-1], _roundtrip(Y)))
    pipeline_grads: list[tuple[np.ndarray, np.ndarray]] = []
    for layer in range(L, 0, -1):
        prev = activations[layer - 2] if layer >= 2 else None
        dW, db, dZ_prev = backward_layer(dZ, A[layer - 1], _roundtrip(params[layer - 1][0]), prev)
        pipeline_grads.insert(0, (_roundtrip(dW), _roundtrip(db)))
        if dZ_prev is not None:
            dZ = _roundtrip(dZ_prev)
        else:
            assert layer == 1

    # ... and the reference trainer runs the fused function
    value, grads = microbatch_gradients(params, activations, loss, X, Y)

    # Then the results are identical bits
    assert value == pipeline_loss
    assert len(grads) == L
    for (dW, db), (pdW, pdb) in zip(grads, pipeline_grads, strict=True):
        assert dW.dtype == np.float32 and db.dtype == np.float32
        assert np.array_equal(dW, pdW) and np.array_equal(db, pdb)
    assert np.array_equal(predict(params, activations, X), A[-1])


def test_backward_layer_of_layer_one_returns_no_dz() -> None:
    # Given
    params, X, _ = _problem(62, [3, 2], "mse", n=4)
    W, _ = params[0]
    dZ = np.ones((4, 2))

    # When
    dW, db, dZ_prev = backward_layer(dZ, X, W, None)
    _, _, dZ_hidden = backward_layer(dZ, X, W, "tanh")

    # Then
    assert dZ_prev is None
    assert dW.shape == (3, 2) and db.shape == (2,)
    assert dZ_hidden is not None and np.array_equal(dZ_hidden, (dZ @ W.T) * (1 - X * X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_aggregated_worker_gradients_equal_the_full_batch_gradient(dtype: type) -> None:
    # Given a batch of 12 examples split over workers of 5, 4 and 3 examples
    activations = ["relu", "tanh", "softmax"]
    params, X, Y = _problem(63, [5, 6, 4, 3], "cross_entropy", n=12, dtype=dtype)
    sizes = [5, 4, 3]
    bounds = np.cumsum([0, *sizes])
    per_worker = [
        microbatch_gradients(params, activations, "cross_entropy", X[a:b], Y[a:b])[1]
        for a, b in itertools.pairwise(bounds)
    ]

    # When
    aggregated = aggregate_gradients(per_worker, sizes)

    # Then
    _, full = microbatch_gradients(params, activations, "cross_entropy", X, Y)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for (dW, db), (fW, fb) in zip(aggregated, full, strict=True):
        assert dW.dtype == dtype and db.dtype == dtype
        np.testing.assert_allclose(dW, fW, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(db, fb, rtol=rtol, atol=rtol * 1e-2)


def test_aggregate_gradients_sums_in_worker_order_deterministically() -> None:
    # Given three workers' float32 gradients for one layer
    rng = np.random.default_rng(64)
    per_worker = [
        [
            (
                rng.standard_normal((4, 3)).astype(np.float32),
                rng.standard_normal(3).astype(np.float32),
            )
        ]
        for _ in range(3)
    ]
    sizes = [7, 3, 5]

    # When
    first = aggregate_gradients(per_worker, sizes)
    second = aggregate_gradients(per_worker, sizes)

    # Then it is exactly the left fold w0 g0 + w1 g1 + w2 g2 with float32 weights n_w / N
    w = [np.float32(n / 15) for n in sizes]
    for i in range(2):
        expected = w[0] * per_worker[0][0][i] + w[1] * per_worker[1][0][i]
        expected = expected + w[2] * per_worker[2][0][i]
        assert first[0][i].dtype == np.float32
        assert np.array_equal(first[0][i], expected)
        assert np.array_equal(first[0][i], second[0][i])


def test_aggregate_of_one_worker_is_its_gradient() -> None:
    # Given
    g = [(np.arange(6.0).reshape(2, 3), np.arange(3.0))]

    # When
    (dW, db), *_ = aggregate_gradients([g], [17])

    # Then
    assert np.array_equal(dW, g[0][0]) and np.array_equal(db, g[0][1])


@pytest.mark.parametrize(
    ("per_worker", "sizes", "message"),
    [
        ([], [], "at least one worker"),
        ([[(np.zeros(1), np.zeros(1))]], [1, 2], "one size per worker"),
        ([[(np.zeros(1), np.zeros(1))]], [0], ">= 1"),
        ([[(np.zeros(1), np.zeros(1))], []], [1, 1], "same number of layers"),
    ],
)
def test_aggregate_gradients_rejects_bad_input(
    per_worker: list[list[tuple[np.ndarray, np.ndarray]]], sizes: list[int], message: str
) -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match=message):
        aggregate_gradients(per_worker, sizes)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_any_split_aggregates_to_the_full_batch_gradient(sizes: list[int]) -> None:
    # Given a batch split into workers of arbitrary sizes (from Hypothesis)
    activations = ["sigmoid", "linear"]
    params, X, Y = _problem(65, [3, 4, 2], "mse", n=sum(sizes))
    bounds = np.cumsum([0, *sizes])
    per_worker = [
        microbatch_gradients(params, activations, "mse", X[a:b], Y[a:b])[1]
        for a, b in itertools.pairwise(bounds)
    ]

    # When
    aggregated = aggregate_gradients(per_worker, sizes)

    # Then
    _, full = microbatch_gradients(params, activations, "mse", X, Y)
    for got, want in zip(aggregated, full, strict=True):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-14)


def test_add_l2_adds_lambda_w_to_weights_only() -> None:
    # Given float32 gradients and params
    params, X, Y = _problem(66, [3, 4, 2], "mse", n=5, dtype=np.float32)
    _, grads = microbatch_gradients(params, ["tanh", "linear"], "mse", X, Y)

    # When
    with_l2 = add_l2(grads, params, 0.01)
    without = add_l2(grads, params, 0.0)

    # Then
    for (dW, db), (gW, gb), (W, _) in zip(with_l2, grads, params, strict=True):
        assert dW.dtype == np.float32
        assert np.array_equal(dW, gW + np.float32(0.01) * W)
        assert db is gb
    assert all(a is c and b is d for (a, b), (c, d) in zip(without, grads, strict=True))


def test_predict_chains_forward_layer() -> None:
    # Given
    activations = ["relu", "softmax"]
    params, X, _ = _problem(67, [4, 3, 2], "cross_entropy", n=5, dtype=np.float32)

    # When
    A = predict(params, activations, X)

    # Then
    A1 = forward_layer(X, *params[0], "relu")
    assert np.array_equal(A, forward_layer(A1, *params[1], "softmax"))
    assert A.dtype == np.float32
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-6)


def test_layer_and_activation_counts_must_agree() -> None:
    # Given
    params, X, Y = _problem(68, [3, 4, 2], "mse", n=2)

    # When / Then
    with pytest.raises(ValueError, match="one activation per layer"):
        microbatch_gradients(params, ["relu"], "mse", X, Y)
    with pytest.raises(ValueError, match="one activation per layer"):
        predict(params, ["relu", "linear", "linear"], X)
    with pytest.raises(ValueError, match="layers"):
        add_l2([], params, 0.1)
