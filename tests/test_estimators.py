"""fastgd's estimators: scikit-learn's own checks, then what a scikit-learn user relies on."""

import pickle
import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastgd import MLPClassifier, MLPRegressor, optim


@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_every_rule_learns_iris(name):
    X, y = iris()
    learning_rate = {"adadelta": 1.0, "lion": 1e-3, "sgd": 0.1, "momentum": 0.05, "nesterov": 0.05,
                     "adagrad": 0.1}.get(name, 0.01)
    clf = MLPClassifier(hidden_layer_sizes=(16,), optimizer=name, learning_rate_init=learning_rate, max_iter=300,
                        batch_size=16, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.score(X, y) > 0.9
    assert clf.optimizer_.name == name


def test_final_loss_close_to_scikit_learns_mlp():
    X, y = iris()
    settings = dict(hidden_layer_sizes=(32,), learning_rate_init=1e-2, batch_size=32, max_iter=100, tol=0.0,
                    random_state=0)
    ours = MLPClassifier(**settings)
    theirs = SklearnMLPClassifier(solver="adam", **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    # same network, loss, weights at the start and rule; biases start at zero here
    # and the batches are drawn differently, so the curves are close, not equal
    assert ours.loss_curve_[-1] == pytest.approx(theirs.loss_curve_[-1], rel=0.25)
    assert ours.score(X, y) >= theirs.score(X, y) - 0.03


def test_regressor_fits_diabetes_like_scikit_learn_users_expect():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    reg = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=200, random_state=0,
                       early_stopping=True, n_iter_no_change=20)
    reg.fit(X, y)
    assert reg.score(X, y) > 0.45
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    assert reg.best_loss_ is None and len(reg.validation_scores_) == reg.n_iter_


def test_multilabel_and_binary_outputs():
    X, Y = make_multilabel_classification(n_samples=120, n_classes=4, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(20,), max_iter=300, learning_rate_init=0.01, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.predict(X).shape == Y.shape
    X, y = iris()
    binary = MLPClassifier(max_iter=50, random_state=0).fit(X, y == 2)
    assert binary.n_outputs_ == 1 and binary.predict_proba(X).shape == (150, 2)
    np.testing.assert_allclose(binary.predict_proba(X).sum(axis=1), 1.0)


@pytest.mark.parametrize("estimator", [
    MLPRegressor(hidden_layer_sizes=(8,), optimizer="sgd", learning_rate_init=10.0, max_iter=50, random_state=0),
    # a growing loss alone does not stop it early (n_iter_no_change): only the overflow does
    MLPClassifier(hidden_layer_sizes=(8,), activation="identity", optimizer="sgd", learning_rate_init=1e6,
                  max_iter=200, n_iter_no_change=200, random_state=0),
], ids=["regressor", "classifier"])
def test_divergence_warns_and_leaves_finite_parameters(estimator):
    X, y = iris()
    with pytest.warns(ConvergenceWarning, match="Training diverged at epoch"):
        estimator.fit(X, X[:, 0] * 3 if isinstance(estimator, MLPRegressor) else y)
    assert estimator.diverged_epoch_ is not None and estimator.diverged_epoch_ < estimator.max_iter
    assert len(estimator.loss_curve_) == estimator.diverged_epoch_ - 1 == estimator.n_iter_
    assert np.isfinite(estimator.theta_).all()
    assert estimator.predict(X).shape == (150,)


def test_same_random_state_same_model_bit_for_bit():
    X, y = iris()
    first = MLPClassifier(max_iter=20, random_state=5).fit(X, y)
    second = MLPClassifier(max_iter=20, random_state=5).fit(X, y)
    np.testing.assert_array_equal(first.theta_, second.theta_)
    assert first.loss_curve_ == second.loss_curve_


def test_partial_fit_keeps_the_optimizer_state():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), batch_size=50, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.n_iter_ == 3 and clf.optimizer_.state["step"] == 9 and len(clf.loss_curve_) == 3
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, y + 5)


