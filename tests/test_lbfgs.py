"""L-BFGS: fastgd.optim.LBFGS against torch.optim.LBFGS and the NumPy oracle, the compiled full-batch run, and
solver="lbfgs" in the estimators against scikit-learn's."""

import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.neural_network import MLPRegressor as SklearnMLPRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from fastgd import MLP, MLPClassifier, MLPRegressor, optim
from fastgd.kernels import lbfgs as lbfgs_kernels
from fastgd.kernels import linesearch
from fastgd.reference import ReferenceLBFGS
from fastgd.training import LBFGS_HISTORY_SIZE, LBFGS_TOLERANCE_CHANGE, fit_lbfgs


def _softmax_problem(dtype=np.float64, hidden=(6,), alpha=1e-3):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 40)]
    net = MLP([5, *hidden, 3], activation="tanh", output="softmax", alpha=alpha, dtype=dtype)
    return net, X, Y, net.init(random_state=0)


def _closure(net, theta, X, Y):
    return lambda: net.loss_grad(theta, X, Y)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("history_size", [100, 3])
def test_matches_torch_lbfgs_on_an_mlp(line_search_fn, history_size):
    """Parameters, first losses and torch's counters after each of 4 steps of 7 iterations (28 in all), float64.

    The bound holds over these iterations: beyond them, on this non-convex loss, the last bits of the inner
    products (torch's BLAS sums in another order) grow about tenfold every seven iterations.
    """
    torch = pytest.importorskip("torch", reason="torch.optim.LBFGS is the reference")
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.normal(size=(40, 5)))
    y = torch.tensor(rng.integers(0, 3, 40))

    def network():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(5, 8, dtype=torch.float64), torch.nn.Tanh(),
                                   torch.nn.Linear(8, 3, dtype=torch.float64))

    settings = dict(line_search_fn=line_search_fn, history_size=history_size, max_iter=7)
    theirs = network()
    their_optimizer = torch.optim.LBFGS(theirs.parameters(), **settings)

    def their_closure():
        their_optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(theirs(X), y)
        loss.backward()
        return loss

    evaluated = network()
    tensors = list(evaluated.parameters())
    params = torch.cat([p.detach().reshape(-1) for p in tensors]).numpy().copy()
    ours = optim.LBFGS(params, **settings)

    def our_closure():  # torch's loss and gradient at our params
        with torch.no_grad():
            offset = 0
            for p in tensors:
                p.copy_(torch.from_numpy(params[offset:offset + p.numel()]).view_as(p))
                offset += p.numel()
                p.grad = None
        loss = torch.nn.functional.cross_entropy(evaluated(X), y)
        loss.backward()
        return loss.item(), torch.cat([p.grad.reshape(-1) for p in tensors]).numpy()

    for _ in range(4):
        their_loss = their_optimizer.step(their_closure).item()
        our_loss = ours.step(our_closure)
        their_params = torch.cat([p.detach().reshape(-1) for p in theirs.parameters()]).numpy()
        np.testing.assert_allclose(params, their_params, rtol=0, atol=1e-10)
        assert our_loss == pytest.approx(their_loss, abs=1e-10)
        state = their_optimizer.state[their_optimizer._params[0]]
        assert ours.state == {"n_iter": state["n_iter"], "func_evals": state["func_evals"]}


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_matches_the_numpy_oracle_over_many_steps(line_search_fn):
    """A convex loss (softmax regression with a penalty), 12 steps of 10 iterations, a history of 4 that wraps."""
    net, X, Y, start = _softmax_problem(hidden=(), alpha=0.1)
    ours_theta, oracle_theta = start.copy(), start.copy()
    settings = dict(line_search_fn=line_search_fn, history_size=4, max_iter=10, lr=0.5)
    ours = optim.LBFGS(ours_theta, **settings)
    oracle = ReferenceLBFGS(oracle_theta, **settings)
    for _ in range(12):
        assert ours.step(_closure(net, ours_theta, X, Y)) == pytest.approx(
            oracle.step(_closure(net, oracle_theta, X, Y)), abs=1e-12)
        np.testing.assert_allclose(ours_theta, oracle_theta, rtol=0, atol=1e-10)
        assert ours.state == {key: oracle.state[key] for key in ("n_iter", "func_evals")}
    assert oracle.state["n_iter"] > 20  # the ring buffer of 4 wrapped many times


