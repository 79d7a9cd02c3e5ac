"""fastgd.MLP as a declaration on Network: a scikit-learn-order Dense stack declared by hand is the same network
(θ, losses, gradients, training, predictions bit for bit), and the stack agrees with the same layers declared in
torch's order, which run the plan pass, once θ is transposed: an oracle of another pass and another layout."""

import numpy as np
import pytest

from fastgd import MLP, optim
from fastgd.networks import Conv1D, Dense, Flatten, Identity, Network, NetworkError, ReLU, Sigmoid, Tanh
from fastgd.networks.known import mlp as torch_order_mlp
from fastgd.training import Training

SIZES = [5, 7, 6, 3]
LAYER = {"relu": ReLU, "tanh": Tanh, "logistic": Sigmoid, "identity": Identity}
LOSS = {"softmax": "cross_entropy", "logistic": "binary_cross_entropy", "identity": "squared_error"}


def declared(activation, output, alpha, dtype=None, sizes=SIZES):
    layers = []
    for size in sizes[1:-1]:
        layers += [Dense(size), LAYER[activation]()]
    return Network(layers + [Dense(sizes[-1])], input_shape=(sizes[0],), loss=LOSS[output], alpha=alpha,
                   parameter_order="scikit-learn", dtype=dtype)


def data(output, n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, SIZES[0]))
    if output == "softmax":
        return X, np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], n)]
    if output == "logistic":
        return X, rng.integers(0, 2, (n, SIZES[-1])).astype(float)
    return X, rng.normal(size=(n, SIZES[-1]))


def test_an_mlp_is_a_network_declaration_and_keeps_its_face():
    net = MLP(SIZES, "tanh", "logistic", 1e-3, np.float32)
    assert isinstance(net, Network) and net.stack is not None and net.plan is None
    assert repr(net) == ("MLP(layer_sizes=[5, 7, 6, 3], activation='tanh', output='logistic', alpha=0.001, "
                         "dtype=float32)")
    assert net.loss_name == "binary_cross_entropy" and net.parameter_order == "scikit-learn"
    assert [type(layer) for layer in net.layers] == [Dense, Tanh, Dense, Tanh, Dense]
    assert net.layout == [(5, 7), (7, 6), (6, 3), (7,), (6,), (3,)]
    assert [t.shape for t in net.tensors] == net.layout  # θ's tensors in θ's order: every weight, then every bias
    assert [t.offset for t in net.tensors] == list(np.cumsum([0] + [int(np.prod(s)) for s in net.layout])[:-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation, output", [("relu", "softmax"), ("tanh", "logistic"), ("logistic", "identity"),
                                                ("identity", "softmax")])
def test_a_declared_stack_and_the_mlp_give_the_same_theta_losses_gradients_and_training(activation, output, dtype):
    mlp = MLP(SIZES, activation, output, 1e-2, dtype)
    stack = declared(activation, output, 1e-2)
    X, Y = data(output)
    theta = mlp.init(random_state=3)
    assert theta.dtype == dtype
    assert stack.init(random_state=3, dtype=dtype).tobytes() == theta.tobytes()
    mlp_loss, mlp_grad = mlp.loss_grad(theta, X, Y)
    stack_loss, stack_grad = stack.loss_grad(theta, X, Y)
    assert stack_loss == mlp_loss and stack_grad.tobytes() == mlp_grad.tobytes()
    assert stack.predict(theta, X).tobytes() == mlp.predict(theta, X).tobytes()
    curves, thetas = [], []
    for net in (mlp, stack):
        start = theta.copy()
        training = Training(net, optim.Adam(start, lr=1e-2), X, Y, batch_size=8, seed=1)
        curves.append(training.run(3).loss)
        thetas.append(start)
    assert curves[0] == curves[1] and thetas[0].tobytes() == thetas[1].tobytes()
    assert not np.array_equal(thetas[0], theta)  # it trained


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
@pytest.mark.parametrize("output", ["softmax", "identity"])
def test_the_stack_agrees_with_the_same_layers_in_torchs_order_on_the_plan_pass(activation, output):
    """The same network in torch's order (weights (out, in), each layer's weight then bias) runs the plan pass:
    with θ transposed into that layout its loss is the stack's (twice it for mse, scikit-learn's squared error
    being half the mean), its gradient the stack's gradient transposed, its logits' softmax the stack's
    probabilities."""
    stack = MLP(SIZES, activation, output, 0.0)
    torch_net = torch_order_mlp(SIZES, activation, loss="cross_entropy" if output == "softmax" else "mse")
    X, Y = data(output)
    theta = stack.init(random_state=0)
    rng = np.random.default_rng(1)
    theta[stack.n_weights:] = rng.normal(size=theta.size - stack.n_weights)  # biases too

    def torch_layout(vector):
        coefs, intercepts = stack.unpack(vector)
        return np.concatenate([part for W, b in zip(coefs, intercepts) for part in (W.T.ravel(), b)])

    loss, grad = stack.loss_grad(theta, X, Y)
    torch_loss, torch_grad = torch_net.loss_grad(torch_layout(theta), X, Y)
    scale = 2.0 if output == "identity" else 1.0
    assert torch_loss == pytest.approx(scale * loss, rel=1e-12)
    np.testing.assert_allclose(torch_grad, scale * torch_layout(grad), rtol=1e-10, atol=1e-14)
    outputs = torch_net.predict(torch_layout(theta), X)
    if output == "softmax":
        outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        outputs /= outputs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(stack.predict(theta, X), outputs, rtol=1e-12, atol=1e-15)


