"""fastgd's estimators: scikit-learn's own checks, then what a scikit-learn user relies on."""

import pickle
import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.neural_network import MLPRegressor as SklearnMLPRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastgd import MLPClassifier, MLPRegressor, optim
from fastgd.training import fit_lbfgs


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
                     "adagrad": 0.1, "prodigy": 1.0, "dadapt_adam": 0.1}.get(name, 0.01)
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


@pytest.mark.parametrize("y", [np.array(["cat", "dog", "cat", "emu", "dog", "emu"]),
                               np.array([3, 7, 7, 3, 3, 7]),
                               np.array(["no", "yes", "yes", "no", "no", "no"])])
def test_targets_are_encoded_as_scikit_learns_label_binarizer_does(y):
    """The classifier's own one-hot encoding (fast path) against LabelBinarizer.transform, the oracle."""
    X = np.random.default_rng(0).standard_normal((y.size, 3))
    classifier = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, batch_size=2).fit(X, y)
    expected = classifier._label_binarizer.transform(y).astype(np.float64)
    encoded = classifier._one_hot(y)
    assert encoded.dtype == np.float64
    np.testing.assert_array_equal(encoded, expected)


@pytest.mark.parametrize("y", [np.array([3, 7, 7, 3], dtype=np.uint8), np.array([2, 0, 1, 2, 0], dtype=np.int8),
                               np.array([5, 5, 5]), np.array([-1, 1, 1, -1], dtype=np.int32),
                               np.arange(12) % 5, np.array([1.0, 0.0, 1.0]), np.array(["b", "a"])])
def test_label_binarizer_fast_path_is_scikit_learns_fit(y):
    """The classifier's own reading of integer labels against LabelBinarizer().fit, the oracle."""
    from sklearn.preprocessing import LabelBinarizer

    from fastgd.estimators import _read_labels

    (ours, positions), theirs = _read_labels(y), LabelBinarizer().fit(y)
    if positions is not None:  # each label's place in the classes
        np.testing.assert_array_equal(ours.classes_[positions], y)
    assert (ours.y_type_, ours.sparse_input_) == (theirs.y_type_, theirs.sparse_input_)
    assert ours.classes_.dtype == theirs.classes_.dtype
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(ours.transform(y), theirs.transform(y))
    np.testing.assert_array_equal(ours.inverse_transform(theirs.transform(y)), y)


@pytest.mark.parametrize("y", [np.array([3, 7, 7, 3], dtype=np.uint8), np.array([2, -5, 1, 2, -5], dtype=np.int8),
                               np.array([5, 5, 5]), np.array([0, 10 ** 12, 7, 10 ** 12]),  # too wide: sorted
                               np.array([-(2 ** 62), 2 ** 62, 0]), np.arange(100) % 17,
                               np.array([2 ** 64 - 1, 0, 2 ** 64 - 1], dtype=np.uint64),
                               np.array([2 ** 64 - 1, 2 ** 64 - 2], dtype=np.uint64),
                               np.array([-(2 ** 63), 1 - 2 ** 63, -(2 ** 63)]), np.array([-128, 127], dtype=np.int8),
                               np.array([4, 1], dtype=np.uint16)])
def test_integer_labels_are_read_as_numpy_unique_reads_them(y):
    """Counting labels (the short-span path) and sorting them (the wide one) against np.unique, the oracle."""
    from fastgd.estimators import _integer_classes

    classes, positions = _integer_classes(y)
    expected_classes, expected_positions = np.unique(y, return_inverse=True)
    assert classes.dtype == expected_classes.dtype
    np.testing.assert_array_equal(classes, expected_classes)
    np.testing.assert_array_equal(positions, expected_positions)


