"""NetworkClassifier and NetworkRegressor: scikit-learn's estimator checks with the default network, a declared CNN
fitted from (n, C, H, W) and from flat rows alike, predictions as the network's own forward pass gives them, partial_fit
against fit, and input that does not fit the network refused in one line before anything changes; the L2 penalty
``alpha`` against a plain PyTorch loop with α/(2m)·ΣW² added by hand (fit, warm start, partial_fit), a bad alpha
refused in one line."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastgd.network_estimators import DEFAULT_HIDDEN, NetworkClassifier, NetworkRegressor
from fastgd.networks import Conv2D, Dense, Flatten, MaxPool2D, Network, NetworkError, ReLU
from fastgd.reference import splitmix64_permutation
from tests.network_cases import torch_module

IMAGE_SHAPE = (1, 4, 4)


@parametrize_with_checks([NetworkClassifier(), NetworkRegressor()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def small_cnn(n_outputs=3, loss="cross_entropy"):
    return Network([Conv2D(2, 3, padding="same"), ReLU(), MaxPool2D(2), Flatten(), Dense(n_outputs)],
                   input_shape=IMAGE_SHAPE, loss=loss)


def images(n=30, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n,) + IMAGE_SHAPE)
    X[np.arange(n), 0, y, y] += 3.0  # the class is where a bright pixel is
    return X, y


def test_a_cnn_classifier_learns_and_predicts_as_its_network_does():
    X, y = images()
    clf = NetworkClassifier(small_cnn(), learning_rate_init=0.05, max_iter=40, batch_size=8, random_state=0)
    clf.fit(X, y)
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[0]
    assert clf.score(X, y) > 0.8
    logits = clf.network_.predict(clf.theta_, X)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(X), expected / expected.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[np.argmax(logits, axis=1)])


def test_flat_rows_and_images_fit_the_same_model():
    X, y = images()
    fitted = [NetworkClassifier(small_cnn(), max_iter=3, random_state=0).fit(data, y)
              for data in (X, X.reshape(30, -1))]
    np.testing.assert_array_equal(fitted[0].theta_, fitted[1].theta_)
    np.testing.assert_array_equal(fitted[0].predict_proba(X.reshape(30, -1)), fitted[1].predict_proba(X))


def test_partial_fit_epochs_are_fits_epochs():
    X, y = images()
    whole = NetworkClassifier(small_cnn(), max_iter=3, n_iter_no_change=10, random_state=0).fit(X, y)
    stepwise = NetworkClassifier(small_cnn(), random_state=0)
    for _ in range(3):
        stepwise.partial_fit(X, y, classes=np.arange(3))
    np.testing.assert_array_equal(stepwise.theta_, whole.theta_)
    assert stepwise.loss_curve_ == whole.loss_curve_


def test_regressor_fits_a_cnn_on_images():
    X, _ = images()
    target = X[:, 0, :2, :2].reshape(len(X), -1) @ np.array([[1.0, -1.0], [0.5, 0.0], [0.0, 2.0], [1.0, 1.0]])
    reg = NetworkRegressor(small_cnn(2, "mse"), learning_rate_init=0.02, max_iter=60, random_state=0).fit(X, target)
    assert reg.predict(X).shape == (30, 2)
    assert reg.loss_curve_[-1] < 0.3 * reg.loss_curve_[0]


@pytest.mark.parametrize("estimator, X, y, message", [
    (NetworkClassifier(small_cnn()), np.zeros((6, 1, 5, 4)), np.arange(6) % 3,
     r"layer 0 \(Conv2D\): X has shape \(6, 1, 5, 4\); the network takes \(n, 1, 4, 4\) "
     r"\(input_shape \(1, 4, 4\)\) or \(n, 16\)"),
    (NetworkClassifier(small_cnn()), np.zeros((6, 15)), np.arange(6) % 3, r"X has shape \(6, 15\)"),
    (NetworkClassifier(small_cnn()), np.zeros((6, 16)), np.arange(6) % 2, r"the network has 3 outputs; y has 2"),
    (NetworkClassifier(small_cnn(3, "mse")), np.zeros((6, 16)), np.arange(6) % 3,
     r"NetworkClassifier trains networks with loss 'cross_entropy' or 'binary_cross_entropy'; this network's loss is "
     r"'mse'"),
    (NetworkRegressor(small_cnn()), np.zeros((6, 16)), np.zeros(6),
     r"NetworkRegressor trains networks with loss 'mse' or 'squared_error'"),
    (NetworkClassifier("no_such_net"), np.zeros((6, 16)), np.arange(6) % 3, r"no known network 'no_such_net'"),
])
def test_input_that_does_not_fit_the_network_is_refused_in_one_line(estimator, X, y, message):
    with pytest.raises(NetworkError, match=message) as raised:
        estimator.fit(X, y)
    assert "\n" not in str(raised.value)
    assert not hasattr(estimator, "theta_")


def test_a_fitted_network_refuses_images_of_another_shape_at_predict():
    X, y = images()
    clf = NetworkClassifier(small_cnn(), max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(NetworkError, match=r"X has shape \(2, 1, 2, 8\)"):
        clf.predict(np.zeros((2, 1, 2, 8)))


def test_a_refused_first_partial_fit_leaves_the_classifier_unfitted():
    clf = NetworkClassifier(small_cnn(), random_state=0)
    with pytest.raises(NetworkError, match="layer 0"):
        clf.partial_fit(np.zeros((6, 1, 5, 4)), np.arange(6) % 3, classes=np.arange(3))
    assert not hasattr(clf, "classes_") and not hasattr(clf, "theta_")
    X, y = images()
    four = NetworkClassifier(small_cnn(4), random_state=0).partial_fit(X, y, classes=np.arange(4))
    np.testing.assert_array_equal(four.classes_, np.arange(4))  # a class y does not hold yet


# -- the L2 penalty alpha: a plain PyTorch loop with α/(2m)·ΣW² added by hand is the oracle ---------------------------

def initial_theta(net, random_state):
    """θ₀ as the estimators draw it: a seed from ``random_state``, then the network's torch-style initialisation."""
    seed = int(np.random.RandomState(random_state).randint(np.iinfo(np.int32).max))
    return net.init(random_state=seed, scheme="torch", dtype=np.float64), seed