def test_the_compiled_full_batch_run_is_the_optimizers_step():
    """fit_lbfgs (one compiled call, the model's pass as a callback) takes the very steps of optim.LBFGS with a
    Python closure over the same pass and settings."""
    net, X, Y, start = _softmax_problem()
    compiled_theta, stepped_theta = start.copy(), start.copy()
    result = fit_lbfgs(net, compiled_theta, X, Y, max_iter=30, max_fun=1000, tol=1e-6, stopping="torch")
    stepper = optim.LBFGS(stepped_theta, max_iter=30, max_eval=1000, tolerance_grad=1e-6,
                          tolerance_change=LBFGS_TOLERANCE_CHANGE, history_size=LBFGS_HISTORY_SIZE,
                          line_search_fn="strong_wolfe")
    stepper.step(_closure(net, stepped_theta, X, Y))
    np.testing.assert_allclose(compiled_theta, stepped_theta, rtol=0, atol=1e-12)
    assert (result.n_iter, result.n_evals, result.status) == (30, stepper.state["func_evals"], 1)
    assert result.loss == pytest.approx(net.loss(compiled_theta, X, Y), abs=1e-12)
    assert result.loss < 0.5 * net.loss(start, X, Y)


def test_a_fit_after_fits_of_other_sizes_and_of_its_own_is_the_same_fit():
    """fit_lbfgs keeps its buffers for the thread's next fit of the same sizes: they start it as new ones would."""
    runs = []
    for hidden in ((6,), (6,), (4,), (6,)):
        net, X, Y, theta = _softmax_problem(hidden=hidden)
        result = fit_lbfgs(net, theta, X, Y, max_iter=30, max_fun=1000, tol=1e-6)
        runs.append((theta, result))
    for theta, result in (runs[1], runs[3]):
        np.testing.assert_array_equal(theta, runs[0][0])
        assert result == runs[0][1]
    assert runs[2][0].size != runs[0][0].size


def test_float32_stays_float32_and_converges():
    net, X, Y, theta = _softmax_problem(np.float32)
    first = net.loss(theta, X, Y)
    optimizer = optim.LBFGS(theta, line_search_fn="strong_wolfe", max_iter=50)
    optimizer.step(_closure(net, theta, X, Y))
    assert theta.dtype == np.float32 and np.isfinite(theta).all()
    assert net.loss(theta, X, Y) < 0.2 * first


@pytest.mark.parametrize("settings, message", [
    (dict(history_size=0), "LBFGS: history_size must be an integer >= 1, got 0"),
    (dict(max_iter=0), "LBFGS: max_iter must be an integer >= 1, got 0"),
    (dict(max_eval=0), "LBFGS: max_eval must be an integer >= 1, got 0"),
    (dict(lr=-1.0), "LBFGS: Invalid learning rate: -1.0"),
    (dict(tolerance_grad=float("nan")), "LBFGS: tolerance_grad must be a real number >= 0"),
    (dict(line_search_fn="armijo"), "LBFGS: line_search_fn must be None or 'strong_wolfe', got 'armijo'"),
])
def test_bad_settings_are_refused_in_one_line(settings, message):
    theta = np.ones(3)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        optim.LBFGS(theta, **settings)
    assert "\n" not in str(error.value)


def test_max_eval_defaults_to_five_quarters_of_max_iter_fixed_at_construction_as_torchs():
    torch = pytest.importorskip("torch", reason="torch.optim.LBFGS is the reference")
    ours = optim.LBFGS(np.ones(2), max_iter=9)
    theirs = torch.optim.LBFGS([torch.ones(2, requires_grad=True)], max_iter=9)
    assert ours.param_groups[0]["max_eval"] == theirs.param_groups[0]["max_eval"] == 11


def test_a_step_without_a_closure_or_with_a_wrong_gradient_changes_nothing():
    theta = np.array([1.0, 2.0])
    optimizer = optim.LBFGS(theta)
    with pytest.raises(TypeError, match="LBFGS.step needs a closure"):
        optimizer.step()
    with pytest.raises(ValueError, match=re.escape("the closure's grad has shape (3,), params (2,)")):
        optimizer.step(lambda: (1.0, np.zeros(3)))
    optimizer.param_groups[0]["history_size"] = 0
    with pytest.raises(ValueError, match="history_size"):
        optimizer.step(lambda: (float(theta @ theta), 2 * theta))
    np.testing.assert_array_equal(theta, [1.0, 2.0])
    assert optimizer.state == {"n_iter": 0, "func_evals": 0}


# -- solver="lbfgs" ------------------------------------------------------------------------------------------------