def test_plain_arrays_after_a_fit_on_named_features_are_checked_as_scikit_learn_checks_them():
    """After a fit on a data frame, a NumPy matrix gets scikit-learn's warning, and a wrong width its error."""
    pandas = pytest.importorskip("pandas")
    from sklearn.utils.validation import validate_data

    from fastgd.estimators import _validated

    X = np.random.default_rng(0).standard_normal((6, 3))
    ours, theirs = MLPClassifier(), MLPClassifier()
    frame = pandas.DataFrame(X, columns=["a", "b", "c"])
    _validated(ours, frame, reset=True)
    validate_data(theirs, frame, reset=True)
    np.testing.assert_array_equal(ours.feature_names_in_, theirs.feature_names_in_)
    with pytest.warns(UserWarning) as warned_ours:
        assert _validated(ours, X, reset=False) is X
    with pytest.warns(UserWarning) as warned_theirs:
        validate_data(theirs, X, reset=False)
    assert [str(w.message) for w in warned_ours] == [str(w.message) for w in warned_theirs]
    assert "does not have valid feature names" in str(warned_ours[0].message)
    plain = MLPClassifier()
    _validated(plain, X, reset=True)
    with pytest.raises(ValueError, match="X has 2 features, but MLPClassifier is expecting 3 features"):
        _validated(plain, X[:, :2], reset=False)


@pytest.mark.parametrize("seed", [0, 7, np.int64(2 ** 32 - 1), np.uint8(3)])
def test_reseeded_random_state_draws_as_a_new_random_state(seed):
    """fit's integer seeds re-seed one RandomState per thread: the draws of RandomState(seed), the oracle, even
    after the generator was used (the Gaussian draw caches a second value)."""
    from fastgd.estimators import _random_state

    _random_state(1).standard_normal()  # leaves a cached Gaussian and an advanced state behind
    ours, theirs = _random_state(seed), np.random.RandomState(seed)
    np.testing.assert_array_equal(ours.standard_normal(3), theirs.standard_normal(3))
    np.testing.assert_array_equal(ours.randint(2 ** 31 - 1, size=4), theirs.randint(2 ** 31 - 1, size=4))
    generator = np.random.RandomState(5)
    assert _random_state(generator) is generator
    with pytest.raises(ValueError):
        _random_state(-1)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fits_with_one_seed_agree_whatever_ran_between():
    X, y = load_iris(return_X_y=True)
    first = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=4).fit(X, y)
    MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=9, early_stopping=True).fit(X, y)
    again = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=4).fit(X, y)
    np.testing.assert_array_equal(first.theta_, again.theta_)


_RNG = np.random.default_rng(3)


@pytest.mark.parametrize("X, y", [
    (_RNG.standard_normal((6, 3)), np.array([0, 1, 2, 0, 1, 2])),
    (_RNG.standard_normal((5, 2)).astype(np.float32), np.array([1.5, -2.0, 0.0, 3.0, 1.0])),
    (_RNG.standard_normal((4, 2)), np.array([[0, 1], [1, 0], [1, 1], [0, 0]], dtype=np.uint8)),
    (_RNG.standard_normal((4, 2)), np.array([True, False, True, False])),
    (_RNG.standard_normal((3, 1)), _RNG.standard_normal((3, 2))),
])
@pytest.mark.parametrize("estimator_class", [MLPClassifier, MLPRegressor])
def test_plain_array_validation_is_scikit_learns(X, y, estimator_class):
    """The fast path for plain NumPy input gives what scikit-learn's full validate_data, the oracle, gives: the
    same arrays (not copies), n_features_in_, no feature names left from a data frame fitted before."""
    from sklearn.utils.validation import validate_data

    from fastgd.estimators import _plain_features, _plain_targets, _validated

    assert _plain_features(X) and _plain_targets(y, X.shape[0])
    ours, theirs = estimator_class(), estimator_class()
    for estimator in (ours, theirs):
        estimator.feature_names_in_ = np.array(["a"], dtype=object)
    X_ours, y_ours = _validated(ours, X, y, reset=True)
    X_theirs, y_theirs = validate_data(theirs, X, y, multi_output=True, dtype=(np.float64, np.float32),
                                       y_numeric=estimator_class is MLPRegressor, reset=True)
    assert X_ours is X and y_ours is y
    for mine, oracle in ((X_ours, X_theirs), (y_ours, y_theirs)):
        assert mine.dtype == oracle.dtype
        np.testing.assert_array_equal(mine, oracle)
    assert ours.n_features_in_ == theirs.n_features_in_ == X.shape[1]
    assert not hasattr(ours, "feature_names_in_") and not hasattr(theirs, "feature_names_in_")
    assert _validated(ours, X, reset=False) is X
    with pytest.raises(ValueError, match=f"{X.shape[1] + 1} features"):
        _validated(ours, np.zeros((2, X.shape[1] + 1)), reset=False)