def torch_fit(net, theta, X, Y, seed, batch_size, alphas, make_optimizer):
    """One epoch per entry of ``alphas`` over splitmix64's batches (the estimators' order) from θ: the loss of a
    batch of m rows is torch's plus alpha/(2m) times the sum of squares of every weight (dim > 1), not the biases.
    Returns (θ, each epoch's mean batch loss)."""
    torch = pytest.importorskip("torch", reason="a plain PyTorch loop is the oracle of the penalised fit")
    module = torch_module(net, theta)
    optimizer = make_optimizer(module.parameters())
    inputs, targets = torch.from_numpy(X.reshape((len(X),) + net.input_shape)), torch.from_numpy(Y)
    data_loss = {"cross_entropy": torch.nn.functional.cross_entropy, "mse": torch.nn.functional.mse_loss,
                 "binary_cross_entropy": torch.nn.functional.binary_cross_entropy_with_logits}[net.loss_name]
    losses = []
    for epoch, alpha in enumerate(alphas):
        order = splitmix64_permutation(len(X), seed, epoch)
        total = 0.0
        for start in range(0, len(X), batch_size):
            rows = torch.from_numpy(order[start:start + batch_size])
            optimizer.zero_grad()
            squares = sum((p * p).sum() for p in module.parameters() if p.dim() > 1)
            loss = data_loss(module(inputs[rows]), targets[rows]) + alpha / (2 * len(rows)) * squares
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / len(X))
    return np.concatenate([p.detach().numpy().ravel() for p in module.parameters()]), losses


