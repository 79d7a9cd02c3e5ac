"""solver="lbfgs" against scikit-learn's: the final loss from scikit-learn's own initial weights.

    python benchmarks/scripts/lbfgs_loss_parity.py [--out reports/lbfgs_loss_parity.md]

Issue 28, item 4: on the bundled sets (scikit-learn's loaders, every row, the features standardised; diabetes' target
too), at the default alpha (1e-4) and at alpha 1, scikit-learn's defaults otherwise (100 hidden units, relu,
``max_iter=200``, ``tol=1e-4``, ``max_fun=15000``): fastgd's ``MLPClassifier``/``MLPRegressor(solver="lbfgs")``
started from the weights scikit-learn's ``_init_coef`` draws for ``random_state=0``, and scikit-learn's fit. Both
are SciPy's L-BFGS-B (fastgd's with L-BFGS-B's own Moré-Thuente line search and its stopping tests), so they take
the same steps until the last bits of their arithmetic (each its own pass over the data, the two-loop recursion
against L-BFGS-B's compact form) have grown into the steps. Where the losses are more than 1% apart:

* both again to convergence (``max_iter=20000``, ``tol=1e-8``, ``max_fun=50000``): the same loss then means the
  two paths stopped at different points of the way, a different loss a different minimum;
* where the paths part: every loss scikit-learn evaluates is recorded (``scipy.optimize.minimize`` wrapped for
  the fit), and fastgd's L-BFGS kernel (:func:`fastgd.kernels.lbfgs.lbfgs_step`, driven from Python) is run twice
  from the same weights, on fastgd's pass and on scikit-learn's own loss function; the first iteration after which
  the losses are more than 1e-12 and 1e-6 apart (relative), and the final loss on scikit-learn's function;
* how far scikit-learn's own fit moves when its initial weights move by 1e-15 (relative, four draws): the final
  losses of SciPy's L-BFGS-B on scikit-learn's function from those weights.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import warnings
from unittest import mock

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from benchmarks import common  # noqa: E402
from fastgd import MLPClassifier, MLPRegressor  # noqa: E402
from fastgd.kernels import lbfgs as lbfgs_kernels  # noqa: E402
from fastgd.machine import cpu_model  # noqa: E402
from fastgd.training import LBFGS_HISTORY_SIZE, LBFGS_TOLERANCE_CHANGE  # noqa: E402

SETS = ["iris", "wine", "diabetes", "breast_cancer", "digits"]
ALPHAS = [1e-4, 1.0]
CONVERGED = dict(max_iter=20000, tol=1e-8, max_fun=50000)
PARTED = (1e-12, 1e-6)
PERTURBATION, PERTURBATION_DRAWS = 1e-15, 4


def _data(name):
    from sklearn import datasets as sklearn_datasets
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(sklearn_datasets, f"load_{name}")(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return (X, (y - y.mean()) / y.std()) if name == "diabetes" else (X, y)


def _at_scikit_learns_start(name, alpha, **settings):
    """fastgd's estimator for ``name``, its θ at scikit-learn's initial weights (one iteration's fit made the
    network, then the weights are overwritten), and the settings both take."""
    from sklearn.exceptions import ConvergenceWarning

    X, y = _data(name)
    settings = dict(solver="lbfgs", alpha=alpha, random_state=0, **settings)
    ours = (MLPRegressor if name == "diabetes" else MLPClassifier)(**settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.set_params(max_iter=1).fit(X, y)
    for (weights, biases), our_weights, our_biases in zip(_initial(name), ours.coefs_, ours.intercepts_):
        our_weights[...], our_biases[...] = weights, biases
    return ours, settings


def _pair(name, alpha, **settings):
    """(fastgd's fitted estimator, scikit-learn's), fastgd's from scikit-learn's initial weights."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SklearnClassifier
    from sklearn.neural_network import MLPRegressor as SklearnRegressor

    X, y = _data(name)
    ours, settings = _at_scikit_learns_start(name, alpha, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.set_params(max_iter=settings.get("max_iter", 200), warm_start=True).fit(X, y)
        theirs = (SklearnRegressor if name == "diabetes" else SklearnClassifier)(**settings).fit(X, y)
    return ours, theirs


def _kernel_losses(fun, x0, max_iter, max_fun, tol):
    """fastgd's L-BFGS (SciPy's stopping, Moré-Thuente) over ``fun(x) -> (f, g)`` from ``x0``: the loss at the end
    of each iteration (the last evaluation of each: the step the line search accepted)."""
    x = np.array(x0, dtype=np.float64)
    vectors, directions, steps, history, scalars = lbfgs_kernels.new_buffers(x.size, LBFGS_HISTORY_SIZE, x.dtype)
    settings = np.zeros(lbfgs_kernels.N_SETTINGS)
    settings[[lbfgs_kernels.LR, lbfgs_kernels.MAX_ITER, lbfgs_kernels.MAX_EVAL]] = 1.0, max_iter, max_fun
    settings[lbfgs_kernels.TOLERANCE_GRAD], settings[lbfgs_kernels.TOLERANCE_CHANGE] = tol, LBFGS_TOLERANCE_CHANGE
    settings[lbfgs_kernels.LINE_SEARCH], settings[lbfgs_kernels.SCIPY_STOPPING] = lbfgs_kernels.MORE_THUENTE, 1.0
    grad, evaluation = np.zeros_like(x), np.zeros(1)
    by_iteration = {}
    for _ in lbfgs_kernels.lbfgs_step(x, grad, evaluation, vectors, directions, steps, history, scalars, settings):
        evaluation[0], grad[...] = fun(x)
        by_iteration[int(scalars[lbfgs_kernels.N_ITER])] = float(evaluation[0])
    return np.array([by_iteration[k] for k in sorted(by_iteration) if k > 0])


def _parting(name, alpha):
    """Where fastgd's path leaves scikit-learn's (see the module's docstring): a dict of the iterations and losses."""
    import scipy.optimize

    minimize = scipy.optimize.minimize
    recorded = {}

    def recording(fun, x0, args=(), **options):
        evaluations, accepted, start = [], [], np.array(x0)

        def counted(x, *more):
            f, g = fun(x, *more)
            evaluations.append(float(f))
            return f, g

        def callback(intermediate_result):
            accepted.append(evaluations[-1])

        result = minimize(counted, x0, args=args, callback=callback, **options)
        recorded.update(function=lambda x: fun(x, *args), x0=start, options=options["options"],
                        losses=np.array(accepted))
        return result

    with mock.patch("scipy.optimize.minimize", recording):
        _pair(name, alpha)
    their_function, options, theirs = recorded["function"], recorded["options"], recorded["losses"]
    limits = (options["maxiter"], options["maxfun"], options["gtol"])
    ours, _ = _at_scikit_learns_start(name, alpha)
    X, y = _data(name)
    Y = y.reshape(-1, 1) if name == "diabetes" else ours._one_hot(y)
    fastgd_pass = _kernel_losses(lambda theta: ours._net.loss_grad(theta, X, Y), ours.theta_, *limits)
    their_pass = _kernel_losses(their_function, recorded["x0"], *limits)
    rng = np.random.default_rng(0)
    perturbed = [minimize(their_function, recorded["x0"] * (1 + PERTURBATION * rng.standard_normal(
        recorded["x0"].size)), method="L-BFGS-B", jac=True, options=options).fun
        for _ in range(PERTURBATION_DRAWS)]

    def parted(losses, tolerance):
        n = min(len(losses), len(theirs))
        apart = np.abs(losses[:n] - theirs[:n]) > tolerance * np.abs(theirs[:n])
        return int(np.argmax(apart)) + 1 if apart.any() else None

    return dict({f"fastgd_pass_parted_{t:g}": parted(fastgd_pass, t) for t in PARTED},
                **{f"sklearn_pass_parted_{t:g}": parted(their_pass, t) for t in PARTED},
                sklearn_pass_final_loss=float(their_pass[-1]), sklearn_final_loss=float(theirs[-1]),
                perturbed_sklearn_losses=[float(f) for f in perturbed])


def _initial(name):
    """scikit-learn's initial (weights, biases) for ``name``'s network at ``random_state=0``."""
    from sklearn.neural_network import MLPClassifier as SklearnClassifier
    from sklearn.neural_network import MLPRegressor as SklearnRegressor
    from sklearn.utils import check_random_state

    X, y = _data(name)
    regression = name == "diabetes"
    theirs = (SklearnRegressor if regression else SklearnClassifier)(random_state=0)
    n_outputs = 1 if regression or len(np.unique(y)) == 2 else len(np.unique(y))
    theirs._random_state = check_random_state(theirs.random_state)
    sizes = [X.shape[1], *theirs.hidden_layer_sizes, n_outputs]
    return [theirs._init_coef(n_in, n_out, np.float64) for n_in, n_out in zip(sizes, sizes[1:])]


def _distance(ours, theirs):
    """‖θ − θ'‖ / ‖θ'‖ over every weight and bias."""
    mine = np.concatenate([a.ravel() for a in (*ours.coefs_, *ours.intercepts_)])
    other = np.concatenate([a.ravel() for a in (*theirs.coefs_, *theirs.intercepts_)])
    return float(np.linalg.norm(mine - other) / np.linalg.norm(other))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = {"cpu": cpu_model(), "cpus": os.cpu_count(), "load": load, "runs": []}
    rows, again, parting = [], [], []
    for alpha in ALPHAS:
        for name in SETS:
            ours, theirs = _pair(name, alpha)
            ratio = float(ours.loss_ / theirs.loss_ - 1)
            within = bool(abs(ratio) <= 0.01)
            run = dict(set=name, alpha=alpha, fastgd_loss=float(ours.loss_), sklearn_loss=float(theirs.loss_),
                       fastgd_iterations=int(ours.n_iter_), sklearn_iterations=int(theirs.n_iter_),
                       fastgd_stop=ours.lbfgs_result_.message, within_1_percent=within)
            rows.append(f"| {name} | {alpha:g} | {ours.loss_:.5g} | {theirs.loss_:.5g} | {ratio:+.2%} | "
                        f"{'yes' if within else '**no**'} | {ours.n_iter_} / {theirs.n_iter_} | "
                        f"{ours.lbfgs_result_.message} |")
            if not within:
                final = float(theirs.loss_)
                ours, theirs = _pair(name, alpha, **CONVERGED)
                run.update(converged_fastgd_loss=float(ours.loss_), converged_sklearn_loss=float(theirs.loss_),
                           converged_distance=_distance(ours, theirs))
                again.append(f"| {name} | {alpha:g} | {ours.loss_:.5g} | {theirs.loss_:.5g} | "
                             f"{ours.loss_ / theirs.loss_ - 1:+.2%} | {ours.n_iter_} / {theirs.n_iter_} | "
                             f"{ours.lbfgs_result_.message} | {_distance(ours, theirs):.3g} |")
                where = _parting(name, alpha)
                run.update(where)
                perturbed = ", ".join(f"{f / final - 1:+.2%}" for f in where["perturbed_sklearn_losses"])
                parting.append(
                    f"| {name} | {alpha:g} | " + " | ".join(
                        str(where[f"fastgd_pass_parted_{t:g}"]) for t in PARTED) + " | " + " | ".join(
                        str(where[f"sklearn_pass_parted_{t:g}"]) for t in PARTED)
                    + f" | {where['sklearn_pass_final_loss'] / final - 1:+.2%} | {perturbed} |")
            results["runs"].append(run)
            print(rows[-1], flush=True)
    lines = [
        "# solver=\"lbfgs\": final loss against scikit-learn's", "",
        f"One run of `benchmarks/scripts/lbfgs_loss_parity.py` on {results['cpu']} ({results['cpus']} CPUs), load "
        f"`{load}`. scikit-learn's defaults (100 hidden units, max_iter=200, tol=1e-4), every row of each set, "
        "fastgd from scikit-learn's initial weights (see the script's docstring).", "",
        "| set | alpha | fastgd loss | scikit-learn loss | fastgd / scikit-learn − 1 | within 1% | iterations fastgd / "
        "scikit-learn | fastgd stopped on |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        f"Where not within 1%, both again to convergence ({', '.join(f'{k}={v:g}' for k, v in CONVERGED.items())}); "
        "the last column is the distance of the two final weight vectors relative to scikit-learn's:", "",
        "| set | alpha | fastgd loss | scikit-learn loss | fastgd / scikit-learn − 1 | iterations fastgd / "
        "scikit-learn | fastgd stopped on | ‖θ − θ_sk‖ / ‖θ_sk‖ |",
        "|---|---|---|---|---|---|---|---|", *again, "",
        "Where the paths part (see the script's docstring): the first iteration after which fastgd's loss is more than "
        f"{PARTED[0]:g} and {PARTED[1]:g} (relative) from scikit-learn's, fastgd's L-BFGS on fastgd's pass and on "
        "scikit-learn's own loss function; that run's final loss against scikit-learn's; and scikit-learn's own final "
        f"loss when its initial weights move by {PERTURBATION:g} (relative; {PERTURBATION_DRAWS} draws) against its "
        "loss from the weights themselves:", "",
        f"| set | alpha | fastgd pass: {PARTED[0]:g} apart after | {PARTED[1]:g} apart after | scikit-learn's "
        f"function: {PARTED[0]:g} apart after | {PARTED[1]:g} apart after | its final loss / scikit-learn − 1 | "
        "scikit-learn from perturbed weights / scikit-learn − 1 |",
        "|---|---|---|---|---|---|---|---|", *parting, "",
        "How to read it. Both are SciPy's L-BFGS-B: fastgd's kernel takes L-BFGS-B's own line search (Moré-Thuente, "
        "MINPACK-2's dcsrch: ftol 1e-3, gtol 0.9, xtol 0.1, the first trial step 1/‖g‖₂, then 1), its test of a "
        "pair (yᵀs > ε·(−gᵀs)), its restarts and its stopping tests (the relative decrease of the loss ≤ factr·ε, "
        "max |g| ≤ tol, max_iter and max_fun counted as SciPy counts them); on a function evaluated the same way "
        "it evaluates SciPy's very points, to 1e-8 over whole runs (tests/test_lbfgs.py). So where the last bits "
        "of the arithmetic do not steer the path, fastgd stops at the very iteration scikit-learn does, on the same "
        "test, with the same loss to the digits shown. Where a row still misses 1%, the paths part through rounding "
        "alone: the two passes sum in different orders (scikit-learn's BLAS products, fastgd's compiled pass), and "
        "L-BFGS-B forms its direction from the compact representation where fastgd runs the two-loop recursion "
        "(the same matrix: every direction of a Rosenbrock run agrees to 1e-9, tests/test_lbfgs.py). "
        "On a loss the network can almost interpolate, "
        "differences of 1e-16 grow about tenfold every few iterations, until after a hundred or so the two are "
        "different runs of L-BFGS, and a run cut at max_iter ends at a different point of a long, slow descent. "
        "The last table shows it is not fastgd's pass: its L-BFGS on scikit-learn's own loss function parts at "
        "about the same iteration, and scikit-learn's own fit, from weights moved by 1e-15, ends as far from its "
        "own loss as fastgd does. Nothing short of scikit-learn's arithmetic bit for bit can promise 1% there.", "",
    ]
    common.print_and_save(lines, results, args.out)


if __name__ == "__main__":
    main()