@pytest.mark.parametrize("X, y, message", [
    (np.array([[np.nan, 1.0], [0.0, 1.0]]), np.array([0, 1]), "Input X contains NaN"),
    (np.array([[np.inf, 1.0], [0.0, 1.0]]), np.array([0, 1]), "Input X contains infinity"),
    (np.array([[1e308, 1e308], [0.0, 1.0]]), np.array([0, 1]), None),  # the sum overflows; every value is finite
    (np.zeros((2, 2)), np.array([0.0, np.nan]), "Input y contains NaN"),
    (np.zeros((3, 2)), np.array([0, 1]), "inconsistent numbers of samples"),
    (np.zeros((0, 2)), np.array([], dtype=int), "0 sample"),
    (np.zeros((2, 2)), None, "requires y to be passed"),
    (np.asfortranarray(np.arange(6.0).reshape(3, 2)), np.array([0, 1, 1]), None),
    (np.arange(6).reshape(3, 2), np.array([0, 1, 1]), None),  # integers: converted to float64
])
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_other_input_takes_scikit_learns_own_checks(X, y, message):
    """Input the fast path does not take goes to scikit-learn's validate_data, with its messages and conversions."""
    from sklearn.utils.validation import validate_data

    from fastgd.estimators import _plain_features, _plain_targets, _validated

    assert not (_plain_features(X) and y is not None and _plain_targets(y, X.shape[0]))
    if message is not None:
        with pytest.raises(ValueError, match=message):
            _validated(MLPClassifier(), X, y, reset=True)
        return
    X_ours, _ = _validated(MLPClassifier(), X, y, reset=True)
    X_theirs, _ = validate_data(MLPClassifier(), X, y, multi_output=True, dtype=(np.float64, np.float32), reset=True)
    assert X_ours.dtype == X_theirs.dtype and X_ours.flags.c_contiguous == X_theirs.flags.c_contiguous
    np.testing.assert_array_equal(X_ours, X_theirs)


def test_continuous_targets_are_refused_as_scikit_learn_refuses_them():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(max_iter=1).fit(X, np.array([0.5, 1.5, 0.25, 2.0]))


@pytest.mark.parametrize("estimator", [
    MLPRegressor(hidden_layer_sizes=(8,), optimizer="sgd", learning_rate_init=10.0, max_iter=50, random_state=0),
    # a growing loss alone does not stop it early (n_iter_no_change): only the overflow does
    MLPClassifier(hidden_layer_sizes=(8,), activation="identity", optimizer="sgd", learning_rate_init=1e6,
                  max_iter=200, n_iter_no_change=200, random_state=0),
    # the loss grows a hundred-thousand-fold but stays finite: divergence all the same, caught
    # before the default n_iter_no_change would stop it quietly
    MLPClassifier(optimizer="sgd", learning_rate_init=1e6, random_state=0),
], ids=["regressor", "classifier", "finite-growth"])
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


def test_predictions_follow_the_evaluation_point_of_the_rule_that_trains():
    # partial_fit keeps training the fitted optimizer, whatever `optimizer` says since
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), optimizer="asgd", learning_rate_init=0.05, batch_size=50,
                        random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    clf.set_params(optimizer="adam")
    for _ in range(3):
        before = clf.theta_.copy()
        clf.partial_fit(X, y)
        assert clf.optimizer_.rule.name == "asgd" and not np.array_equal(clf.theta_, before)
        np.testing.assert_array_equal(clf.theta_, clf.optimizer_.evaluation_params())
        assert clf.optimizer_.params is not clf.theta_  # the training point stays the optimizer's own


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