def dense_regression_net():
    return Network([Dense(5), ReLU(), Dense(2)], input_shape=(6,), loss="mse")


def regression_data(n=30, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    return X, X[:, :2] @ np.array([[1.0, -0.5], [2.0, 0.5]]) + 0.1 * rng.normal(size=(n, 2))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["cnn_classifier_adam", "dense_regressor_sgd_momentum", "default_network_adam"])
def test_a_penalised_fit_follows_a_pytorch_loop_with_the_penalty_added_by_hand(kind):
    torch = pytest.importorskip("torch", reason="a plain PyTorch loop is the oracle of the penalised fit")
    if kind == "cnn_classifier_adam":
        net, (X, y), alpha = small_cnn(), images(), 0.3
        estimator = NetworkClassifier(net, optimizer="adam", learning_rate_init=0.01, alpha=alpha, batch_size=8,
                                      max_iter=3, tol=0.0, random_state=0)
        Y = np.eye(3)[y]

        def make_optimizer(params):
            return torch.optim.Adam(params, lr=0.01)
    elif kind == "dense_regressor_sgd_momentum":
        net, (X, Y), alpha = dense_regression_net(), regression_data(), 0.2
        y = Y
        estimator = NetworkRegressor(net, optimizer="sgd", optimizer_params=dict(momentum=0.9), learning_rate_init=0.02,
                                     alpha=alpha, batch_size=8, max_iter=3, tol=0.0, random_state=0)

        def make_optimizer(params):
            return torch.optim.SGD(params, lr=0.02, momentum=0.9)
    else:  # the network made at fit from the data: DEFAULT_HIDDEN ReLU units
        (X, Y), alpha = regression_data(), 0.5
        net, y = Network([Dense(DEFAULT_HIDDEN), ReLU(), Dense(2)], input_shape=(6,), loss="mse"), Y
        estimator = NetworkRegressor(learning_rate_init=0.01, alpha=alpha, batch_size=8, max_iter=3, tol=0.0,
                                     random_state=0)

        def make_optimizer(params):
            return torch.optim.Adam(params, lr=0.01)
    declared = estimator.network
    theta, seed = initial_theta(net, 0)
    expected_theta, expected_losses = torch_fit(net, theta, X, Y, seed, 8, [alpha] * 3, make_optimizer)
    plain_theta, _ = torch_fit(net, theta, X, Y, seed, 8, [0.0] * 3, make_optimizer)
    estimator.fit(X, y)
    assert estimator.network_.alpha == alpha
    assert declared is None or declared.alpha == 0.0  # the declaration itself is left as it was
    assert np.abs(expected_theta - plain_theta).max() > 1e-3  # the penalty changed the run
    np.testing.assert_allclose(estimator.loss_curve_, expected_losses, rtol=1e-10)
    np.testing.assert_allclose(estimator.theta_, expected_theta, rtol=0, atol=1e-10 * np.abs(expected_theta).max())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_a_new_alpha_set_between_fits_takes_effect_from_the_next_epoch(how):
    torch = pytest.importorskip("torch", reason="a plain PyTorch loop is the oracle of the penalised fit")
    net, (X, y) = small_cnn(), images()
    clf = NetworkClassifier(net, learning_rate_init=0.01, alpha=0.1, batch_size=8, max_iter=1, tol=0.0,
                            warm_start=how == "warm_start", random_state=0)
    if how == "warm_start":
        clf.fit(X, y)
        clf.set_params(alpha=0.5, max_iter=2).fit(X, y)
    else:
        clf.partial_fit(X, y, classes=np.arange(3))
        clf.set_params(alpha=0.5)
        clf.partial_fit(X, y)
        clf.partial_fit(X, y)
    theta, seed = initial_theta(net, 0)
    expected_theta, expected_losses = torch_fit(net, theta, X, np.eye(3)[y], seed, 8, [0.1, 0.5, 0.5],
                                                lambda params: torch.optim.Adam(params, lr=0.01))
    assert clf.network_.alpha == 0.5
    np.testing.assert_allclose(clf.loss_curve_, expected_losses, rtol=1e-10)
    np.testing.assert_allclose(clf.theta_, expected_theta, rtol=0, atol=1e-10 * np.abs(expected_theta).max())


