"""The compiled MLP: forward, loss and backward against the NumPy reference and finite differences."""

import re

import numpy as np
import pytest

from fastgd import MLP, reference
from fastgd.gradcheck import gradcheck, numerical_gradient
from fastgd.kernels.mlp import ACTIVATIONS, OUTPUTS

# one output after a hidden layer: the backward pass forms δ Wᵀ as an outer product
ARCHITECTURES = {"no hidden layer": [5, 3], "two hidden layers": [5, 7, 4, 3], "one output": [5, 7, 4, 1]}


def data(output, n_outputs, n_samples=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, 5))
    if output == "softmax":
        Y = np.eye(n_outputs)[rng.integers(0, n_outputs, n_samples)]
    elif output == "logistic":
        Y = rng.integers(0, 2, (n_samples, n_outputs)).astype(float)
    else:
        Y = rng.normal(size=(n_samples, n_outputs))
    return X, Y


def perturbed_theta(net, seed=0):
    # biases start at zero: perturb them so that their gradients are tested too
    theta = net.init(random_state=seed)
    theta += np.random.default_rng(seed).normal(0, 0.2, theta.size).astype(theta.dtype)
    return theta


@pytest.mark.parametrize("sizes", ARCHITECTURES.values(), ids=ARCHITECTURES.keys())
@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradient_passes_gradcheck(activation, output, sizes):
    net = MLP(sizes, activation, output, alpha=0.3)
    theta = perturbed_theta(net)
    X, Y = data(output, sizes[-1])
    result = gradcheck(net, theta, X, Y)
    assert result.max_relative_error < 1e-6, result


@pytest.mark.parametrize("sizes", ARCHITECTURES.values(), ids=ARCHITECTURES.keys())
@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_loss_and_gradient_match_numpy_reference(activation, output, sizes):
    net = MLP(sizes, activation, output, alpha=0.3)
    theta = perturbed_theta(net, seed=1)
    X, Y = data(output, sizes[-1], n_samples=13, seed=1)
    loss, grad = net.loss_grad(theta, X, Y)
    expected_loss, expected_grad = reference.mlp_loss_grad(theta, X, Y, sizes, activation, output, 0.3)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(net.predict(theta, X), reference.mlp_forward(theta, X, sizes, activation, output)[-1],
                               rtol=1e-12)
    assert net.loss(theta, X, Y) == pytest.approx(expected_loss, rel=1e-12)


def test_predictions_and_loss_in_chunks_match_the_reference(monkeypatch):
    from fastgd.networks import dense

    monkeypatch.setattr(dense, "PREDICT_CHUNK", 4)  # 13 rows: chunks of 4, 4, 4 and 1 (the MLP's passes' chunk)
    net = MLP([5, 7, 3], "relu", "softmax", alpha=0.3)
    theta = perturbed_theta(net, seed=2)
    X, Y = data("softmax", 3, n_samples=13, seed=2)
    expected_loss, _ = reference.mlp_loss_grad(theta, X, Y, [5, 7, 3], "relu", "softmax", 0.3)
    np.testing.assert_allclose(net.predict(theta, X), reference.mlp_forward(theta, X, [5, 7, 3], "relu",
                                                                            "softmax")[-1], rtol=1e-12)
    assert net.loss(theta, X, Y) == pytest.approx(expected_loss, rel=1e-12)


def test_a_read_only_theta_predicts_as_a_writeable_one():
    """A fitted model unpickled from a read-only memmap has a read-only θ: the compiled pass takes a copy."""
    net = MLP([5, 7, 3], "tanh", "softmax", alpha=0.1)
    theta = perturbed_theta(net, seed=3)
    X, Y = data("softmax", 3, n_samples=11, seed=3)
    frozen = theta.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(net.predict(frozen, X), net.predict(theta, X))
    assert net.loss(frozen, X, Y) == net.loss(theta, X, Y)


PREDICT_COMPILES = """
import numpy as np
from fastgd import MLP, optim
from fastgd.kernels import train
from fastgd.training import Training
rng = np.random.default_rng(0)
X, Y = rng.normal(size=(40, 4)), np.eye(3)[rng.integers(0, 3, 40)]
net = MLP([4, 6, 3])
theta = net.init(random_state=0)
Training(net, optim.SGD(theta, lr=0.1), X, Y, 8).run(1)
passes = len(train._MODEL_ENTRIES)
net.predict(theta, X)
net.loss(theta, X, Y)
print(passes, len(train._MODEL_ENTRIES), len(train.predict_in_chunks.overloads), len(train.dataset_loss.overloads))
"""