@pytest.mark.parametrize("labels", [(0, 1), (3, 7, 9)])
def test_a_warm_start_encodes_the_labels_as_the_first_fit(labels):
    """A warm-started fit reads integer labels in one pass; its targets are still each label's one-hot row (one
    column for two classes), so its L-BFGS fit is fit_lbfgs's from the first fit's weights on those targets."""
    X, y = iris()
    y = np.asarray(labels)[y % len(labels)]
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        theta = clf.theta_.copy()
        clf.set_params(warm_start=True).fit(X, y)
    positions = np.searchsorted(labels, y)
    Y = (positions == 1).astype(float)[:, None] if len(labels) == 2 else np.eye(len(labels))[positions]
    fit_lbfgs(clf._net, theta, X, Y, 3, clf.max_fun, clf.tol)
    np.testing.assert_array_equal(clf.theta_, theta)


def test_a_parameter_set_that_passed_is_checked_again_when_a_value_or_its_type_changes():
    """fit skips scikit-learn's check for a set of values that passed it before, and only for that set: the same
    number as another type (2.0 for 2, 1 for True) is another set."""
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        for changed, message in ((dict(max_iter=2.0), "'max_iter' parameter"), (dict(shuffle=1), "'shuffle' parameter"),
                                 (dict(alpha=-1.0), "'alpha' parameter")):
            with pytest.raises(InvalidParameterError, match=message):
                MLPClassifier(**dict(clf.get_params(), **changed)).fit(X, y)
        assert MLPClassifier(**clf.get_params()).fit(X, y).n_iter_ == 2


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