@pytest.mark.parametrize("estimator, message", [
    (NetworkClassifier(small_cnn(), alpha=-1.0), r"The 'alpha' parameter of NetworkClassifier must be a float in the "
                                                 r"range \[0(\.0)?, inf\)"),
    (NetworkClassifier(small_cnn(), alpha="0.1"), r"The 'alpha' parameter of NetworkClassifier must be"),
    (NetworkRegressor(alpha=np.inf), r"The 'alpha' parameter of NetworkRegressor must be a float in the range "
                                     r"\[0(\.0)?, inf\)\. Got inf"),
    (NetworkRegressor(alpha=True), r"^alpha must be a finite number >= 0, got True$"),
    (NetworkClassifier(small_cnn().with_alpha(0.2), alpha=0.1),
     r"^the network is declared with alpha=0.2 and NetworkClassifier has alpha=0.1: give the L2 penalty as the "
     r"estimator's alpha$"),
])
def test_a_bad_alpha_is_refused_in_one_line_before_fitting(estimator, message):
    X, y = images(6)
    with pytest.raises(ValueError, match=message) as raised:
        estimator.fit(X, y)
    assert "\n" not in str(raised.value)
    assert not hasattr(estimator, "theta_") and not hasattr(estimator, "n_features_in_")


# -- a network declared in scikit-learn's order: scikit-learn's MLP, fastgd's MLP estimators the oracle --------------

def _scikit_learn_case(kind):
    """(estimator, fastgd's MLP estimator of the same network and settings, X, y)."""
    from sklearn.datasets import load_breast_cancer, load_iris

    from fastgd import MLPClassifier, MLPRegressor
    from fastgd.networks import Tanh

    settings = dict(optimizer="adam", learning_rate_init=0.01, alpha=1e-3, batch_size=16, max_iter=4, random_state=3)
    if kind == "multiclass_cross_entropy":
        X, y = load_iris(return_X_y=True)
        net = Network([Dense(5), Tanh(), Dense(3)], input_shape=(4,), loss="cross_entropy",
                      parameter_order="scikit-learn")
        return NetworkClassifier(net, **settings), MLPClassifier((5,), "tanh", **settings), X, y
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    if kind == "binary_cross_entropy_one_output":
        net = Network([Dense(4), ReLU(), Dense(1)], input_shape=(30,), loss="binary_cross_entropy",
                      parameter_order="scikit-learn")
        return NetworkClassifier(net, **settings), MLPClassifier((4,), **settings), X, y
    net = Network([Dense(4), ReLU(), Dense(2)], input_shape=(30,), loss="squared_error", parameter_order="scikit-learn")
    return NetworkRegressor(net, **settings), MLPRegressor((4,), **settings), X, np.column_stack([X[:, 0], y])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["multiclass_cross_entropy", "binary_cross_entropy_one_output", "squared_error"])
def test_a_scikit_learn_order_network_fits_fastgds_mlp_estimator_bit_for_bit(kind):
    estimator, mlp, X, y = _scikit_learn_case(kind)
    assert estimator.init is None  # the declaration's own scheme: scikit-learn's
    estimator.fit(X, y)
    mlp.fit(X, y)
    initial = estimator.network_.init(random_state=np.random.RandomState(3))
    assert not np.array_equal(estimator.theta_, initial)  # four epochs moved θ
    assert np.array_equal(estimator.theta_, mlp.theta_)
    assert estimator.loss_curve_ == mlp.loss_curve_
    assert np.array_equal(estimator.predict(X), mlp.predict(X))
    if kind != "squared_error":
        assert np.array_equal(estimator.predict_proba(X), mlp.predict_proba(X))
        assert estimator.score(X, y) > 0.5  # above chance (a third or a half) after four epochs