def test_warm_start_continues_from_the_fitted_weights():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True, random_state=0, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        first_loss = clf.loss_curve_[-1]
        clf.fit(X, y)
    assert clf.n_iter_ == 10 and clf.loss_curve_[-1] < first_loss
    clf.set_params(hidden_layer_sizes=(9,))
    with pytest.raises(ValueError, match="refit without warm_start"):
        clf.fit(X, y)


def test_float32_input_trains_in_float32_unless_told_otherwise():
    X, y = iris()
    clf = MLPClassifier(max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert clf.fit(X.astype(np.float32), y).theta_.dtype == np.float32
        assert clf.set_params(dtype=np.float64).fit(X.astype(np.float32), y).theta_.dtype == np.float64
        assert clf.set_params(dtype=None).fit(X.astype(int), y).theta_.dtype == np.float64


def test_coefs_are_views_into_theta_and_survive_pickling():
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    restored.coefs_[0][...] = 0.0
    assert np.all(restored.theta_[:16] == 0.0)


def test_schedule_and_clipping_reach_the_training_loop():
    X, y = iris()
    base = dict(hidden_layer_sizes=(8,), optimizer="sgd", learning_rate_init=0.1, max_iter=10, tol=0,
                random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        constant = MLPClassifier(**base).fit(X, y)
        decayed = MLPClassifier(**base, schedule="exponential", schedule_params=dict(gamma=0.1)).fit(X, y)
        clipped = MLPClassifier(**base, clip_norm=1e-3).fit(X, y)
    assert constant.loss_curve_[-1] < decayed.loss_curve_[-1]
    assert constant.loss_curve_[-1] < clipped.loss_curve_[-1]


@pytest.mark.parametrize("params, message", [
    (dict(optimizer="adamm"), "optimizer must be one of"),
    (dict(optimizer_params={"betas": (0.9, 1.5)}), "Invalid beta parameter at index 1: 1.5"),
    (dict(optimizer_params={"momentum": 0.9}), "optimizer_params has unknown keys for adam: ['momentum']"),
    (dict(optimizer_params={"lr": 0.1}), "set learning_rate_init"),
    (dict(schedule="warp"), "schedule must be one of"),
    (dict(schedule="step", schedule_params={"gamma": -1}), "Invalid gamma"),
    (dict(schedule="step", schedule_params={"speed": 2}), "schedule_params:"),
    (dict(learning_rate_init=0.0), "learning_rate_init must be > 0.0"),
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes must be > 0"),
    (dict(activation="softmax"), "activation must be one of"),
    (dict(clip_norm=0.0), "clip_norm must be > 0.0"),
    (dict(validation_fraction=1.0), "validation_fraction must be < 1.0"),
    (dict(dtype=np.int32), "dtype must be None, float32 or float64"),
])
def test_bad_parameters_give_one_clear_error(params, message):
    X, y = iris()
    with pytest.raises(ValueError, match=re.escape(message)):
        MLPClassifier(max_iter=2, **params).fit(X, y)


@pytest.mark.parametrize("X, y, message", [
    (np.full((4, 2), np.nan), [0, 1, 0, 1], "Input X contains NaN"),
    (np.zeros((4, 2)), [0, 1, 0], "inconsistent numbers of samples"),
    (np.array([["a", "b"], ["c", "d"]]), [0, 1], "could not convert string to float"),
    (np.zeros((0, 2)), [], "0 sample(s)"),
    (np.zeros(4), [0, 1, 0, 1], "Expected 2D array, got 1D array instead"),
])
def test_bad_input_gets_scikit_learns_errors(X, y, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MLPClassifier(max_iter=2).fit(X, y)


def test_unseen_feature_count_at_predict():
    X, y = iris()
    clf = MLPClassifier(max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4 features"):
        clf.predict(X[:, :3])
