"""A declared network on the device (:mod:`fastgd.cuda.network`) against the CPU pass (:mod:`fastgd.kernels.network`):
forward, loss and gradient, the L2 penalty, a few training steps, the estimators; every launch with the types the PTX
test compiles."""

import numba
import numpy as np
import pytest
from numba import cuda

from fastgd import NetworkClassifier, NetworkRegressor, optim
from fastgd.cuda import arrays
from fastgd.cuda import network as device_network
from fastgd.kernels import network as cpu_network
from fastgd.networks import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, Network, ReLU, Tanh
from fastgd.training import Training
from network_cases import GRID, data, device_kernel_signatures

# the shapes of the brief: 5 × 5 inputs, 2–3 channels, stride 2, "same" padding, max and average pooling, a Dense head
SMALL = [
    ("conv_stride2_maxpool_dense", [Conv2D(3, 3, stride=2, padding=1), ReLU(), MaxPool2D(2, 1), Flatten(), Dense(3)],
     (2, 5, 5), "cross_entropy", 2),
    ("conv_same_avgpool_dense", [Conv2D(2, 3, padding="same"), Tanh(), AvgPool2D(2), Flatten(), Dense(2)],
     (3, 5, 5), "mse", 1),
]
CASES = SMALL + GRID


class Recorded:
    """A kernel that records the argument types of every launch, then launches."""

    def __init__(self, kernel, name, calls):
        self.kernel, self.name, self.calls = kernel, name, calls

    def __getitem__(self, launch):
        def launched(*args):
            self.calls.append((self.name, tuple(numba.typeof(arg) for arg in args)))
            return self.kernel[launch](*args)
        return launched


@pytest.fixture
def launches(monkeypatch):
    """Every launch of fastgd.cuda.network's kernels in the test: [(kernel name, argument types)]."""
    calls = []
    for name in device_kernel_signatures(numba.types.float64):
        monkeypatch.setattr(device_network, name, Recorded(getattr(device_network, name), name, calls))
    return calls


def assert_launched_as_compiled(calls, dtype):
    expected = device_kernel_signatures(numba.from_dtype(np.dtype(dtype)))
    assert calls
    for name, signature in calls:
        assert signature == expected[name], name


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_forward_loss_and_gradient_follow_the_cpu(case, launches):
    net, theta, X, Y = data(case)
    loss, grad = net.loss_grad(theta, X, Y)
    device_loss, device_grad = device_network.loss_and_gradient(net, theta, X, Y)
    assert device_loss == pytest.approx(loss, rel=1e-10)
    np.testing.assert_allclose(device_grad, grad, rtol=1e-10, atol=1e-10 * np.abs(grad).max())
    outputs = device_network.forward(net, theta, X)
    np.testing.assert_allclose(outputs, net.predict(theta, X), rtol=1e-10, atol=1e-10 * np.abs(outputs).max())
    assert_launched_as_compiled(launches, np.float64)


@pytest.mark.parametrize("case", SMALL, ids=[case[0] for case in SMALL])
def test_float32_follows_the_cpu(case, launches):
    net, theta, X, Y = data(case, dtype=np.float32)
    loss, grad = net.loss_grad(theta, X, Y)
    device_loss, device_grad = device_network.loss_and_gradient(net, theta, X, Y)
    assert device_grad.dtype == np.float32
    assert device_loss == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(device_grad, grad, rtol=1e-5, atol=1e-5 * np.abs(grad).max())
    assert_launched_as_compiled(launches, np.float32)


@pytest.mark.parametrize("keep", [False, True], ids=["not_kept", "kept"])
def test_a_convolution_in_several_groups_follows_the_cpu(monkeypatch, launches, keep):
    """With a small ``columns``, each convolution takes a batch in groups of samples and sums ∇W group by group; where
    ``columns`` also keeps the batch's im2col matrix (as the CPU's does), the backward pass builds none."""
    case = SMALL[0]
    net, theta, X, Y = data(case)
    X, Y = np.concatenate([X, X[::-1] + 0.5]), np.concatenate([Y, Y[::-1]])  # 4 samples
    matrix = 18 * 9  # one sample's im2col matrix
    one_sample = 2 * 5 * 5 + 3 * 9 + (0 if keep else matrix)  # the inputs and the product (and the im2col matrix)
    monkeypatch.setattr(cpu_network, "COLUMNS_BUDGET", 2 * one_sample)  # two samples a group
    monkeypatch.setattr(cpu_network, "MIN_GROUP_SAMPLES", 1)  # where the budget holds fewer than the minimum
    monkeypatch.setattr(cpu_network, "KEPT_BUDGET", 4 * matrix if keep else 0)
    _, columns = net.workspace_elements(4)
    assert columns == (4 * matrix if keep else 0) + 2 * one_sample
    loss, grad = net.loss_grad(theta, X, Y)
    device_loss, device_grad = device_network.loss_and_gradient(net, theta, X, Y)
    assert device_loss == pytest.approx(loss, rel=1e-10)
    np.testing.assert_allclose(device_grad, grad, rtol=1e-10, atol=1e-10 * np.abs(grad).max())
    # im2col once a group forward, and backward where not kept
    assert sum(name == "im2col" for name, _ in launches) == (2 if keep else 4)


