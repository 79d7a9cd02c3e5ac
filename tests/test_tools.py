"""The lecture's tools: test functions and trajectories, loss landscapes, bundled data sets."""

import numpy as np
import pytest

from fastgd import MLP, datasets, functions, landscape, optim
from rule_cases import ROSENBROCK

RULES = sorted(optim.OPTIMIZERS)


# -- test functions --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(functions.FUNCTIONS))
def test_function_gradients_match_central_differences(name):
    code = functions.FUNCTIONS[name].code
    rng = np.random.default_rng(0)
    for x, y in rng.uniform(-2, 2, (20, 2)):
        _, gx, gy = functions.value_and_gradient(code, x, y)
        h = 1e-6
        value = functions.value_and_gradient
        fx = (value(code, x + h, y)[0] - value(code, x - h, y)[0]) / (2 * h)
        fy = (value(code, x, y + h)[0] - value(code, x, y - h)[0]) / (2 * h)
        np.testing.assert_allclose([gx, gy], [fx, fy], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(functions.FUNCTIONS))
def test_stated_minimum_is_a_stationary_point_below_the_start(name):
    spec = functions.FUNCTIONS[name]
    value, gx, gy = functions.value_and_gradient(spec.code, *spec.minimum)
    assert abs(gx) < 1e-12 and abs(gy) < 1e-12
    assert value < functions.value_and_gradient(spec.code, *spec.start)[0]


@pytest.mark.parametrize("rule", RULES)
def test_compiled_trajectory_equals_stepping_the_optimizer(rule):
    hyperparameters, _, _ = ROSENBROCK[rule]
    path = functions.trajectory("rosenbrock", rule, n_steps=300, **hyperparameters)
    params = np.array(functions.FUNCTIONS["rosenbrock"].start)
    optimizer = optim.OPTIMIZERS[rule](params, layout=[(1, 2)], **hyperparameters)  # as trajectory lays it out
    expected = [params.copy()]
    def closure():  # torch's step(closure), for every rule: SAM evaluates it twice, AliG reads the loss
        value, gx, gy = functions.value_and_gradient(functions.ROSENBROCK, *params)
        return value, np.array([gx, gy])

    for _ in range(300):
        optimizer.step(closure)
        expected.append(params.copy())
    np.testing.assert_array_equal(path, np.array(expected))


@pytest.mark.parametrize("function, rule", [("beale", "lamb"), ("rosenbrock", "rprop"), ("saddle", "adam")])
def test_best_learning_rate_prefers_paths_that_stay_in_view(function, rule):
    # checked against the grid searched here, independently: the lowest end among in-bounds paths
    x_min, x_max, y_min, y_max = functions.FUNCTIONS[function].bounds
    code = functions.FUNCTIONS[function].code
    ends = {}
    for rate in functions.LEARNING_RATE_GRID:
        path = functions.trajectory(function, rule, 300, lr=rate)
        inside = (np.isfinite(path).all() and (path[:, 0] >= x_min).all() and (path[:, 0] <= x_max).all()
                  and (path[:, 1] >= y_min).all() and (path[:, 1] <= y_max).all())
        if inside:
            ends[rate] = functions.value_and_gradient(code, path[-1, 0], path[-1, 1])[0]
    assert ends, "some rate of the grid keeps the path in view"
    assert functions.best_learning_rate(function, rule, 300) == min(ends, key=ends.get)


def test_trajectory_reaches_the_minimum_and_marks_divergence():
    path = functions.trajectory("quadratic", "momentum", n_steps=2000, lr=0.01)
    np.testing.assert_allclose(path[-1], [0.0, 0.0], atol=1e-6)
    exploded = functions.trajectory("quadratic", "sgd", n_steps=2000, lr=10.0)
    first_bad = np.argmax(~np.isfinite(exploded).all(axis=1))
    assert 0 < first_bad < 2000 and np.isnan(exploded[first_bad + 1:]).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(function="sphere"), "unknown function"),
    (dict(function="beale", optimizer="no_such_rule"), "unknown optimizer"),
    (dict(function="beale", n_steps=-1), "n_steps must be"),
    (dict(function="beale", start=(1.0, np.nan)), "start must be two finite numbers"),
    (dict(function="beale", lr=-1.0), "Invalid learning rate"),
])
def test_bad_trajectory_requests_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        functions.trajectory(**kwargs)


# -- loss landscapes ---------------------------------------------------------------------------

def small_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    Y = np.eye(2)[(X[:, 0] * X[:, 1] > 0).astype(int)]
    net = MLP([3, 5, 2], "tanh", "softmax", alpha=1e-3)
    return net, net.init(random_state=0), X, Y


def test_filter_normalised_direction_has_each_units_norm():
    net, theta, _, _ = small_problem()
    direction = landscape.random_direction(net, theta, random_state=1)
    for d, w in zip(net.unpack(direction)[0], net.unpack(theta)[0]):
        np.testing.assert_allclose(np.linalg.norm(d, axis=0), np.linalg.norm(w, axis=0))
    for bias in net.unpack(direction)[1]:
        assert np.all(bias == 0)