def _standardised(load, regression=False):
    X, y = load(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return (X, (y - y.mean()) / y.std()) if regression else (X, y)


def _from_scikit_learns_weights(ours, theirs, X, y):
    """Fit ``ours`` from the initial weights ``theirs`` (unfitted) draws: scikit-learn's _initialize, replayed."""
    n_outputs = 1 if isinstance(theirs, SklearnMLPRegressor) else len(np.unique(y)) if len(np.unique(y)) > 2 else 1
    theirs._random_state = check_random_state(theirs.random_state)
    sizes = [X.shape[1], *theirs.hidden_layer_sizes, n_outputs]
    initial = [theirs._init_coef(n_in, n_out, np.float64) for n_in, n_out in zip(sizes, sizes[1:])]
    max_iter = ours.max_iter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.set_params(max_iter=1).fit(X, y)
    for (weights, biases), our_weights, our_biases in zip(initial, ours.coefs_, ours.intercepts_):
        our_weights[...], our_biases[...] = weights, biases
    return ours.set_params(max_iter=max_iter, warm_start=True).fit(X, y)


@pytest.mark.parametrize("name, load, ours, theirs, hidden, alpha", [
    ("iris", load_iris, MLPClassifier, SklearnMLPClassifier, 16, 1.0),
    ("wine", load_wine, MLPClassifier, SklearnMLPClassifier, 16, 1.0),
    ("diabetes", load_diabetes, MLPRegressor, SklearnMLPRegressor, 8, 3.0),
    ("wine", load_wine, MLPClassifier, SklearnMLPClassifier, 16, 1e-4),
    ("breast_cancer", load_breast_cancer, MLPClassifier, SklearnMLPClassifier, 16, 1e-4),
])
def test_final_loss_within_one_percent_of_scikit_learns(name, load, ours, theirs, hidden, alpha):
    """From scikit-learn's initial weights, to convergence, with a penalty and at the default alpha (the same
    algorithm, L-BFGS-B with its Moré-Thuente line search, over passes that round differently)."""
    X, y = _standardised(load, regression=name == "diabetes")
    settings = dict(hidden_layer_sizes=(hidden,), solver="lbfgs", alpha=alpha, max_iter=1000, random_state=0)
    fitted = _from_scikit_learns_weights(ours(**settings), theirs(**settings), X, y)
    reference = theirs(**settings).fit(X, y)
    assert fitted.loss_ == pytest.approx(reference.loss_, rel=0.01)
    assert 0 < fitted.n_iter_ < 1000
    assert fitted.loss_ == pytest.approx(fitted._net.loss(fitted.theta_, X.astype(np.float64),
                                                          fitted._one_hot(y) if name != "diabetes"
                                                          else y.reshape(-1, 1)), rel=1e-12)


def _fit_warning(estimator, X, y):
    """(the fitted estimator, the text of its one ConvergenceWarning or None)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(X, y)
    texts = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(texts) <= 1
    return estimator, texts[0] if texts else None


@pytest.mark.parametrize("limits", [dict(max_iter=3), dict(max_iter=100, max_fun=5), dict(max_iter=2, max_fun=2)])
def test_attributes_and_warnings_as_scikit_learns(limits):
    """The same n_iter_ and the same ConvergenceWarning, word for word, when SciPy's iteration or evaluation limit
    stops the fit (SciPy checks both once an iteration ends, the iterations first)."""
    X, y = _standardised(load_iris)
    settings = dict(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0, **limits)
    ours, our_warning = _fit_warning(MLPClassifier(**settings), X, y)
    theirs, their_warning = _fit_warning(SklearnMLPClassifier(**settings), X, y)
    assert their_warning is not None and our_warning == their_warning
    assert ours.n_iter_ == theirs.n_iter_
    for estimator in (ours, theirs):
        assert not hasattr(estimator, "loss_curve_") and not hasattr(estimator, "best_loss_")
        assert not hasattr(estimator, "partial_fit")
    with pytest.raises(ValueError, match=re.escape("solver='lbfgs' takes no clip_norm")):
        MLPClassifier(**dict(settings, clip_norm=1.0)).fit(X, y)


@pytest.mark.above_kernels
def test_solver_lbfgs_passes_scikit_learns_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for estimator in (MLPClassifier(solver="lbfgs", hidden_layer_sizes=(10,)),
                          MLPRegressor(solver="lbfgs", hidden_layer_sizes=(10,))):
            check_estimator(estimator)


def test_a_weighted_fit_is_the_fit_of_the_repeated_data_and_ignores_early_stopping():
    """scikit-learn's meaning of a whole-number weight (repetitions), and L-BFGS's full batch: no validation split."""
    X, y = _standardised(load_iris)
    weights = np.where(np.arange(len(y)) % 3 == 0, 2.0, 1.0)
    settings = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=40, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = MLPClassifier(**settings, early_stopping=True).fit(X, y, sample_weight=weights)
        repeated = MLPClassifier(**settings).fit(np.repeat(X, 2 - (np.arange(len(y)) % 3 != 0), axis=0),
                                                 np.repeat(y, 2 - (np.arange(len(y)) % 3 != 0)))
    np.testing.assert_array_equal(weighted.theta_, repeated.theta_)
    assert weighted.loss_ == repeated.loss_ and not hasattr(weighted, "validation_scores_")


def test_a_float32_fit_reaches_the_float64_fits_loss():
    X, y = _standardised(load_iris)
    settings = dict(hidden_layer_sizes=(16,), solver="lbfgs", alpha=1.0, max_iter=500, random_state=0)
    single = MLPClassifier(**settings, dtype="float32").fit(X, y)
    double = MLPClassifier(**settings, dtype="float64").fit(X, y)
    assert single.theta_.dtype == np.float32 and double.theta_.dtype == np.float64
    # both stop once max |g| <= tol = 1e-4, at points whose losses agree to about that, not to float32's rounding
    assert single.loss_ == pytest.approx(double.loss_, rel=1e-3)


@pytest.mark.parametrize("name, load, alpha", [
    ("wine", load_wine, 1e-4), ("breast_cancer", load_breast_cancer, 1e-4), ("iris", load_iris, 1.0),
    ("iris", load_iris, 1e-4),
])
def test_scikit_learns_default_fit_same_loss_and_iterations(name, load, alpha):
    """scikit-learn's defaults (100 hidden units, max_iter=200, tol=1e-4) from its initial weights: L-BFGS-B's line
    search takes scikit-learn's steps, so the same final loss (to 1e-6 here, where rounding does not steer the
    path; iris at alpha 1e-4 was 13% off with torch's strong Wolfe), the very iteration count and no warning."""
    X, y = _standardised(load)
    settings = dict(solver="lbfgs", alpha=alpha, random_state=0)
    fitted = _from_scikit_learns_weights(MLPClassifier(**settings), SklearnMLPClassifier(**settings), X, y)
    reference, warning = _fit_warning(SklearnMLPClassifier(**settings), X, y)
    assert fitted.loss_ == pytest.approx(reference.loss_, rel=1e-6)
    assert warning is None and fitted.lbfgs_result_.status == 0
    assert fitted.n_iter_ == reference.n_iter_


def _scipy_stopping_run(fun, x0, max_iter=15000, max_fun=15000, gtol=1e-5, line_search=lbfgs_kernels.STRONG_WOLFE,
                        points=None):
    """The kernel's SciPy stopping over a Python function ``fun(x) -> (f, g)``, its generator driven from Python:
    (x, scalars); every point evaluated is appended to ``points`` where given."""
    x = np.array(x0, dtype=np.float64)
    vectors, directions, steps, history, scalars = lbfgs_kernels.new_buffers(x.size, LBFGS_HISTORY_SIZE, x.dtype)
    settings = np.zeros(lbfgs_kernels.N_SETTINGS)
    settings[[lbfgs_kernels.LR, lbfgs_kernels.MAX_ITER, lbfgs_kernels.MAX_EVAL]] = 1.0, max_iter, max_fun
    settings[lbfgs_kernels.TOLERANCE_GRAD], settings[lbfgs_kernels.TOLERANCE_CHANGE] = gtol, LBFGS_TOLERANCE_CHANGE
    settings[lbfgs_kernels.LINE_SEARCH], settings[lbfgs_kernels.SCIPY_STOPPING] = line_search, 1.0
    grad, evaluation = np.zeros_like(x), np.zeros(1)
    for _ in lbfgs_kernels.lbfgs_step(x, grad, evaluation, vectors, directions, steps, history, scalars, settings):
        if points is not None:
            points.append(x.copy())
        evaluation[0], grad[...] = fun(x)
    return x, scalars


def _scipy(fun, x0, points=None, **options):
    from scipy.optimize import minimize

    def recorded(x):
        if points is not None:
            points.append(x.copy())
        return fun(x)

    return minimize(recorded, np.array(x0, dtype=np.float64), method="L-BFGS-B", jac=True, options=options)


def _rosenbrock(x):
    f = float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))
    g = np.zeros_like(x)
    g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    return f, g