@pytest.mark.parametrize("estimator, message", [
    (NetworkClassifier(Network([Dense(3)], input_shape=(4,), parameter_order="scikit-learn"), init="torch"),
     "init='torch' is not a scheme of a network in scikit-learn's parameter order ('scikit-learn'); init=None takes "
     "the declaration's own ('scikit-learn')"),
    (NetworkClassifier(init="scikit-learn"),
     "init='scikit-learn' is not a scheme of a network in torch's parameter order ('torch', 'lecture'); init=None "
     "takes the declaration's own ('torch')"),
    (NetworkClassifier(Network([Dense(1)], input_shape=(4,), loss="binary_cross_entropy",
                               parameter_order="scikit-learn")),
     "a network of loss 'binary_cross_entropy' classifies two classes with one output; this one has 1 and y has 3 "
     "classes (declare loss='cross_entropy' with one output per class)"),
    (NetworkRegressor(Network([Dense(1)], input_shape=(4,), loss="binary_cross_entropy",
                              parameter_order="scikit-learn")),
     "NetworkRegressor trains networks with loss 'mse' or 'squared_error'; this network's loss is "
     "'binary_cross_entropy'"),
], ids=["torch_scheme_on_scikit_learn_order", "scikit_learn_scheme_on_torch_order", "binary_network_three_classes",
        "classification_loss_in_a_regressor"])
def test_a_scheme_or_loss_of_the_wrong_kind_is_refused_in_one_line_before_anything_changes(estimator, message):
    X, y = np.random.default_rng(0).normal(size=(9, 4)), np.arange(9) % 3
    with pytest.raises(NetworkError) as raised:
        estimator.fit(X, y)
    assert str(raised.value) == message
    assert not hasattr(estimator, "theta_") and not hasattr(estimator, "classes_")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_one_logit_binary_cross_entropy_network_classifies_two_classes_as_a_pytorch_loop_trains_it():
    """torch's BCEWithLogitsLoss on one logit, the second class (sorted) the positive one; the oracle a plain PyTorch
    loop from the same θ on the same batches. The default network keeps two outputs and cross-entropy."""
    torch = pytest.importorskip("torch", reason="a plain PyTorch loop is the oracle of the fit")
    X, y = images(24)
    positive = y == 2
    labels = np.where(positive, "spot", "plain")  # sorted: "plain" then "spot", the logit's class
    net = small_cnn(1, "binary_cross_entropy")
    clf = NetworkClassifier(net, learning_rate_init=0.02, alpha=0.1, batch_size=8, max_iter=3, tol=0.0,
                            random_state=0).fit(X, labels)
    theta, seed = initial_theta(net, 0)
    expected_theta, expected_losses = torch_fit(net, theta, X, positive.astype(np.float64)[:, np.newaxis], seed, 8,
                                                [0.1] * 3, lambda params: torch.optim.Adam(params, lr=0.02))
    np.testing.assert_allclose(clf.loss_curve_, expected_losses, rtol=1e-10)
    np.testing.assert_allclose(clf.theta_, expected_theta, rtol=0, atol=1e-10 * np.abs(expected_theta).max())
    logits = clf.network_.predict(clf.theta_, X)[:, 0]
    probability = torch.sigmoid(torch.from_numpy(logits)).numpy()
    np.testing.assert_allclose(clf.predict_proba(X), np.column_stack([1 - probability, probability]), rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), np.where(logits > 0, "spot", "plain"))
    assert list(clf.classes_) == ["plain", "spot"]
    assert NetworkClassifier(max_iter=1).fit(X, labels).network_.n_outputs == 2