@pytest.mark.parametrize("threaded", [False, True], ids=["serial", "threaded"])
def test_plane_equals_the_loss_at_every_shifted_point(threaded, monkeypatch):
    # the threaded form is taken from THREADED_GRID_WORK points × rows × parameters: 0 takes it for any grid
    monkeypatch.setattr(landscape, "THREADED_GRID_WORK", 0 if threaded else float("inf"))
    net, theta, X, Y = small_problem()
    first = landscape.random_direction(net, theta, random_state=1)
    second = landscape.random_direction(net, theta, random_state=2)
    alphas, betas = np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 3)
    grid = landscape.plane(net, theta, X, Y, alphas, betas, directions=(first, second))
    assert grid.shape == (3, 5)
    for row, b in enumerate(betas):
        for column, a in enumerate(alphas):
            assert grid[row, column] == pytest.approx(net.loss(theta + a * first + b * second, X, Y), rel=1e-12)
    line = landscape.line(net, theta, X, Y, alphas, direction=first)
    np.testing.assert_allclose(line, grid[1], rtol=1e-12)
    assert line[2] == pytest.approx(net.loss(theta, X, Y), rel=1e-12)  # alpha = 0: θ itself


# -- data sets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(datasets.BUNDLED))
def test_bundled_sets_are_split_standardised_and_fixed(name):
    data = datasets.load(name)
    assert data.task == datasets.BUNDLED[name]
    n_total = data.X_train.shape[0] + data.X_test.shape[0]
    assert data.X_test.shape[0] == int(np.ceil(0.25 * n_total))
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0.0, atol=1e-10)
    assert data.Y_train.shape == (data.X_train.shape[0], data.n_outputs)
    assert not data.X_train.flags.writeable
    if data.task == "classification":
        assert set(np.unique(data.y_train)) == set(range(data.n_classes))
        np.testing.assert_array_equal(data.Y_train.argmax(axis=1), data.y_train)
    else:
        assert data.y_train.mean() == pytest.approx(0.0, abs=1e-12)
    from sklearn import datasets as sk
    X, _ = getattr(sk, f"load_{name}")(return_X_y=True)
    assert n_total == X.shape[0]


def test_synthetic_sets_of_any_size():
    data = datasets.synthetic("classification", 400, 7, n_classes=3)
    assert data.X_train.shape == (300, 7) and data.n_classes == 3
    regression = datasets.synthetic("regression", 200, 5)
    assert regression.output == "identity" and regression.Y_test.shape == (50, 1)
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.load("mnist")


@pytest.mark.parametrize("task, n_classes", [("classification", 2), ("classification", 3), ("regression", 2)])
def test_a_generated_set_is_named_one_way_and_loads_by_that_name(task, n_classes):
    name = datasets.synthetic_name(task, 200, 6, n_classes)
    data = datasets.load(name)
    made = datasets.synthetic(task, 200, 6, n_classes)
    assert data.name == made.name == name and data.content_hash == made.content_hash
    assert datasets.check_name(name) == (task, 6, n_classes if task == "classification" else 1)
    if task == "classification":
        assert data.n_classes == n_classes and len(np.unique(data.y_train)) == n_classes
    with pytest.raises(ValueError, match="only a classification set has classes"):
        datasets.check_name("synthetic-regression-200x6-3classes")


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_synthetic_name_is_accepted_exactly_when_its_set_can_be_made(task):
    import warnings

    for n_samples in range(0, 13):
        for n_features in range(0, 5):
            name = f"synthetic-{task}-{n_samples}x{n_features}"
            try:
                datasets.check_name(name)
                accepted = True
            except ValueError:
                accepted = False
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # a NaN from a split too small to standardise is a failure too
                    data = datasets.synthetic(task, n_samples, n_features)
                made = np.isfinite(data.X_train).all() and np.isfinite(data.X_test).all()
            except (ValueError, RuntimeWarning):
                made = False
            assert accepted == made, name


@pytest.mark.parametrize("kwargs, message", [
    (dict(alphas=[0.0, float("nan")]), "alphas must be finite numbers"),
    (dict(alphas=[]), "alphas must be a non-empty 1-D sequence"),
    (dict(alphas=[[0.0, 1.0]]), "alphas must be a non-empty 1-D sequence"),
    (dict(alphas=["far"]), "alphas must be a sequence of numbers"),
    (dict(direction=np.zeros(3)), "direction must be an array of θ's shape"),
    (dict(direction="up"), "direction must be an array of θ's shape"),
])
def test_bad_landscape_requests_are_refused(kwargs, message):
    net = MLP([2, 3, 1], "tanh", "identity", alpha=0.0)
    theta = net.init(random_state=0)
    X = np.random.default_rng(0).normal(size=(8, 2))
    arguments = dict(alphas=np.linspace(-1, 1, 3), random_state=0) | kwargs
    with pytest.raises(ValueError, match=message):
        landscape.line(net, theta, X, X[:, :1], **arguments)