@pytest.mark.parametrize("gtol, message", [(1e-3, 401), (0.0, 402)])
def test_scipy_stopping_ends_where_scipys_l_bfgs_b_ends(gtol, message):
    """Rosenbrock in 6 dimensions: the same minimum and the same reason to stop as SciPy's (gtol; with gtol 0, the
    loss's relative decrease)."""
    x0 = [-1.2, 1.0, -1.2, 1.0, -1.2, 1.0]
    x, scalars = _scipy_stopping_run(_rosenbrock, x0, gtol=gtol)
    reference = _scipy(_rosenbrock, x0, gtol=gtol)
    assert reference.status == 0 and reference.message == lbfgs_kernels.SCIPY_MESSAGES[message]
    assert (scalars[lbfgs_kernels.STATUS], scalars[lbfgs_kernels.MESSAGE]) == (0, message)
    np.testing.assert_allclose(x, reference.x, atol=1e-4)
    np.testing.assert_allclose(x, 1.0, atol=1e-4)
    assert 0 < scalars[lbfgs_kernels.STEP_ITERS] < 3 * reference.nit


@pytest.mark.parametrize("options", [dict(maxiter=5), dict(maxfun=7), dict(maxiter=4, maxfun=4)])
def test_scipy_stopping_limits_count_as_scipys(options):
    """Iterations: the limit first; evaluations: more than max_fun once an iteration ends (SciPy's sf.nfev > maxfun,
    the first evaluation included)."""
    x0 = [-1.2, 1.0]
    x, scalars = _scipy_stopping_run(_rosenbrock, x0, max_iter=options.get("maxiter", 15000),
                                     max_fun=options.get("maxfun", 15000))
    reference = _scipy(_rosenbrock, x0, **options)
    assert reference.status == scalars[lbfgs_kernels.STATUS] == 1
    assert reference.message == lbfgs_kernels.SCIPY_MESSAGES[int(scalars[lbfgs_kernels.MESSAGE])]
    if reference.message == lbfgs_kernels.SCIPY_MESSAGES[504]:
        assert scalars[lbfgs_kernels.STEP_ITERS] == options["maxiter"]
    else:
        assert scalars[lbfgs_kernels.STEP_EVALS] > options["maxfun"]
        assert scalars[lbfgs_kernels.STEP_EVALS] - options["maxfun"] <= lbfgs_kernels.SCIPY_MAX_LINE_SEARCH


