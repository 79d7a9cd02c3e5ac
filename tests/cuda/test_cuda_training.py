"""MLP training on the device against the same training on the CPU: losses, θ, optimizer state, divergence."""

import pickle
import re
import warnings

import numpy as np
import pytest
from numba import cuda

from fastgd import MLP, MLPClassifier, MLPRegressor, optim
from fastgd.training import Training, make_schedule
from rule_cases import VARIANTS, cpu_only

# the steps that sum over every parameter first, or call LAPACK per tensor, have no CUDA form (refused:
# test_cuda_updates)
RULES = sorted(name for name in optim.OPTIMIZERS if not cpu_only(name, {})
               and (name not in VARIANTS or not cpu_only(name, VARIANTS[name][-1])))


def data(n_samples, n_inputs, n_outputs, output, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_inputs))
    if output == "softmax":
        Y = np.eye(n_outputs)[rng.integers(0, n_outputs, n_samples)]
    elif output == "logistic":
        Y = rng.integers(0, 2, (n_samples, n_outputs)).astype(float)
    else:
        Y = X @ rng.normal(size=(n_inputs, n_outputs)) + 0.1 * rng.normal(size=(n_samples, n_outputs))
    return X, Y


def train_both(layer_sizes, activation, output, alpha, dtype, rule, hyperparameters, batch_size, n_epochs=2,
               schedule=None, clip_norm=None, n_samples=23):
    """The same training on the CPU and on the device: (cpu training, device training)."""
    X, Y = data(n_samples, layer_sizes[0], layer_sizes[-1], output)
    net = MLP(layer_sizes, activation, output, alpha=alpha, dtype=dtype)
    theta = net.init(random_state=0)
    runs = []
    for params in (theta.copy(), cuda.to_device(theta)):
        optimizer = optim.OPTIMIZERS[rule](params, layout=net.layout, **hyperparameters)
        training = Training(net, optimizer, X, Y, batch_size, seed=7,
                            schedule=schedule, clip_norm=clip_norm)
        training.run(n_epochs)
        runs.append(training)
    return runs


def assert_same_training(on_cpu, on_device, rtol):
    assert on_device.history.diverged_epoch == on_cpu.history.diverged_epoch
    np.testing.assert_allclose(on_device.history.loss, on_cpu.history.loss, rtol=rtol)
    theta = on_device.theta.copy_to_host()
    assert theta.dtype == on_cpu.theta.dtype
    np.testing.assert_allclose(theta, on_cpu.theta, rtol=rtol, atol=rtol * np.abs(on_cpu.theta).max())
    cpu_state, device_state = on_cpu.optimizer.state, on_device.optimizer.state
    assert device_state["step"] == cpu_state["step"]
    for key, value in cpu_state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(device_state[key].copy_to_host(), value, rtol=rtol,
                                       atol=rtol * max(1e-3, np.abs(value).max()))
        else:
            assert device_state[key] == pytest.approx(value, rel=1e-15)


CONFIGURATIONS = {
    "tanh-softmax-minibatch": dict(layer_sizes=[4, 6, 3], activation="tanh", output="softmax", alpha=0.01,
                                   rule="adam", hyperparameters=dict(lr=0.01), batch_size=8),
    "relu-logistic-2hidden-fullbatch": dict(layer_sizes=[5, 7, 6, 3], activation="relu", output="logistic",
                                            alpha=0.001, rule="nadam", hyperparameters=dict(lr=0.01),
                                            batch_size=23),
    "logistic-identity-clip-cosine": dict(layer_sizes=[4, 5, 2], activation="logistic", output="identity",
                                          alpha=0.0, rule="momentum", hyperparameters=dict(lr=0.05),
                                          batch_size=6, clip_norm=0.5,
                                          schedule=make_schedule("cosine", n_epochs=2, warmup_steps=3)),
    "identity-softmax-sgd1": dict(layer_sizes=[3, 4], activation="identity", output="softmax", alpha=0.1,
                                  rule="sgd", hyperparameters=dict(lr=0.1), batch_size=5),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_device_training_follows_cpu_training(name, dtype):
    on_cpu, on_device = train_both(dtype=dtype, **CONFIGURATIONS[name])
    assert len(on_cpu.history.loss) == 2
    assert_same_training(on_cpu, on_device, rtol=1e-10 if dtype == np.float64 else 2e-5)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_trains_on_the_device_as_on_the_cpu(rule):
    on_cpu, on_device = train_both([4, 5, 3], "tanh", "softmax", 0.01, np.float64, rule, VARIANTS[rule][-1],
                                   batch_size=10)
    assert_same_training(on_cpu, on_device, rtol=1e-10)


def test_divergence_stops_where_the_cpu_stops_and_restores_theta():
    on_cpu, on_device = train_both([3, 4, 2], "relu", "identity", 0.0, np.float64, "sgd", dict(lr=1e3),
                                   batch_size=5, n_epochs=3)
    assert on_cpu.history.diverged_epoch is not None
    assert_same_training(on_cpu, on_device, rtol=1e-10)
    with pytest.raises(RuntimeError, match="training diverged"):
        on_device.epoch()


def test_an_epoch_reads_from_the_device_once(monkeypatch):
    X, Y = data(23, 4, 3, "softmax")
    net = MLP([4, 6, 3], "tanh", "softmax", dtype=np.float32)
    training = Training(net, optim.Adam(cuda.to_device(net.init(random_state=0))), X, Y, batch_size=8)
    device_array_type = type(training.theta)
    reads = []
    original = device_array_type.copy_to_host
    monkeypatch.setattr(device_array_type, "copy_to_host", lambda self, *args, **kwargs: reads.append(self.shape)
                        or original(self, *args, **kwargs))
    training.epoch()
    assert len(reads) == 1


def test_data_already_on_the_device_gives_the_same_run():
    X, Y = data(23, 4, 3, "softmax")
    net = MLP([4, 6, 3], "tanh", "softmax", dtype=np.float32)
    theta = net.init(random_state=0)
    runs = []
    for inputs, targets in ((X, Y), (cuda.to_device(X.astype(np.float32)), cuda.to_device(Y.astype(np.float32)))):
        training = Training(net, optim.Adam(cuda.to_device(theta)), inputs, targets, batch_size=8, seed=3)
        runs.append((training.run(2).loss, training.theta.copy_to_host()))
    # θ bit for bit; the losses to rounding: rows add their loss to it atomically, in no fixed order
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-14)