def train_both(net, theta, X, Y, rule, batch_size, dtype=np.float64, n_epochs=1, **hyperparameters):
    runs = []
    for params in (theta.astype(dtype), cuda.to_device(theta.astype(dtype))):
        optimizer = optim.OPTIMIZERS[rule](params, layout=net.layout, **hyperparameters)
        training = Training(net, optimizer, X, Y, batch_size, seed=5)
        training.run(n_epochs)
        runs.append(training)
    return runs


@pytest.mark.parametrize("rule, hyperparameters", [
    ("sgd", dict(lr=0.1)), ("adam", dict(lr=0.01)),
    ("muon", dict(lr=0.02)),  # per tensor: a convolution's kernel as the matrix (out, in·kh·kw)
    ("schedule_free_adamw", dict(lr=0.01)),  # its loss is taken at its evaluation point, on the host
])
def test_three_training_steps_follow_the_cpu(rule, hyperparameters):
    net, theta, X, Y = data(SMALL[0])
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5,) + net.input_shape)
    Y = np.eye(3)[rng.integers(0, 3, 5)]
    on_cpu, on_device = train_both(net, theta, X, Y, rule, batch_size=2, **hyperparameters)  # steps of 2, 2, 1
    assert on_device.optimizer.state["step"] == on_cpu.optimizer.state["step"] == 3
    np.testing.assert_allclose(on_device.history.loss, on_cpu.history.loss, rtol=1e-10)
    np.testing.assert_allclose(on_device.theta.copy_to_host(), on_cpu.theta, rtol=1e-10, atol=1e-12)
    assert not np.allclose(on_cpu.theta, theta)  # it trained


@pytest.mark.parametrize("case", SMALL, ids=[case[0] for case in SMALL])
def test_the_l2_penalty_follows_the_cpu(case, launches, monkeypatch):
    """α/(2m)·ΣW² in the loss and α/m·W in the weights' gradient (a convolution's kernel and a dense matrix), the
    biases untouched, as the CPU's pass adds them: one launch of the arrays' fused reduction per weight, with the
    types the PTX test compiles it for."""
    penalty_launches = []
    monkeypatch.setattr(arrays, "add_scaled_and_sum_of_squares",
                        Recorded(arrays.add_scaled_and_sum_of_squares, "penalty", penalty_launches))
    plain, theta, X, Y = data(case)
    net = plain.with_alpha(0.4)
    loss, grad = net.loss_grad(theta, X, Y)
    device_loss, device_grad = device_network.loss_and_gradient(net, theta, X, Y)
    assert device_loss == pytest.approx(loss, rel=1e-10)
    np.testing.assert_allclose(device_grad, grad, rtol=1e-10, atol=1e-10 * np.abs(grad).max())
    plain_loss, plain_grad = device_network.loss_and_gradient(plain, theta, X, Y)
    assert device_loss - plain_loss > 1e-3  # the penalty is there
    assert np.abs(device_grad - plain_grad).max() > 1e-3
    vector, status = numba.types.Array(numba.types.float64, 1, "C"), numba.types.Array(numba.types.float64, 1, "C")
    # the convolution's kernel and the dense layer's matrix, for the penalised network only
    assert [types for _, types in penalty_launches] == 2 * [(vector, numba.types.float64, vector, status,
                                                             numba.types.int64)]
    assert_launched_as_compiled(launches, np.float64)


def test_penalised_training_with_clipping_follows_the_cpu():
    """Three steps of Adam on a penalised CNN, the gradient clipped with the penalty's part in it: θ and the loss as
    on the CPU, and not as without the penalty."""
    plain, theta, X, Y = data(SMALL[0])
    net = plain.with_alpha(0.5)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5,) + net.input_shape)
    Y = np.eye(3)[rng.integers(0, 3, 5)]
    runs = []
    for model, params in ((net, theta.copy()), (net, cuda.to_device(theta)), (plain, theta.copy())):
        training = Training(model, optim.Adam(params, lr=0.01), X, Y, batch_size=2, seed=5, clip_norm=0.05)
        runs.append((training.run(1).loss, training.theta if isinstance(training.theta, np.ndarray)
                     else training.theta.copy_to_host()))
    (cpu_loss, cpu_theta), (device_loss, device_theta), (plain_loss, plain_theta) = runs
    np.testing.assert_allclose(device_loss, cpu_loss, rtol=1e-10)
    np.testing.assert_allclose(device_theta, cpu_theta, rtol=1e-10, atol=1e-12)
    assert cpu_loss[0] - plain_loss[0] > 1e-3 and np.abs(cpu_theta - plain_theta).max() > 1e-4