def test_scipy_stopping_ends_abnormally_where_no_step_lowers_the_loss():
    """A gradient of the wrong sign: SciPy's L-BFGS-B ends 'ABNORMAL' (status 2) after no iteration, θ unchanged."""
    def wrong(x):
        return float(x @ x), -2 * x

    x, scalars = _scipy_stopping_run(wrong, [1.0, 2.0, 3.0])
    reference = _scipy(wrong, [1.0, 2.0, 3.0])
    assert (reference.status, reference.nit, reference.message) == (2, 0, "ABNORMAL: ")
    assert (scalars[lbfgs_kernels.STATUS], scalars[lbfgs_kernels.STEP_ITERS]) == (2, 0)
    assert lbfgs_kernels.SCIPY_MESSAGES[int(scalars[lbfgs_kernels.MESSAGE])] == reference.message
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


def test_fit_lbfgs_refuses_an_unknown_stopping():
    net, X, Y, theta = _softmax_problem()
    with pytest.raises(ValueError, match="stopping must be 'scipy' or 'torch', got 'sklearn'"):
        fit_lbfgs(net, theta, X, Y, 10, 10, 1e-4, stopping="sklearn")


# -- L-BFGS-B's line search: Moré-Thuente ----------------------------------------------------------------------------

def _phi_more_thuente(beta1, beta2):
    """Moré and Thuente's (1994) functions 4-6: φ(t) = γ(β₁)·√((1−t)² + β₂²) + γ(β₂)·√(t² + β₁²), γ(β) = √(1+β²) − β."""
    def gamma(beta):
        return np.sqrt(1 + beta ** 2) - beta

    return (lambda t: gamma(beta1) * np.sqrt((1 - t) ** 2 + beta2 ** 2) + gamma(beta2) * np.sqrt(t ** 2 + beta1 ** 2),
            lambda t: gamma(beta1) * (t - 1) / np.sqrt((1 - t) ** 2 + beta2 ** 2)
            + gamma(beta2) * t / np.sqrt(t ** 2 + beta1 ** 2))