@pytest.mark.parametrize("name, params, same_as", [
    # SGDR whose first cycle outlasts the fit is plain cosine over that cycle
    ("cosine_restarts", dict(t_0=10, eta_min=0.01), ("cosine", dict(t_max=10, eta_min=0.01))),
    # warm-up then decay over all the epochs is the trapezoid with no constant part
    ("warmup_linear", dict(warmup_fraction=0.3), ("trapezoidal", dict(warmup_fraction=0.3, decay_fraction=0.7))),
])
def test_the_crowded_valley_schedules_reach_the_estimators(name, params, same_as):
    X, y = iris()
    base = dict(hidden_layer_sizes=(8,), optimizer="sgd", learning_rate_init=0.1, max_iter=10, tol=0,
                random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        constant = MLPClassifier(**base).fit(X, y)
        scheduled = MLPClassifier(**base, schedule=name, schedule_params=params).fit(X, y)
        other = MLPClassifier(**base, schedule=same_as[0], schedule_params=same_as[1]).fit(X, y)
    np.testing.assert_array_equal(scheduled.loss_curve_, other.loss_curve_)
    assert scheduled.loss_curve_[0] == constant.loss_curve_[0]  # one full batch: measured before any update ...
    assert scheduled.loss_curve_[-1] != constant.loss_curve_[-1]  # ... then the schedule tells
    with pytest.raises(ValueError, match="Invalid t_mult"):
        MLPClassifier(**base, schedule="cosine_restarts", schedule_params=dict(t_mult=0)).fit(X, y)


def test_train_takes_the_crowded_valley_schedules(tmp_path):
    from cli_harness import assert_refused, run_command

    for name in ("cosine_restarts", "warmup_linear", "trapezoidal"):
        code, out, err = run_command(["train", "--dataset", "iris", "--epochs", "3", "--schedule", name], tmp_path)
        assert code == 0 and "test accuracy" in out, err
    assert_refused(["train", "--dataset", "iris", "--schedule", "sgdr"], tmp_path, "'cosine_restarts'")


@pytest.mark.parametrize("params, message", [
    (dict(optimizer="adamm"), "optimizer must be None or one of"),
    (dict(optimizer_params={"betas": (0.9, 1.5)}), "Invalid beta parameter at index 1: 1.5"),
    (dict(optimizer_params={"momentum": 0.9}), "optimizer_params has unknown keys for adam: ['momentum']"),
    (dict(optimizer_params={"lr": 0.1}), "set learning_rate_init"),
    (dict(schedule="warp"), "The 'schedule' parameter of MLPClassifier must be a str among"),
    (dict(schedule="step", schedule_params={"gamma": -1}), "Invalid gamma"),
    (dict(schedule="step", schedule_params={"speed": 2}), "schedule_params:"),
    (dict(learning_rate_init=0.0),
     "The 'learning_rate_init' parameter of MLPClassifier must be a float in the range (0.0, inf). Got 0.0 instead."),
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes must be > 0"),
    (dict(activation="softmax"), "The 'activation' parameter of MLPClassifier must be a str among"),
    (dict(clip_norm=0.0), "The 'clip_norm' parameter of MLPClassifier must be None or a float in the range (0.0, inf)"),
    (dict(validation_fraction=1.0),
     "The 'validation_fraction' parameter of MLPClassifier must be a float in the range [0.0, 1.0)"),
    (dict(dtype=np.int32), "dtype must be None, float32 or float64"),
    (dict(dtype="nonsense"), "dtype must be None, float32 or float64"),
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


# -- scikit-learn's own parameters ------------------------------------------------------------

@pytest.mark.parametrize("estimator, sklearn_estimator", [(MLPClassifier, SklearnMLPClassifier),
                                                          (MLPRegressor, SklearnMLPRegressor)])
def test_every_scikit_learn_parameter_is_accepted(estimator, sklearn_estimator):
    theirs = sklearn_estimator(max_iter=3).get_params()
    ours = estimator(**theirs)
    assert set(theirs) <= set(ours.get_params())
    X, y = iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y, sample_weight=np.ones(len(y)))
    assert ours.optimizer_.name == "adam" and ours.n_iter_ == 3


@pytest.mark.parametrize("params, rule, hyperparameters", [
    (dict(), "adam", dict(betas=(0.9, 0.999), eps=1e-8)),
    (dict(solver="adam", beta_1=0.8, beta_2=0.99, epsilon=1e-6), "adam", dict(betas=(0.8, 0.99), eps=1e-6)),
    (dict(solver="sgd"), "nesterov", dict(momentum=0.9)),
    (dict(solver="sgd", momentum=0.5, nesterovs_momentum=False), "momentum", dict(momentum=0.5)),
    (dict(solver="sgd", momentum=0.0), "sgd", dict(momentum=0.0)),
    (dict(solver="adam", optimizer_params=dict(amsgrad=True)), "adam", dict(amsgrad=True)),
    (dict(optimizer="lion"), "lion", dict(betas=(0.9, 0.99))),
])
def test_scikit_learn_solvers_map_onto_fastgd_rules(params, rule, hyperparameters):
    X, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.optimizer_.name == rule
    for key, value in hyperparameters.items():
        assert clf.optimizer_.param_groups[0][key] == value


@pytest.mark.parametrize("params", [
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, power_t=0.25),
    dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.1, tol=1e-2, n_iter_no_change=2),
    dict(solver="sgd", momentum=0.0, learning_rate_init=0.1),
    dict(solver="sgd", nesterovs_momentum=False, learning_rate_init=0.05),
    dict(solver="adam", beta_1=0.8, beta_2=0.99, epsilon=1e-6, learning_rate_init=0.01),
], ids=["invscaling", "adaptive", "plain-sgd", "momentum", "adam-betas"])
def test_scikit_learn_settings_train_as_scikit_learn_does(params):
    X, y = iris()
    settings = dict(hidden_layer_sizes=(16,), batch_size=32, max_iter=100, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**settings).fit(X, y)
        theirs = SklearnMLPClassifier(**settings).fit(X, y)
    # the same rule and schedule; the batches are drawn differently (see above)
    assert ours.loss_curve_[-1] == pytest.approx(theirs.loss_curve_[-1], rel=0.25)
    learning_rate = ours.optimizer_.param_groups[0]["lr"]
    if params.get("learning_rate") == "invscaling":
        # the rate of the last epoch: learning_rate_init / (samples seen before it + 1) ** power_t
        before_last = ours.t_ - X.shape[0]
        assert learning_rate == pytest.approx(0.5 / (before_last + 1) ** 0.25, rel=1e-12)
    elif params.get("learning_rate") == "adaptive":
        # divided by 5 at each plateau until at most 1e-6, then stopped, as scikit-learn does
        assert learning_rate <= 1e-6 and ours.n_iter_ < 100
        assert learning_rate == pytest.approx(theirs._optimizer.learning_rate)
    else:
        assert learning_rate == params["learning_rate_init"]


