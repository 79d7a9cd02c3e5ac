"""NetworkClassifier and NetworkRegressor: scikit-learn's estimator checks with the default network, a declared CNN
fitted from (n, C, H, W) and from flat rows alike, predictions as the network's own forward pass gives them, partial_fit
against fit, and input that does not fit the network refused in one line before anything changes."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastgd.network_estimators import NetworkClassifier, NetworkRegressor
from fastgd.networks import Conv2D, Dense, Flatten, MaxPool2D, Network, NetworkError, ReLU

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
    (NetworkClassifier(small_cnn(3, "mse")), np.zeros((6, 16)), np.arange(6) % 3, r"loss='cross_entropy'"),
    (NetworkRegressor(small_cnn()), np.zeros((6, 16)), np.zeros(6), r"loss='mse'"),
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