def _phi_wiggly(t, beta=0.01, waves=39):
    """Moré and Thuente's function 3: a kink smoothed over [1 − β, 1 + β] plus a sine of 39 half-waves: (φ, φ')."""
    if t <= 1 - beta:
        value, slope = 1 - t, -1.0
    elif t >= 1 + beta:
        value, slope = t - 1, 1.0
    else:
        value, slope = (t - 1) ** 2 / (2 * beta) + beta / 2, (t - 1) / beta
    frequency = waves * np.pi / 2
    return (value + 2 * (1 - beta) / (waves * np.pi) * np.sin(frequency * t),
            slope + (1 - beta) * np.cos(frequency * t))


LINE_SEARCH_CASES = {
    "rational": (lambda t: -t / (t ** 2 + 2), lambda t: (t ** 2 - 2) / (t ** 2 + 2) ** 2, 1e-3, 0.1),
    "quintic": (lambda t: (t + 0.004) ** 5 - 2 * (t + 0.004) ** 4,
                lambda t: 5 * (t + 0.004) ** 4 - 8 * (t + 0.004) ** 3, 0.1, 0.1),
    "wiggly": (lambda t: _phi_wiggly(t)[0], lambda t: _phi_wiggly(t)[1], 0.1, 0.1),
    "mt4": (*_phi_more_thuente(1e-3, 1e-3), 1e-3, 1e-3),
    "mt5": (*_phi_more_thuente(1e-2, 1e-3), 1e-3, 1e-3),
    "mt6": (*_phi_more_thuente(1e-3, 1e-2), 1e-3, 1e-3),
    "lbfgsb_quadratic": (lambda t: (t - 3.0) ** 2, lambda t: 2 * (t - 3.0), 1e-3, 0.9),
}


def _against_scipys_dcsrch(phi, derivative, ftol, gtol, xtol, step_min, step_max, first_step):
    """Run our search and SciPy's Python port of MINPACK-2's dcsrch (scipy.optimize._dcsrch.DCSRCH) side by side,
    asserting the same trial steps (to 1e-12) and tasks; returns the last task."""
    dcsrch_module = pytest.importorskip("scipy.optimize._dcsrch", reason="SciPy's dcsrch is the oracle")
    oracle = dcsrch_module.DCSRCH(phi, derivative, ftol, gtol, xtol, step_min, step_max)
    state = np.zeros(linesearch.N_STATE)
    their_step, _, _, their_task = oracle._iterate(first_step, phi(0.0), derivative(0.0), b"START")
    our_task = linesearch.dcsrch_start(first_step, phi(0.0), derivative(0.0), state, ftol, gtol, xtol, step_min,
                                       step_max)
    our_step, trials = first_step, 0
    while True:
        assert linesearch.TASK_NAMES[our_task] == their_task.decode()[:len(linesearch.TASK_NAMES[our_task])]
        assert our_step == pytest.approx(their_step, rel=1e-12, abs=1e-300)
        if our_task != linesearch.EVALUATE:
            return our_task
        trials += 1
        assert trials < 200
        their_step, _, _, their_task = oracle._iterate(their_step, phi(their_step), derivative(their_step),
                                                       their_task)
        our_step, our_task = linesearch.dcsrch(our_step, phi(our_step), derivative(our_step), state)


@pytest.mark.parametrize("case", sorted(LINE_SEARCH_CASES))
@pytest.mark.parametrize("first_step", [1e-3, 1e-1, 10.0, 1e3])
@pytest.mark.parametrize("xtol, step_max", [(0.1, 1e10), (1e-10, 1e10), (0.1, 4.0)])
def test_more_thuente_takes_scipys_dcsrch_trial_steps(case, first_step, xtol, step_max):
    """Step by step against SciPy's dcsrch on Moré and Thuente's test functions (and L-BFGS-B's tolerances on a
    parabola): the same trial steps and the same end (converged, or which warning)."""
    phi, derivative, ftol, gtol = LINE_SEARCH_CASES[case]
    task = _against_scipys_dcsrch(phi, derivative, ftol, gtol, xtol, 0.0, step_max, min(first_step, step_max))
    assert task in (linesearch.CONVERGED, linesearch.WARNING_XTOL)