def _constraint_key(constraint):
    """A parameter constraint as something comparable: its kind and what it allows."""
    if isinstance(constraint, str) or constraint is None:
        return constraint
    return (type(constraint).__name__, *(sorted(value) if isinstance(value, set) else value for value in
                                         (getattr(constraint, name, None) for name in
                                          ("type", "left", "right", "closed", "options"))))


@pytest.mark.parametrize("ours, theirs", [(MLPClassifier, "MLPClassifier"), (MLPRegressor, "MLPRegressor")])
def test_the_parameter_constraints_are_scikit_learns_where_it_has_the_parameter(ours, theirs):
    import sklearn.neural_network

    reference = getattr(sklearn.neural_network, theirs)._parameter_constraints
    for name, constraints in reference.items():
        if name == "loss":  # fastgd's regressor has squared_error alone
            assert [_constraint_key(c) for c in ours._parameter_constraints[name]] == [
                ("StrOptions", str, None, None, None, ["squared_error"])]
            continue
        assert [_constraint_key(c) for c in ours._parameter_constraints[name]] == [
            _constraint_key(c) for c in constraints], name
    assert set(ours._parameter_constraints) == set(ours().get_params())


@pytest.mark.parametrize("estimator", [MLPClassifier(max_iter=2), MLPRegressor(max_iter=2)], ids=["clf", "reg"])
def test_every_constrained_parameter_is_refused_by_scikit_learns_own_check(estimator):
    """scikit-learn's check_param_validation: a value outside each parameter's constraint raises InvalidParameterError
    from fit and partial_fit, before anything is fitted."""
    from sklearn.utils.estimator_checks import check_param_validation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_param_validation(type(estimator).__name__, estimator)


@pytest.mark.parametrize("params, message", [
    (dict(solver="lbfgs", schedule="cosine"), "solver='lbfgs' takes no schedule"),
    (dict(solver="newton"), "The 'solver' parameter of MLPClassifier must be a str among"),
    (dict(optimizer="nadam", solver="sgd"), "optimizer='nadam' names the update rule, so solver='sgd'"),
    (dict(optimizer="nadam", beta_1=0.8), "so beta_1=0.8"),
    (dict(optimizer="sgd", learning_rate="invscaling"), "so learning_rate='invscaling'"),
    (dict(solver="sgd", learning_rate="invscaling", schedule="cosine"), "both set the learning-rate schedule"),
    (dict(optimizer_params={"eps": 1e-3}, epsilon=1e-6), "optimizer_params sets 'eps' and so does epsilon=1e-06"),
    (dict(learning_rate="cyclic"), "The 'learning_rate' parameter of MLPClassifier must be a str among"),
    (dict(momentum=1.5), "The 'momentum' parameter of MLPClassifier must be a float in the range [0.0, 1.0]. Got 1.5"),
    (dict(beta_2=1.0), "The 'beta_2' parameter of MLPClassifier must be a float in the range [0.0, 1.0). Got 1.0"),
    (dict(epsilon=0.0), "The 'epsilon' parameter of MLPClassifier must be a float in the range (0.0, inf). Got 0.0"),
    (dict(power_t=-1.0), "The 'power_t' parameter of MLPClassifier must be a float in the range [0.0, inf). Got -1.0"),
    (dict(max_fun=0), "The 'max_fun' parameter of MLPClassifier must be an int in the range [1, inf). Got 0"),
    (dict(nesterovs_momentum="yes"),
     "The 'nesterovs_momentum' parameter of MLPClassifier must be an instance of 'bool'"),
    (dict(learning_rate_init=float("inf")),
     "The 'learning_rate_init' parameter of MLPClassifier must be a float in the range (0.0, inf). Got inf"),
    (dict(tol=float("inf")), "The 'tol' parameter of MLPClassifier must be a float in the range [0.0, inf). Got inf"),
    (dict(batch_size=0),
     "The 'batch_size' parameter of MLPClassifier must be a str among {'auto'} or an int in the range [1, inf). Got 0"),
])
def test_scikit_learn_settings_without_an_equivalent_are_refused(params, message):
    X, y = iris()
    with pytest.raises(ValueError, match=re.escape(message)):
        MLPClassifier(max_iter=2, **params).fit(X, y)