def test_a_full_batch_float32_regression_with_clipping_follows_the_cpu():
    net, theta, X, Y = data(SMALL[1], dtype=np.float32)
    X, Y = np.concatenate([X, X + 1]), np.concatenate([Y, -Y])
    runs = []
    for params in (theta.copy(), cuda.to_device(theta)):
        training = Training(net, optim.Adam(params, lr=0.05), X, Y, batch_size=2, seed=1, clip_norm=0.1)
        runs.append((training.run(2).loss, training.theta if isinstance(training.theta, np.ndarray)
                     else training.theta.copy_to_host()))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-5)
    np.testing.assert_allclose(runs[1][1], runs[0][1], rtol=1e-4, atol=1e-5)


def test_data_already_on_the_device_gives_the_same_run():
    net, theta, X, Y = data(SMALL[0], dtype=np.float32)
    runs = []
    for inputs, targets in ((X, Y), (cuda.to_device(X.reshape(X.shape[0], -1)), cuda.to_device(Y)),
                            (cuda.to_device(X), cuda.to_device(Y))):
        training = Training(net, optim.Adam(cuda.to_device(theta), lr=0.01), inputs, targets, batch_size=1, seed=3)
        runs.append((training.run(1).loss, training.theta.copy_to_host()))
    for loss, theta_after in runs[1:]:
        np.testing.assert_array_equal(theta_after, runs[0][1])
        assert loss == runs[0][0]


@pytest.mark.parametrize("make_data, error, message", [
    (lambda X, Y: (cuda.to_device(X.reshape(2, 1, 4)), cuda.to_device(Y)), ValueError,
     r"X on the device must have shape \(2, 4\)"),
    (lambda X, Y: (cuda.to_device(X.reshape(2, 4)), cuda.to_device(Y)), TypeError,
     "X on the device has dtype float64, the network float32"),
    (lambda X, Y: (cuda.to_device(X.reshape(2, 4)), Y), TypeError, "X and Y must both be device arrays"),
])
def test_device_data_a_declared_network_cannot_take_is_refused_in_one_line(make_data, error, message):
    net = Network([Conv2D(2, 2), Flatten(), Dense(3)], input_shape=(1, 2, 2))
    X, Y = np.zeros((2, 1, 2, 2)), np.eye(3)[[0, 1]]
    with pytest.raises(error, match=message):
        Training(net, optim.Adam(cuda.to_device(net.init(random_state=0, dtype=np.float32))), *make_data(X, Y),
                 batch_size=2)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator, loss, y", [
    (NetworkClassifier, "cross_entropy", np.array([0, 1, 2, 1, 0, 2])),
    (NetworkClassifier, "binary_cross_entropy", np.array([0, 1, 1, 1, 0, 0])),  # one logit, torch's BCEWithLogitsLoss
    (NetworkRegressor, "mse", np.linspace(-1, 1, 6))], ids=["cross_entropy", "binary_cross_entropy", "mse"])
def test_the_estimators_fit_on_the_device_as_on_the_cpu(estimator, loss, y):
    """With an L2 penalty: the estimators' ``alpha`` reaches the device's pass."""
    network = Network([Conv2D(2, 3, stride=2), ReLU(), Flatten(), Dense(3 if loss == "cross_entropy" else 1)],
                      input_shape=(1, 5, 5), loss=loss)
    X = np.random.default_rng(0).normal(size=(6, 1, 5, 5))
    fitted = [estimator(network, optimizer="adam", learning_rate_init=0.01, batch_size=4, max_iter=2, alpha=0.2,
                        random_state=0, device=device).fit(X, y) for device in ("cpu", "cuda")]
    on_cpu, on_device = fitted
    assert isinstance(on_device.theta_, np.ndarray)
    np.testing.assert_allclose(on_device.loss_curve_, on_cpu.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(on_device.theta_, on_cpu.theta_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(on_device.predict(X), on_cpu.predict(X), rtol=1e-10)
    on_device.partial_fit(X, y)  # continues from the same state on the device
    on_cpu.partial_fit(X, y)
    np.testing.assert_allclose(on_device.theta_, on_cpu.theta_, rtol=1e-10, atol=1e-12)