@pytest.mark.parametrize("phi, derivative, step_min, step_max, first_step, task", [
    (lambda t: -t, lambda t: -1.0, 0.0, 4.0, 0.5, linesearch.WARNING_STPMAX),
    (lambda t: (t - 0.01) ** 2, lambda t: 2 * (t - 0.01), 1.0, 10.0, 2.0, linesearch.WARNING_STPMIN),
    (lambda t: -t if t <= 1.0 else 10.0, lambda t: -1.0, 0.0, 1e10, 0.3, linesearch.WARNING_ROUNDING),
])
def test_more_thuente_warns_where_scipys_dcsrch_does(phi, derivative, step_min, step_max, first_step, task):
    """At a bound with the conditions unmet, and where rounding leaves no room (a slope that never turns, a value
    that jumps past t = 1): the same steps and warning."""
    assert _against_scipys_dcsrch(phi, derivative, 1e-3, 0.1, 1e-10, step_min, step_max, first_step) == task


def test_more_thuente_meets_both_conditions_where_it_converges():
    """Independently of SciPy: where the search says CONVERGED, the step meets the sufficient decrease and the
    curvature condition; it refuses an ascent direction and a first step beyond its bounds."""
    for phi, derivative, ftol, gtol in LINE_SEARCH_CASES.values():
        state = np.zeros(linesearch.N_STATE)
        step, task = 1e-3, linesearch.dcsrch_start(1e-3, phi(0.0), derivative(0.0), state, ftol, gtol, 1e-10, 0.0,
                                                   1e10)
        while task == linesearch.EVALUATE:
            step, task = linesearch.dcsrch(step, phi(step), derivative(step), state)
        assert task == linesearch.CONVERGED
        assert phi(step) <= phi(0.0) + ftol * step * derivative(0.0)
        assert abs(derivative(step)) <= gtol * abs(derivative(0.0))
    state = np.zeros(linesearch.N_STATE)
    assert linesearch.dcsrch_start(1.0, 0.0, 1.0, state, 1e-3, 0.9, 0.1, 0.0, 1e10) == linesearch.ERROR
    assert linesearch.dcsrch_start(2.0, 0.0, -1.0, state, 1e-3, 0.9, 0.1, 0.0, 1.0) == linesearch.ERROR


LOGISTIC_FEATURES = np.random.default_rng(0).normal(size=(40, 8))
LOGISTIC_LABELS = np.where(np.random.default_rng(1).random(40) < 0.5, 1.0, -1.0)


def _logistic(w):
    """A penalised logistic regression's mean loss and gradient."""
    margins = LOGISTIC_LABELS * (LOGISTIC_FEATURES @ w)
    return (float(np.mean(np.logaddexp(0, -margins)) + 1e-3 * w @ w),
            LOGISTIC_FEATURES.T @ (-LOGISTIC_LABELS / (1 + np.exp(margins))) / 40 + 2e-3 * w)


@pytest.mark.parametrize("fun, x0, options", [
    (_rosenbrock, [-1.2, 1.0, -1.2, 1.0, -1.2, 1.0], dict(gtol=1e-5)),
    (_rosenbrock, [-1.2, 1.0], dict(gtol=0.0)),
    (_rosenbrock, [-1.2, 1.0, -1.2, 1.0], dict(gtol=1e-5, maxiter=9)),
    (_logistic, np.full(8, 0.3), dict(gtol=1e-5)),
])
def test_more_thuente_run_evaluates_where_scipys_l_bfgs_b_does(fun, x0, options):
    """The kernel with L-BFGS-B's line search: every point it evaluates is SciPy's L-BFGS-B's (the same number of
    them, the same iterations, the same stop), to 1e-8: the direction (two-loop against L-BFGS-B's compact form),
    first step, dcsrch and its settings, the pair test and the stopping are L-BFGS-B's."""
    ours, theirs = [], []
    x, scalars = _scipy_stopping_run(fun, x0, max_iter=options.get("maxiter", 15000), gtol=options["gtol"],
                                     line_search=lbfgs_kernels.MORE_THUENTE, points=ours)
    reference = _scipy(fun, x0, points=theirs, **options)
    assert len(ours) == len(theirs) == reference.nfev == scalars[lbfgs_kernels.STEP_EVALS]
    assert scalars[lbfgs_kernels.STEP_ITERS] == reference.nit
    assert lbfgs_kernels.SCIPY_MESSAGES[int(scalars[lbfgs_kernels.MESSAGE])] == reference.message
    assert scalars[lbfgs_kernels.STATUS] == reference.status
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=0, atol=1e-8)
    np.testing.assert_allclose(x, reference.x, rtol=0, atol=1e-8)