def test_prediction_compiles_no_pass_of_its_own(tmp_path):
    """Predictions and a data set's loss run the pass training compiled, forward only: in a fresh process with an
    empty cache, they add no compiled pass, only their own small chunk loops."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", PREDICT_COMPILES], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "1", "1"]


def test_loss_is_scikit_learns():
    from sklearn.metrics import log_loss

    net = MLP([5, 4, 3], "relu", "softmax", alpha=0.0)
    theta = perturbed_theta(net)
    X, Y = data("softmax", 3, n_samples=40)
    probabilities = net.predict(theta, X)
    assert net.loss(theta, X, Y) == pytest.approx(log_loss(Y.argmax(axis=1), probabilities, labels=[0, 1, 2]),
                                                  rel=1e-12)


def test_penalty_covers_weights_only():
    net = MLP([3, 2, 1], "identity", "identity", alpha=2.0)
    X, Y = np.zeros((4, 3)), np.zeros((4, 1))
    theta = np.zeros(net.n_params)
    coefs, intercepts = net.unpack(theta)
    intercepts[0][:] = 5.0  # biases: no penalty (the output of the hidden layer still reaches the loss)
    coefs[1][:] = 1.0
    # data loss: output = W2ᵀ·relu... identity: 5 + 5 = 10 per sample, squared/2 = 50
    expected = 0.5 * 10.0**2 + 2.0 / (2 * 4) * 2.0
    assert net.loss(theta, X, Y) == pytest.approx(expected)


def test_float32_stays_float32():
    net = MLP([5, 7, 3], "tanh", "softmax", alpha=0.1, dtype=np.float32)
    theta = net.init(random_state=0)
    assert theta.dtype == np.float32
    X, Y = data("softmax", 3)
    loss, grad = net.loss_grad(theta, X, Y)
    assert grad.dtype == np.float32 and net.predict(theta, X).dtype == np.float32
    net64 = MLP([5, 7, 3], "tanh", "softmax", alpha=0.1)
    loss64, grad64 = net64.loss_grad(theta.astype(np.float64), X, Y)
    assert loss == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(grad, grad64, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("activation, factor", [("relu", 6.0), ("tanh", 6.0), ("logistic", 2.0)])
def test_init_draws_scikit_learns_weights_and_zero_biases(activation, factor):
    sizes = [6, 5, 4, 2]
    net = MLP(sizes, activation, "softmax")
    coefs, intercepts = net.unpack(net.init(random_state=3))
    # scikit-learn's _init_coef, layer by layer: weights then (here discarded) biases
    rng = np.random.RandomState(3)
    for coef, bias, n_in, n_out in zip(coefs, intercepts, sizes[:-1], sizes[1:]):
        bound = np.sqrt(factor / (n_in + n_out))
        np.testing.assert_array_equal(coef, rng.uniform(-bound, bound, (n_in, n_out)))
        rng.uniform(-bound, bound, n_out)
        assert np.all(bias == 0)
    np.testing.assert_array_equal(net.init(random_state=3), net.init(random_state=3))


def test_unpack_gives_views_and_pack_inverts_it():
    net = MLP([4, 3, 2], "relu", "identity")
    theta = net.init(random_state=0)
    coefs, intercepts = net.unpack(theta)
    assert [c.shape for c in coefs] == [(4, 3), (3, 2)] and [b.shape for b in intercepts] == [(3,), (2,)]
    coefs[0][1, 2] = 42.0
    assert theta[1 * 3 + 2] == 42.0
    np.testing.assert_array_equal(net.pack(coefs, intercepts), theta)
    assert net.n_params == 4 * 3 + 3 * 2 + 3 + 2 and net.n_weights == 18


def test_linear_logistic_and_softmax_regression_are_networks_without_hidden_layers():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    for output, expected in [("identity", lambda z: z), ("logistic", lambda z: 1 / (1 + np.exp(-z))),
                             ("softmax", lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))]:
        net = MLP([3, 2], "relu", output)
        theta = perturbed_theta(net)
        (W,), (b,) = net.unpack(theta)
        np.testing.assert_allclose(net.predict(theta, X), expected(X @ W + b), rtol=1e-12)


def test_numerical_gradient_needs_float64():
    net = MLP([2, 1], dtype=np.float32, output="identity")
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(net, net.init(0), np.zeros((2, 2)), np.zeros((2, 1)))


def test_gradcheck_finds_a_wrong_gradient():
    # the check itself must be able to fail: compare against a corrupted gradient
    net = MLP([3, 4, 2], "tanh", "softmax", alpha=0.0)
    theta = perturbed_theta(net)
    X, Y = data("softmax", 2)[0][:, :3], data("softmax", 2)[1]
    numerical = numerical_gradient(net, theta, X, Y)
    _, analytic = net.loss_grad(theta, X, Y)
    np.testing.assert_allclose(numerical, analytic, rtol=1e-6, atol=1e-9)
    result = gradcheck(net, theta, X, Y)
    assert result.where["kind"] in ("weight", "bias")
    corrupted = analytic.copy()
    corrupted[5] *= 1.01
    errors = np.abs(numerical - corrupted) / np.maximum(np.abs(numerical), 1e-12)
    assert errors.max() > 1e-3


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(layer_sizes=[3]), ValueError, "at least two positive integers"),
    (dict(layer_sizes=[3, 0, 2]), ValueError, "at least two positive integers"),
    (dict(layer_sizes=[3, 2], activation="softmax"), ValueError, "activation must be one of"),
    (dict(layer_sizes=[3, 2], output="tanh"), ValueError, "output must be one of"),
    (dict(layer_sizes=[3, 2], alpha=-1.0), ValueError, "alpha must be a finite number >= 0"),
    (dict(layer_sizes=[3, 2], dtype=np.int32), TypeError, "dtype must be float32 or float64"),
])
def test_bad_networks_are_refused(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        MLP(**kwargs)


@pytest.mark.parametrize("X, Y, message", [
    (np.zeros((4, 2)), np.zeros((4, 2)), "X must have shape (n_samples, 3), got (4, 2)"),
    (np.zeros(3), np.zeros((1, 2)), "X must have shape (n_samples, 3), got (3,)"),
    (np.full((4, 3), np.nan), np.zeros((4, 2)), "X contains NaN or infinity"),
    (np.zeros((4, 3)), np.zeros((5, 2)), "Y must have shape (4, 2) (one-hot), got (5, 2)"),
    (np.zeros((4, 3)), np.full((4, 2), np.inf), "Y contains NaN or infinity"),
])
def test_bad_data_is_refused(X, Y, message):
    net = MLP([3, 2], output="softmax")
    with pytest.raises(ValueError, match=re.escape(message)):
        net.loss_grad(net.init(0), X, Y)


@pytest.mark.parametrize("theta, error, message", [
    (np.zeros(5), ValueError, "theta must have shape (8,)"),
    (np.zeros(8, np.float32), TypeError, "theta has dtype float32, the network float64"),
    ([0.0] * 8, TypeError, "theta must be a NumPy ndarray"),
])
def test_bad_theta_is_refused(theta, error, message):
    net = MLP([3, 2], output="softmax")
    with pytest.raises(error, match=re.escape(message)):
        net.predict(theta, np.zeros((1, 3)))


def test_gradient_checks_pass_along_training_for_every_activation_and_output():
    """The report's checks: a correct backward pass passes at 1e-6 for every pair, smooth or not.

    Logistic hidden units with a logistic output, after 20 Adam steps, have a gradient entry of
    2e-5 on a loss of 2: a plain central difference's rounding (4e-11 |J|) made that a relative
    error of 2e-6. ReLU's kinks keep the wider steps of the extrapolation from every coordinate.
    """
    from fastgd.sweep.measure import gradient_checks

    checks = gradient_checks()
    assert len(checks) == 12
    worst = max(checks, key=lambda check: check["max_relative_error"])
    assert all(check["passed"] for check in checks), worst


def test_extrapolation_is_more_accurate_than_a_plain_difference_on_a_smooth_loss(monkeypatch):
    # tanh/softmax is smooth everywhere: every coordinate takes the extrapolation, whose error is
    # far below the plain central difference's (AGREEMENT_FACTOR = 0 leaves only the plain one)
    import fastgd.gradcheck

    net = MLP([3, 4, 2], "tanh", "softmax", alpha=0.0)
    theta = perturbed_theta(net)
    X, Y = data("softmax", 2)[0][:, :3], data("softmax", 2)[1]
    _, analytic = net.loss_grad(theta, X, Y)

    def worst_error():
        numerical = numerical_gradient(net, theta, X, Y)
        return np.max(np.abs(numerical - analytic) / (np.abs(analytic) + 1e-4))

    extrapolated = worst_error()
    monkeypatch.setattr(fastgd.gradcheck, "AGREEMENT_FACTOR", 0.0)
    plain = worst_error()
    assert extrapolated < 1e-9 and extrapolated * 10 < plain, (extrapolated, plain)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_penalty_sum_of_squares_is_numpys_over_every_span(dtype):
    """The L2 penalty's ΣW² (eight partial sums, then the remainder): the sum of the squares in float64 over any
    span, the lengths around a multiple of eight included, against NumPy's float64 sum."""
    from numba import njit

    from fastgd.kernels.mlp import sum_of_squares

    summed = njit(lambda values, start, stop: sum_of_squares(values, start, stop))
    values = np.random.default_rng(4).standard_normal(1000).astype(dtype)
    for start, stop in [(0, 0), (3, 3), (0, 1), (0, 7), (0, 8), (0, 9), (5, 22), (1, 1000), (0, 1000)]:
        expected = float(np.sum(values[start:stop].astype(np.float64) ** 2))
        assert summed(values, start, stop) == pytest.approx(expected, rel=1e-14, abs=0.0)