def test_a_declared_stack_without_a_dtype_takes_either_and_one_with_a_dtype_holds_to_it():
    X, Y = data("softmax")
    free, fixed = declared("relu", "softmax", 0.0), declared("relu", "softmax", 0.0, np.float32)
    for dtype in (np.float32, np.float64):
        loss, grad = free.loss_grad(free.init(random_state=0, dtype=dtype), X, Y)
        assert grad.dtype == dtype
    assert fixed.init(random_state=0).dtype == np.float32
    with pytest.raises(TypeError, match="theta has dtype float64, the network float32"):
        fixed.loss_grad(np.zeros(fixed.n_params), X, Y)


def test_with_alpha_keeps_the_declaration():
    net = declared("tanh", "identity", 0.0, np.float32).with_alpha(0.5)
    assert (net.alpha, net.parameter_order, net.dtype, net.stack.activation) == (0.5, "scikit-learn", np.float32,
                                                                                    "tanh")
    mlp = MLP(SIZES, "tanh").with_alpha(0.5)
    assert isinstance(mlp, MLP) and repr(mlp) == repr(MLP(SIZES, "tanh", alpha=0.5))


@pytest.mark.parametrize("layers, input_shape, loss, message", [
    ([Conv1D(2, 3), ReLU(), Flatten(), Dense(3)], (1, 8), "cross_entropy",
     r"^layer 0 \(Conv1D\): a scikit-learn-order network is Dense layers \(with bias\) and one activation"),
    ([Dense(7), Tanh(), Dense(6), ReLU(), Dense(3)], (5,), "cross_entropy",
     r"^layer 3 \(ReLU\): a scikit-learn-order network has one activation kind between its Dense layers; layer 1 is "
     r"Tanh$"),
    ([Dense(7), Dense(3)], (5,), "cross_entropy", r"^layer 1 \(Dense\): .* one activation .* between each two Dense"),
    ([Dense(7), ReLU()], (5,), "cross_entropy", r"^layer 1 \(ReLU\): a scikit-learn-order network ends with Dense"),
    ([Dense(7, bias=False), ReLU(), Dense(3)], (5,), "cross_entropy", r"^layer 0 \(Dense\): .*\(with bias\)"),
    ([Dense(3)], (5,), "mse", r"loss is one of .*'squared_error' is half of 'mse'\), got 'mse'$"),
])
def test_bad_scikit_learn_order_declarations_get_one_line(layers, input_shape, loss, message):
    with pytest.raises(NetworkError, match=message) as caught:
        Network(layers, input_shape=input_shape, loss=loss, parameter_order="scikit-learn")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kwargs, message", [
    (dict(loss="squared_error"), r"'squared_error' is scikit-learn's: parameter_order='scikit-learn'"),
    (dict(parameter_order="sklearn"), r"parameter_order must be one of \['torch', 'scikit-learn'\], got 'sklearn'"),
])
def test_torch_order_refuses_scikit_learns_losses_and_unknown_orders(kwargs, message):
    with pytest.raises(NetworkError, match=message):
        Network([Dense(3)], input_shape=(5,), **kwargs)


def test_each_order_draws_only_its_own_schemes():
    with pytest.raises(NetworkError, match=r"scheme must be one of \['scikit-learn'\] .* got 'torch'"):
        MLP(SIZES).init(0, scheme="torch")
    with pytest.raises(NetworkError, match=r"scheme must be one of \['torch', 'lecture'\] .* got 'scikit-learn'"):
        torch_order_mlp(SIZES).init(0, scheme="scikit-learn")
