"""gradcheck from any declaration: a convolutional network's compiled backward pass against central differences of
its own compiled loss, and the coordinate of a wrong gradient named by its layer. Sizes are tiny: each coordinate
takes six passes, and each layer kind compiles once."""

import numpy as np
import pytest

from fastgd import MLP
from fastgd.gradcheck import gradcheck, numerical_gradient
from fastgd.networks import (AvgPool1D, AvgPool2D, Conv1D, Conv2D, Dense, Flatten, MaxPool1D, MaxPool2D, Network,
                             Sigmoid, Tanh)
from tests.cli_harness import run_command

CNN_2D = ([Conv2D(2, 3, stride=2, padding=1), Tanh(), MaxPool2D(2), Conv2D(3, 2, padding="same"), Sigmoid(),
           AvgPool2D(2), Flatten(), Dense(3)], (1, 7, 7))
CNN_1D = ([Conv1D(2, 3, stride=2, padding=1), Tanh(), MaxPool1D(2), Conv1D(3, 2, padding="same"), Sigmoid(),
           AvgPool1D(2), Flatten(), Dense(2)], (2, 11))


def _case(layers, input_shape, loss="cross_entropy", alpha=0.0, rows=4, seed=0):
    net = Network(layers, input_shape=input_shape, loss=loss, alpha=alpha)
    rng = np.random.default_rng(seed)
    theta = net.init(random_state=seed) + 0.1 * rng.normal(size=net.n_params)
    X = rng.normal(size=(rows, *input_shape))
    if loss == "cross_entropy":
        Y = np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, rows)]
    elif loss == "binary_cross_entropy":
        Y = rng.uniform(size=(rows, net.n_outputs))
    else:
        Y = rng.normal(size=(rows, net.n_outputs))
    return net, theta, X, Y


@pytest.mark.parametrize("layers, input_shape, loss, alpha", [
    (*CNN_2D, "cross_entropy", 0.0),
    (*CNN_2D, "mse", 0.3),
    (*CNN_1D, "cross_entropy", 0.1),
    ([Dense(4), Tanh(), Dense(3)], (5,), "cross_entropy", 0.0),
    (CNN_1D[0][:-1] + [Dense(1)], CNN_1D[1], "binary_cross_entropy", 0.2),
], ids=["conv2d_cross_entropy", "conv2d_mse_penalty", "conv1d_penalty", "dense_torch_order", "conv1d_one_logit_bce"])
def test_a_declared_network_passes_gradcheck(layers, input_shape, loss, alpha):
    net, theta, X, Y = _case(layers, input_shape, loss, alpha)
    result = gradcheck(net, theta, X, Y)
    assert result.max_relative_error < 1e-6, result
    assert result.where["layer_kind"] == type(layers[result.where["layer"]]).__name__


def test_the_numerical_gradient_is_a_central_difference_of_the_networks_loss_penalty_included():
    # an oracle outside the compiled loop: Python's central differences of Network.loss (its own forward-only pass)
    net, theta, X, Y = _case(*CNN_2D, "cross_entropy", alpha=0.5)
    numerical = numerical_gradient(net, theta, X.reshape(X.shape[0], -1), Y)
    step = 1e-5
    for k in (0, net.n_params // 2, net.n_params - 1):
        shifted = theta.copy()
        shifted[k] += step
        above = net.loss(shifted, X, Y)
        shifted[k] -= 2 * step
        below = net.loss(shifted, X, Y)
        assert numerical[k] == pytest.approx((above - below) / (2 * step), rel=1e-6, abs=1e-9)


def test_a_wrong_gradient_fails_and_its_coordinate_is_named_by_its_layer(monkeypatch):
    net, theta, X, Y = _case(*CNN_2D)
    # the coordinate to corrupt, found through torch's state_dict names, not through gradcheck's arithmetic
    marker = np.zeros(net.n_params)
    net.unpack(marker)["3.weight"][1, 0, 1, 0] = 1.0
    wrong = int(np.argmax(marker))
    right = net.loss_grad

    def corrupted(theta, X, Y):
        loss, grad = right(theta, X, Y)
        grad[wrong] += 1e-3
        return loss, grad

    monkeypatch.setattr(net, "loss_grad", corrupted)
    result = gradcheck(net, theta, X, Y)
    assert result.max_relative_error > 1e-4
    assert result.where == {"layer": 3, "layer_kind": "Conv2D", "kind": "weight", "index": (1, 0, 1, 0)}
    assert result.location == "layer 3 (Conv2D) weight (1, 0, 1, 0)"


def test_the_mlp_and_its_declaration_give_the_same_numerical_gradient_bit_for_bit():
    mlp = MLP([3, 4, 2], "tanh", "softmax", alpha=0.1)
    declared = Network([Dense(4), Tanh(), Dense(2)], input_shape=(3,), loss="cross_entropy", alpha=0.1,
                       parameter_order="scikit-learn")
    rng = np.random.default_rng(1)
    theta = mlp.init(random_state=0) + 0.1 * rng.normal(size=mlp.n_params)
    X, Y = rng.normal(size=(5, 3)), np.eye(2)[rng.integers(0, 2, 5)]
    assert np.array_equal(numerical_gradient(mlp, theta, X, Y), numerical_gradient(declared, theta, X, Y))
    result = gradcheck(mlp, theta, X, Y)
    # scikit-learn's order: every weight (in, out), then every bias; the layers are the declaration's
    assert result.where["layer"] in (0, 2) and result.where["layer_kind"] == "Dense", result
    assert result.max_relative_error < 1e-6


def test_a_float32_network_is_refused_before_anything_runs():
    net, theta, X, Y = _case(*CNN_1D)
    with pytest.raises(TypeError, match="gradient checks need float64"):
        gradcheck(net, theta.astype(np.float32), X, Y)


def test_the_command_checks_a_known_convolutional_network(tmp_path):
    code, out, err = run_command(["gradcheck", "--network", "mnist1d_cnn", "--steps", "2"], tmp_path)
    assert code == 0, err
    row = out.splitlines()[-1].split()
    assert row[:3] == ["mnist1d_cnn", "5,210", "cross-entropy"], out
    assert float(row[3]) < 1e-6, out
    assert row[4] == "layer" and row[6] in ("(Conv1D)", "(Dense)") and row[7] in ("weight", "bias"), out


def test_a_model_without_layers_is_checked_as_one_layer():
    from fastgd.networks.quadratic import quadratic_deep

    net = quadratic_deep()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, net.n_params))
    result = gradcheck(net, net.init(random_state=0) + 0.1, X, np.zeros((4, net.n_outputs)))
    assert result.max_relative_error < 1e-6, result
    assert result.location.startswith("layer 0 (NoisyQuadratic) theta (")