@pytest.mark.parametrize("make_data, error, message", [
    (lambda X, Y: (cuda.to_device(X), cuda.to_device(Y)), TypeError, "X on the device has dtype float64"),
    (lambda X, Y: (cuda.to_device(X[:, :3].astype(np.float32)), cuda.to_device(Y)), ValueError,
     "X on the device must have shape (23, 4)"),
    (lambda X, Y: (cuda.to_device(X.astype(np.float32)), Y), TypeError, "X and Y must both be device arrays"),
    (lambda X, Y: (cuda.to_device(np.where(X > 1, np.nan, X).astype(np.float32)),
                   cuda.to_device(Y.astype(np.float32))), ValueError, "X contains NaN or infinity"),
])
def test_bad_device_data_is_refused(make_data, error, message):
    X, Y = data(23, 4, 3, "softmax")
    net = MLP([4, 6, 3], "tanh", "softmax", dtype=np.float32)
    optimizer = optim.Adam(cuda.to_device(net.init(random_state=0)))
    with pytest.raises(error, match=re.escape(message)):
        Training(net, optimizer, *make_data(X, Y), batch_size=8)


# -- the estimators with device="cuda" ---------------------------------------------------------

def fitted(estimator_class, device, X, y, **parameters):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged in a few epochs
        return estimator_class(device=device, **parameters).fit(X, y)


@pytest.mark.parametrize("estimator_class, output", [(MLPClassifier, "softmax"), (MLPRegressor, "identity")])
def test_estimators_fit_on_the_device_as_on_the_cpu(estimator_class, output):
    X, Y = data(30, 4, 3 if output == "softmax" else 2, output)
    y = Y.argmax(axis=1) if output == "softmax" else Y
    parameters = dict(hidden_layer_sizes=(5,), batch_size=10, max_iter=3, random_state=0,
                      learning_rate_init=0.01)
    on_cpu = fitted(estimator_class, "cpu", X, y, **parameters)
    on_device = fitted(estimator_class, "cuda", X, y, **parameters)
    assert on_device.optimizer_.device == "cuda" and isinstance(on_device.theta_, np.ndarray)
    np.testing.assert_allclose(on_device.loss_curve_, on_cpu.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(on_device.theta_, on_cpu.theta_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(on_device.predict(X), on_cpu.predict(X), rtol=1e-9)


def test_partial_fit_moves_the_optimizer_and_its_state_between_devices():
    X, Y = data(30, 4, 3, "softmax")
    y = Y.argmax(axis=1)
    parameters = dict(hidden_layer_sizes=(5,), batch_size=10, random_state=0, learning_rate_init=0.01)
    staying = MLPClassifier(**parameters)
    moving = MLPClassifier(**parameters)
    for device in ("cpu", "cuda", "cuda", "cpu"):
        staying.partial_fit(X, y, classes=[0, 1, 2])
        moving.set_params(device=device).partial_fit(X, y, classes=[0, 1, 2])
        assert moving.optimizer_.device == device
    assert moving.optimizer_.state["step"] == staying.optimizer_.state["step"] == 12
    np.testing.assert_allclose(moving.loss_curve_, staying.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(moving.theta_, staying.theta_, rtol=1e-10, atol=1e-12)


def test_a_device_estimator_pickles_with_its_optimizer_on_the_cpu():
    X, Y = data(30, 4, 3, "softmax")
    y = Y.argmax(axis=1)
    estimator = fitted(MLPClassifier, "cuda", X, y, hidden_layer_sizes=(5,), batch_size=10, max_iter=2,
                       random_state=0)
    restored = pickle.loads(pickle.dumps(estimator))
    assert restored.optimizer_.device == "cpu" and restored.optimizer_.params is restored.theta_
    np.testing.assert_array_equal(restored.predict_proba(X), estimator.predict_proba(X))
    for key, value in restored.optimizer_.state.items():
        expected = estimator.optimizer_.state[key]
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, expected.copy_to_host())
        else:
            assert value == expected
    restored.partial_fit(X, y)  # back to the device, state and all
    estimator.partial_fit(X, y)
    assert restored.optimizer_.device == "cuda"
    np.testing.assert_array_equal(restored.theta_, estimator.theta_)


def test_early_stopping_on_the_device_keeps_the_best_theta():
    X, Y = data(40, 4, 3, "softmax")
    y = Y.argmax(axis=1)
    parameters = dict(hidden_layer_sizes=(5,), batch_size=8, max_iter=4, random_state=0, early_stopping=True,
                      validation_fraction=0.25, learning_rate_init=0.05)
    on_cpu = fitted(MLPClassifier, "cpu", X, y, **parameters)
    on_device = fitted(MLPClassifier, "cuda", X, y, **parameters)
    assert on_device.validation_scores_ == on_cpu.validation_scores_
    np.testing.assert_allclose(on_device.theta_, on_cpu.theta_, rtol=1e-10, atol=1e-12)