def test_regressor_takes_squared_error_only_and_partial_fit_refuses_early_stopping():
    X, y = iris()
    with pytest.raises(ValueError, match="The 'loss' parameter of MLPRegressor must be a str among {'squared_error'}"):
        MLPRegressor(loss="poisson", max_iter=2).fit(X, X[:, 0])
    clf = MLPClassifier(early_stopping=True)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert not hasattr(clf, "classes_")


def test_n_iter_no_change_may_be_infinite_as_in_scikit_learn():
    X, y = iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=30, tol=10.0, n_iter_no_change=np.inf,
                            random_state=0).fit(X, y)
    assert clf.n_iter_ == 30


# -- sample weights -----------------------------------------------------------------------------

def fitted(estimator, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **fit_params)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_integer_weights_are_repetitions(estimator):
    X, y = iris()
    target = y if estimator is MLPClassifier else X[:, 0]
    weights = np.random.default_rng(0).integers(0, 4, len(y))
    settings = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    weighted = fitted(estimator(**settings), X, target, sample_weight=weights)
    repeated = fitted(estimator(**settings), X.repeat(weights, axis=0), target.repeat(weights))
    np.testing.assert_array_equal(weighted.theta_, repeated.theta_)
    assert weighted.loss_curve_ == repeated.loss_curve_


def test_equal_weights_scale_the_penalty_as_scikit_learn_does():
    # scikit-learn divides the L2 penalty by the sum of the weights: weights c are alpha / c
    X, y = iris()
    settings = dict(hidden_layer_sizes=(8,), max_iter=10, random_state=0)
    weighted = fitted(MLPClassifier(alpha=0.5, **settings), X, y, sample_weight=np.full(len(y), 4.0))
    unweighted = fitted(MLPClassifier(alpha=0.125, **settings), X, y)
    np.testing.assert_array_equal(weighted.theta_, unweighted.theta_)
    # fractions of one unit are repetitions too: 0.5, 1.0, 1.5 are 1, 2, 3 halves
    halves = np.resize([0.5, 1.0, 1.5], len(y))
    by_halves = fitted(MLPClassifier(alpha=0.5, **settings), X, y, sample_weight=halves)
    counts = np.resize([1, 2, 3], len(y))
    by_counts = fitted(MLPClassifier(alpha=1.0, **settings), X.repeat(counts, axis=0), y.repeat(counts))
    np.testing.assert_array_equal(by_halves.theta_, by_counts.theta_)


@pytest.mark.parametrize("weights, message", [
    (lambda n: np.linspace(1.0, np.sqrt(2.0), n), "must be whole multiples of one value"),
    (lambda n: np.r_[1.0, np.full(n - 1, 1e4)], "more than 100 times the data set"),
    (lambda n: np.r_[-1.0, np.ones(n - 1)], "Negative values in data passed to"),
    (lambda n: np.zeros(n), "weight"),
    (lambda n: np.ones(n + 1), "sample_weight.shape"),
])
def test_weights_that_are_not_repetitions_are_refused(weights, message):
    X, y = iris()
    clf = MLPClassifier(max_iter=2)
    with pytest.raises(ValueError, match=re.escape(message)):
        clf.fit(X, y, sample_weight=weights(len(y)))
    assert not hasattr(clf, "theta_")