def test_more_thuente_run_ends_abnormally_where_no_step_lowers_the_loss():
    """A gradient of the wrong sign: no step meets the sufficient decrease within 20 evaluations, the history is
    empty, so the run ends as SciPy's does: 'ABNORMAL' after no iteration, θ unchanged."""
    def wrong(x):
        return float(x @ x), -2 * x

    x, scalars = _scipy_stopping_run(wrong, [1.0, 2.0, 3.0], line_search=lbfgs_kernels.MORE_THUENTE)
    reference = _scipy(wrong, [1.0, 2.0, 3.0])
    assert (reference.status, reference.nit) == (2, 0)
    assert (scalars[lbfgs_kernels.STATUS], scalars[lbfgs_kernels.STEP_ITERS]) == (2, 0)
    assert lbfgs_kernels.SCIPY_MESSAGES[int(scalars[lbfgs_kernels.MESSAGE])] == reference.message
    assert scalars[lbfgs_kernels.STEP_EVALS] == 1 + lbfgs_kernels.SCIPY_MAX_LINE_SEARCH
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


def _compact_form_direction(S, Y, g):
    """−B⁻¹g with B L-BFGS-B's compact representation (Byrd, Nocedal and Schnabel 1994) of the pairs S, Y (oldest
    first): B = θI − W·M·Wᵀ, W = [Y, θS], M = [[−D, Lᵀ], [L, θSᵀS]]⁻¹, θ = yᵀy / sᵀy of the newest pair; dense."""
    theta = Y[-1] @ Y[-1] / (S[-1] @ Y[-1])
    products = S @ Y.T
    W = np.hstack([Y.T, theta * S.T])
    middle = np.linalg.inv(np.block([[-np.diag(np.diag(products)), np.tril(products, -1).T],
                                     [np.tril(products, -1), theta * S @ S.T]]))
    return -np.linalg.solve(theta * np.eye(g.size) - W @ middle @ W.T, g)


def test_the_two_loop_direction_is_l_bfgs_bs_compact_form():
    """Every direction of a Moré-Thuente run on Rosenbrock (8 dimensions, the 10 pairs' ring buffer wrapping): the
    two-loop recursion's −H·g is −B⁻¹g of L-BFGS-B's compact form over the same pairs, to rounding."""
    x = np.array([-1.2, 1.0] * 4)
    vectors, directions, steps, history, scalars = lbfgs_kernels.new_buffers(x.size, LBFGS_HISTORY_SIZE, x.dtype)
    settings = np.zeros(lbfgs_kernels.N_SETTINGS)
    settings[[lbfgs_kernels.LR, lbfgs_kernels.MAX_ITER, lbfgs_kernels.MAX_EVAL]] = 1.0, 15000, 15000
    settings[lbfgs_kernels.TOLERANCE_CHANGE] = LBFGS_TOLERANCE_CHANGE
    settings[lbfgs_kernels.LINE_SEARCH], settings[lbfgs_kernels.SCIPY_STOPPING] = lbfgs_kernels.MORE_THUENTE, 1.0
    grad, evaluation = np.zeros_like(x), np.zeros(1)
    compared, last_iteration = [], 0
    for _ in lbfgs_kernels.lbfgs_step(x, grad, evaluation, vectors, directions, steps, history, scalars, settings):
        iteration = int(scalars[lbfgs_kernels.N_ITER])
        if iteration != last_iteration and iteration > 1:
            # the first evaluation of an iteration: its pairs and direction are made (the kernel stores the ring's
            # head and count only when a step ends, so the pairs are read by their ρ, oldest first)
            count = min(iteration - 1, LBFGS_HISTORY_SIZE)
            slots = [(iteration - 1 - count + i) % LBFGS_HISTORY_SIZE for i in range(count)]
            S, Y = steps[slots], directions[slots]
            d = vectors[lbfgs_kernels.DIRECTION]
            reference = _compact_form_direction(S, Y, vectors[lbfgs_kernels.FLAT_GRAD])
            compared.append(np.linalg.norm(d - reference) / np.linalg.norm(reference))
        last_iteration = iteration
        evaluation[0], grad[...] = _rosenbrock(x)
    assert len(compared) > 2 * LBFGS_HISTORY_SIZE
    assert max(compared) < 1e-9, max(compared)
