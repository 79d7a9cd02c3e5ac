"""fastgd.optimum: f* of the linear model against scikit-learn's solvers, NumPy's least squares, fastgd's own loss
and finite differences."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

from fastgd import datasets
from fastgd.models import MLP
from fastgd.optimum import GRADIENT_TOLERANCE, optimal_training_loss, training_objective


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


def _mlp(data, alpha):
    return MLP([data.n_features, data.n_outputs], output=data.output, alpha=alpha)


def test_multinomial_optimum_matches_scikit_learns_logistic_regression(digits):
    alpha = 1.0
    f_star, theta = optimal_training_loss(digits, alpha)
    net = _mlp(digits, alpha)
    # fastgd's objective Σ CE_i / n + α/(2n)‖W‖² is scikit-learn's C Σ CE_i + ½‖W‖² divided by n·C, C = 1/α
    with threadpool_limits(1):  # small products: BLAS's threads only wait on a busy machine
        model = LogisticRegression(C=1.0 / alpha, tol=1e-12, max_iter=20000).fit(digits.X_train, digits.y_train)
    theirs = net.pack([model.coef_.T], [model.intercept_])
    assert net.loss(theirs, digits.X_train, digits.Y_train) == pytest.approx(f_star, abs=1e-9)
    assert net.loss(theirs, digits.X_train, digits.Y_train) >= f_star - 1e-12
    coefs, intercepts = net.unpack(theta)
    np.testing.assert_allclose(coefs[0], model.coef_.T, atol=1e-4)
    # scikit-learn stops a little short (its lbfgs): 1e-4 on the parameters, 1e-9 on the objective above
    # the biases are free along (1, ..., 1): compare them centred
    np.testing.assert_allclose(intercepts[0] - intercepts[0].mean(), model.intercept_ - model.intercept_.mean(),
                               atol=1e-4)


def test_fastgds_loss_at_the_optimum_is_f_star_and_its_gradient_vanishes(digits):
    alpha = 0.1
    f_star, theta = optimal_training_loss(digits, alpha)
    net = _mlp(digits, alpha)
    loss, grad = net.loss_grad(theta, digits.X_train, digits.Y_train)
    assert loss == pytest.approx(f_star, abs=1e-13)
    assert net.loss(theta, digits.X_train, digits.Y_train) == pytest.approx(f_star, abs=1e-13)
    assert np.linalg.norm(grad) < 1e-9
    assert np.linalg.norm(training_objective(theta, digits, alpha)[1]) <= GRADIENT_TOLERANCE
    # finite differences of fastgd's loss along random directions: flat at θ*, not flat elsewhere
    rng = np.random.default_rng(0)
    h = 1e-4
    for _ in range(3):
        direction = rng.normal(size=theta.size)
        direction /= np.linalg.norm(direction)
        slope = (net.loss(theta + h * direction, digits.X_train, digits.Y_train)
                 - net.loss(theta - h * direction, digits.X_train, digits.Y_train)) / (2 * h)
        assert abs(slope) < 1e-7
        away = theta + 0.1 * direction
        assert net.loss(away, digits.X_train, digits.Y_train) > f_star
        slope_away = (net.loss(away + h * direction, digits.X_train, digits.Y_train)
                      - net.loss(away - h * direction, digits.X_train, digits.Y_train)) / (2 * h)
        assert slope_away == pytest.approx(float(training_objective(away, digits, alpha)[1] @ direction), rel=1e-5)


def test_two_classes_are_a_softmax_whose_optimum_is_binary_logistic_regression():
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=1)
    data = datasets.from_arrays(X, y, task="classification")
    alpha = 0.5
    f_star, theta = optimal_training_loss(data, alpha)
    assert theta.size == (6 + 1) * 2
    net = _mlp(data, alpha)
    assert net.loss(theta, data.X_train, data.Y_train) == pytest.approx(f_star, abs=1e-13)
    # with W = [-w/2, w/2] the penalty α/(2n)‖W‖² is α/(4n)‖w‖²: scikit-learn's binary model with C = 2/α
    model = LogisticRegression(C=2.0 / alpha, tol=1e-12, max_iter=20000).fit(data.X_train, data.y_train)
    coefs, intercepts = net.unpack(theta)
    np.testing.assert_allclose(coefs[0][:, 1] - coefs[0][:, 0], model.coef_[0], atol=1e-6)
    np.testing.assert_allclose(intercepts[0][1] - intercepts[0][0], model.intercept_[0], atol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 3.0])
def test_regression_optimum_is_ridge_and_least_squares(alpha):
    X, y = make_regression(n_samples=200, n_features=5, noise=5.0, random_state=2)
    data = datasets.from_arrays(X, y, task="regression")
    f_star, theta = optimal_training_loss(data, alpha)
    net = _mlp(data, alpha)
    assert net.loss(theta, data.X_train, data.Y_train) == pytest.approx(f_star, rel=1e-12)
    if alpha == 0.0:
        design = np.hstack([data.X_train, np.ones((data.X_train.shape[0], 1))])
        expected = np.linalg.lstsq(design, data.y_train, rcond=None)[0]
    else:
        # ½ mean squared error + α/(2n)‖W‖² is scikit-learn's ‖y − Xw − b‖² + α‖w‖² over 2n
        model = Ridge(alpha=alpha, solver="cholesky").fit(data.X_train, data.y_train)
        expected = np.concatenate([model.coef_, [model.intercept_]])
    np.testing.assert_allclose(theta, expected, rtol=1e-9, atol=1e-9)
    residual = data.X_train @ theta[:-1] + theta[-1] - data.y_train
    assert f_star == pytest.approx(0.5 * np.mean(residual ** 2) + 0.5 * alpha * np.sum(theta[:-1] ** 2)
                                   / data.X_train.shape[0], rel=1e-12)


def test_refusals(digits):
    with pytest.raises(ValueError, match="not convex"):
        optimal_training_loss(digits, 0.1, hidden_layer_sizes=(16,))
    with pytest.raises(ValueError, match="alpha must be"):
        optimal_training_loss(digits, -1.0)
    with pytest.raises(TypeError, match="Dataset"):
        optimal_training_loss(np.zeros((3, 3)))
    wide = datasets.from_arrays(np.random.default_rng(0).normal(size=(40, 3000)), np.arange(40) % 2,
                                task="classification")
    with pytest.raises(ValueError, match="parameters"):
        optimal_training_loss(wide, 1.0)
