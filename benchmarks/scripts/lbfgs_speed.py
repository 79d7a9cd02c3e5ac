"""L-BFGS speed: fastgd's ``solver="lbfgs"`` against scikit-learn's, and ``fastgd.optim.LBFGS`` against torch's.

    python benchmarks/scripts/lbfgs_speed.py [--repeats 5] [--threads 1] [--block 0.5] [--out reports/lbfgs_speed.md]

Issue 28's goals: a fit with ``solver="lbfgs"`` ≥ 5× faster than scikit-learn's, and L-BFGS ≥ 3× faster than
``torch.optim.LBFGS`` on the bundled sets' full batches. All in one run, every library on ``--threads`` BLAS (and
torch) threads, the implementations alternated within each repeat, each measurement the mean over about
``--block`` seconds of back-to-back calls, medians over repeats:

* **fit**: ``MLPClassifier``/``MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=200,
  random_state=0)`` on each bundled set's training rows (``fastgd.datasets``: standardised), fastgd's against
  scikit-learn's, the whole ``fit`` timed. Both are L-BFGS-B (fastgd's with L-BFGS-B's Moré-Thuente line search)
  from the same initial weights, scikit-learn's draw for ``random_state=0`` (fastgd's own draw has its weights but
  zero biases): fastgd's fit is a ``warm_start`` fit from them, θ set back to them before each call, outside the
  clock. So both take the same steps until rounding parts their paths; each fit's iterations and loss evaluations
  are given, and the time per evaluation too.
* **floor**: the matrix products of one evaluation alone (:func:`fastgd.kernels.floors.epoch_products` over the
  whole batch: X·W, Aᵀ·δ and δ·Wᵀ, the BLAS's), times fastgd's evaluations: what no fit on this BLAS can go
  below, and the most a ratio to scikit-learn's fit can reach with it.
* **step**: one ``step`` of 50 iterations (strong Wolfe, history 10, no early stop: both tolerances 0) on the
  same network, float64, from the same weights: ``fastgd.optim.LBFGS`` with a closure over fastgd's compiled
  pass (:func:`fastgd.kernels.mlp.loss_and_gradient`, buffers made once), ``torch.optim.LBFGS`` with the usual
  closure (zero_grad, forward, cross-entropy or halved squared error, backward), and :func:`fastgd.training.
  fit_lbfgs` (the same step, the pass called from compiled code: one call).

``--beside results.json --beside-label main`` adds the ratios of another run of this script (another checkout's
fastgd, run just before in the same window) beside this run's.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from benchmarks import common  # noqa: E402
from fastgd import MLP, MLPClassifier, MLPRegressor, datasets, optim, threads  # noqa: E402
from fastgd.kernels import mlp as mlp_kernels  # noqa: E402
from fastgd.kernels.floors import epoch_products  # noqa: E402
from fastgd.machine import cpu_model  # noqa: E402
from fastgd.training import LBFGS_HISTORY_SIZE, fit_lbfgs  # noqa: E402

HIDDEN = 32
FIT_MAX_ITER = 200
STEP_ITERATIONS = 50


class _Clock:
    """Wall-clock and CPU seconds (this process's, every thread's) since it was made: ``read()`` gives both."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self):
        return np.array([time.perf_counter() - self.wall, time.process_time() - self.cpu])


def _fit_pair(data):
    """(fastgd's estimator, scikit-learn's, ``fit(estimator)`` timing one fit): fastgd's from scikit-learn's
    initial weights (see the module's docstring)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SklearnClassifier
    from sklearn.neural_network import MLPRegressor as SklearnRegressor
    from sklearn.utils import check_random_state

    classification = data.task == "classification"
    settings = dict(hidden_layer_sizes=(HIDDEN,), solver="lbfgs", max_iter=FIT_MAX_ITER, random_state=0)
    ours = (MLPClassifier if classification else MLPRegressor)(**settings)
    theirs = (SklearnClassifier if classification else SklearnRegressor)(**settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.set_params(max_iter=1).fit(data.X_train, data.y_train)  # makes the network
    ours.set_params(max_iter=FIT_MAX_ITER, warm_start=True)
    theirs._random_state = check_random_state(theirs.random_state)  # scikit-learn's _initialize, replayed
    sizes = ours._net.layer_sizes.tolist()
    initial = [theirs._init_coef(n_in, n_out, np.float64) for n_in, n_out in zip(sizes, sizes[1:])]
    start = ours._net.pack([weights for weights, _ in initial], [biases for _, biases in initial])

    def fit(estimator):
        if estimator is ours:
            ours.theta_[...] = start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clock = _Clock()
            estimator.fit(data.X_train, data.y_train)
            return clock.read(), None

    return ours, theirs, fit


def _products(ours, data):
    """A call running one evaluation's matrix products alone (see the module's docstring) on the fit's network."""
    net = ours._net
    X = np.ascontiguousarray(data.X_train, dtype=net.dtype)
    theta, grad = ours.theta_.copy(), np.zeros_like(ours.theta_)
    size = net.epoch_workspaces(X.shape[0])[0]
    activations, deltas = np.zeros(size, net.dtype), np.zeros(size, net.dtype)
    inputs, n_rows = X.reshape(-1), X.shape[0]

    def run():
        clock = _Clock()
        epoch_products(inputs, theta, grad, activations, deltas, net.layer_sizes, n_rows, n_rows)
        return clock.read(), None

    return run


def _sklearn_evaluations(estimator, data):
    """scikit-learn's loss evaluations in one fit, counted by wrapping its ``_loss_grad_lbfgs`` (untimed)."""
    from sklearn.exceptions import ConvergenceWarning

    calls = [0]
    evaluate = estimator._loss_grad_lbfgs

    def counted(*args):
        calls[0] += 1
        return evaluate(*args)

    estimator._loss_grad_lbfgs = counted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(data.X_train, data.y_train)
    return calls[0]


def _step_problem(data):
    """(net, X, Y, θ₀) for the step comparison: fastgd's MLP on the set's training rows, float64."""
    classification = data.task == "classification"
    n_outputs = data.n_classes if classification and data.n_classes > 2 else 1
    net = MLP([data.X_train.shape[1], HIDDEN, n_outputs], activation="relu",
              output=("softmax" if n_outputs > 1 else "logistic") if classification else "identity", alpha=1e-4)
    X = np.ascontiguousarray(data.X_train, dtype=np.float64)
    if classification:
        Y = np.eye(n_outputs)[data.y_train] if n_outputs > 1 else data.y_train.reshape(-1, 1).astype(np.float64)
    else:
        Y = data.y_train.reshape(-1, 1).astype(np.float64)
    return net, X, Y, net.init(random_state=0)


def _fastgd_step(net, X, Y, start):
    X, Y = net.check_data(X, Y)
    theta = start.copy()
    grad = np.empty_like(theta)
    size = net.epoch_workspaces(X.shape[0])[0]
    activations, deltas = np.empty(size), np.empty(size)
    arguments = (X, Y, net.layer_sizes, net.activation_code, net.output_code, net.alpha, grad, activations, deltas)

    def closure():
        return mlp_kernels.loss_and_gradient(theta, *arguments), grad

    optimizer = optim.LBFGS(theta, max_iter=STEP_ITERATIONS, max_eval=10 * STEP_ITERATIONS, tolerance_grad=0.0,
                            tolerance_change=0.0, history_size=LBFGS_HISTORY_SIZE, line_search_fn="strong_wolfe")
    clock = _Clock()
    optimizer.step(closure)
    return clock.read(), optimizer.state["func_evals"]


def _compiled_step(net, X, Y, start):
    theta = start.copy()
    clock = _Clock()
    result = fit_lbfgs(net, theta, X, Y, STEP_ITERATIONS, 10 * STEP_ITERATIONS, 0.0, tolerance_change=0.0,
                       stopping="torch")
    return clock.read(), result.n_evals


def _torch_step(net, X, Y, start):
    import torch

    sizes = net.layer_sizes.tolist()
    X_t, Y_t = torch.from_numpy(np.array(X)), torch.from_numpy(np.array(Y))  # torch wants writeable arrays
    model = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1], dtype=torch.float64), torch.nn.ReLU(),
                                torch.nn.Linear(sizes[1], sizes[2], dtype=torch.float64))
    with torch.no_grad():  # the same weights (fastgd's W is n_in × n_out, torch's n_out × n_in)
        (w1, w2), (b1, b2) = net.unpack(start)
        model[0].weight.copy_(torch.from_numpy(w1.T.copy()))
        model[2].weight.copy_(torch.from_numpy(w2.T.copy()))
        model[0].bias.copy_(torch.from_numpy(b1))
        model[2].bias.copy_(torch.from_numpy(b2))
    weights = [model[0].weight, model[2].weight]
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=STEP_ITERATIONS, max_eval=10 * STEP_ITERATIONS,
                                  tolerance_grad=0.0, tolerance_change=0.0, history_size=LBFGS_HISTORY_SIZE,
                                  line_search_fn="strong_wolfe")
    n_rows = X.shape[0]

    def closure():
        optimizer.zero_grad()
        out = model(X_t)
        if net.output == "softmax":
            loss = torch.nn.functional.cross_entropy(out, Y_t.argmax(1))
        elif net.output == "logistic":
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, Y_t)
        else:
            loss = 0.5 * torch.mean((out - Y_t) ** 2)
        loss = loss + 0.5 * net.alpha * sum((w * w).sum() for w in weights) / n_rows
        loss.backward()
        return loss

    clock = _Clock()
    optimizer.step(closure)
    return clock.read(), optimizer.state[optimizer._params[0]]["func_evals"]


def _block(run, block_seconds):
    """(wall, CPU) seconds per call of ``run`` (returning them and its evaluations), over calls for about
    ``block_seconds``: on a loaded machine one short call is either spared by the scheduler or made to wait a whole
    time slice."""
    total, calls, evaluations = np.zeros(2), 0, 0
    while total[0] < block_seconds or calls == 0:
        seconds, evaluations = run()
        total += seconds
        calls += 1
    return total / calls, evaluations


def _pair(seconds):
    """``wall / CPU`` milliseconds."""
    return f"{1e3 * seconds[0]:.2f} / {1e3 * seconds[1]:.2f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--block", type=float, default=0.5, help="seconds of calls per measurement")
    parser.add_argument("--out", default=None)
    parser.add_argument("--beside", default=None, help="this script's .json from another checkout, same window")
    parser.add_argument("--beside-label", default="main")
    args = parser.parse_args(argv)
    beside = None
    if args.beside:
        with open(args.beside) as file:
            beside = json.load(file)
    import torch

    torch.set_num_threads(args.threads)
    threads.set_num_threads(args.threads)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    names = list(datasets.BUNDLED)
    results = {"cpu": cpu_model(), "cpus": os.cpu_count(), "threads": threads.describe(), "load_before": load,
               "fit": {}, "step": {}}

    fits = {name: _fit_pair(datasets.load(name)) for name in names}
    steps = {name: _step_problem(datasets.load(name)) for name in names}
    products = {name: _products(fits[name][0], datasets.load(name)) for name in names}
    for name in names:  # warm-up: compilation and first calls stay out of the timings
        ours, theirs, fit = fits[name]
        fit(ours), fit(theirs), products[name]()
        for run in (_fastgd_step, _compiled_step, _torch_step):
            run(*steps[name])
    times = {name: {key: [] for key in ("fastgd_fit", "sklearn_fit", "products", "fastgd_step", "compiled_step",
                                        "torch_step")}
             for name in names}
    evaluations = {}
    for _ in range(args.repeats):
        for name in names:
            ours, theirs, fit = fits[name]
            times[name]["fastgd_fit"].append(_block(lambda: fit(ours), args.block)[0])
            times[name]["sklearn_fit"].append(_block(lambda: fit(theirs), args.block)[0])
            times[name]["products"].append(_block(products[name], args.block)[0])
            for key, run in (("fastgd_step", _fastgd_step), ("compiled_step", _compiled_step),
                             ("torch_step", _torch_step)):
                seconds, n_evals = _block(lambda: run(*steps[name]), args.block)
                times[name][key].append(seconds)
                evaluations[name, key] = n_evals
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results["load_after"] = load_after

    fit_rows, step_rows = [], []
    for name in names:
        ours, theirs, _ = fits[name]
        medians = {key: np.median(values, axis=0) for key, values in times[name].items()}  # (wall, CPU) each
        sklearn_evals = _sklearn_evaluations(type(theirs)(**theirs.get_params()), datasets.load(name))
        our_evals = ours.lbfgs_result_.n_evals
        fit_ratio = medians["sklearn_fit"] / medians["fastgd_fit"]
        per_eval = (medians["sklearn_fit"][1] / sklearn_evals) / (medians["fastgd_fit"][1] / our_evals)
        floor = our_evals * medians["products"][1]
        results["fit"][name] = dict({key: value.tolist() for key, value in medians.items() if "fit" in key},
                                    wall_ratio=fit_ratio[0], cpu_ratio=fit_ratio[1], fastgd_iterations=ours.n_iter_,
                                    sklearn_iterations=theirs.n_iter_, fastgd_evaluations=our_evals,
                                    sklearn_evaluations=sklearn_evals, fastgd_loss=ours.loss_,
                                    sklearn_loss=theirs.loss_, cpu_per_evaluation_ratio=per_eval,
                                    products=medians["products"].tolist(), floor_cpu=floor,
                                    floor_cpu_ratio=medians["sklearn_fit"][1] / floor)
        before = (f" | {beside['fit'][name]['cpu_ratio']:.1f}×" if beside else "")
        fit_rows.append(f"| {name} | {_pair(medians['fastgd_fit'])} | {_pair(medians['sklearn_fit'])}"
                        f" | **{fit_ratio[0]:.1f}×** | **{fit_ratio[1]:.1f}×**{before} | {ours.n_iter_} / {our_evals}"
                        f" | {theirs.n_iter_} / {sklearn_evals} | {per_eval:.1f}× | {1e3 * floor:.2f} ms, "
                        f"{medians['sklearn_fit'][1] / floor:.1f}× | {ours.loss_:.4g} / {theirs.loss_:.4g} |")
        step_ratio = medians["torch_step"] / medians["fastgd_step"]
        compiled_ratio = medians["torch_step"] / medians["compiled_step"]
        results["step"][name] = dict(fastgd=medians["fastgd_step"].tolist(), compiled=medians["compiled_step"].tolist(),
                                     torch=medians["torch_step"].tolist(), wall_ratio=step_ratio[0],
                                     cpu_ratio=step_ratio[1], compiled_wall_ratio=compiled_ratio[0],
                                     compiled_cpu_ratio=compiled_ratio[1],
                                     evaluations={key: evaluations[name, key] for key in
                                                  ("fastgd_step", "compiled_step", "torch_step")})
        step_rows.append(f"| {name} | {_pair(medians['fastgd_step'])} | {_pair(medians['compiled_step'])} | "
                         f"{_pair(medians['torch_step'])} | **{step_ratio[0]:.1f}×** / **{step_ratio[1]:.1f}×** | "
                         f"**{compiled_ratio[0]:.1f}×** / **{compiled_ratio[1]:.1f}×** | "
                         + (f"{beside['step'][name]['compiled_cpu_ratio']:.1f}× | " if beside else "") +
                         f"{evaluations[name, 'fastgd_step']} / {evaluations[name, 'compiled_step']} / "
                         f"{evaluations[name, 'torch_step']} |")
    lines = [
        "# L-BFGS speed", "",
        f"One run of `benchmarks/scripts/lbfgs_speed.py --repeats {args.repeats} --threads {args.threads} --block "
        f"{args.block}` on {results['cpu']} ({results['cpus']} CPUs; {results['threads']}; torch {args.threads} "
        f"thread(s)). Load: `{load}` before, `{load_after}` after. Medians over {args.repeats} repeats that "
        f"alternate the implementations, each the mean over about {args.block} s of back-to-back calls; ratios are "
        "the other's time over fastgd's, from this run. Each time is given as wall-clock / CPU seconds of the "
        "process: on a loaded machine the scheduler takes the core away every few milliseconds (a 0.9 ms pass of "
        "digits took 9 ms once in every four calls at load 11), which adds waits to the wall-clock time of both "
        "sides alike and pulls the ratios toward 1; with one thread each, the CPU time is the work done.", "",
        *([f"The {args.beside_label} columns: the same script on {args.beside_label}'s fastgd, run just before in "
           f"the same window (load `{beside['load_before']}` before, `{beside['load_after']}` after).", ""]
          if beside else []),
        f"## solver=\"lbfgs\": a whole fit, hidden layer {HIDDEN}, max_iter={FIT_MAX_ITER} (goal ≥ 5×)", "",
        "Both from scikit-learn's initial weights. The floor: fastgd's evaluations × one evaluation's matrix products "
        "alone (CPU), and scikit-learn's fit over it: the most any fit on this BLAS could reach.", "",
        "| set | fastgd fit | scikit-learn fit | × scikit-learn, wall | × scikit-learn, CPU | "
        + (f"× scikit-learn, CPU, {args.beside_label} | " if beside else "") + "fastgd iterations / "
        "evaluations | scikit-learn iterations / evaluations | × per evaluation, CPU | floor, CPU, and × scikit-learn "
        "at it | final loss fastgd / scikit-learn |",
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if beside else ""), *fit_rows, "",
        f"## One step of {STEP_ITERATIONS} iterations, strong Wolfe, history {LBFGS_HISTORY_SIZE}, float64, same "
        "weights (goal ≥ 3× torch)", "",
        "| set | fastgd.optim.LBFGS (Python closure) | fit_lbfgs (one compiled call) | torch.optim.LBFGS | "
        "× torch (optim), wall / CPU | × torch (compiled), wall / CPU | "
        + (f"× torch (compiled), CPU, {args.beside_label} | " if beside else "") +
        "evaluations optim / compiled / torch |",
        "|---|---|---|---|---|---|---|" + ("---|" if beside else ""), *step_rows, "",
    ]
    common.print_and_save(lines, results, args.out)


if __name__ == "__main__":
    main()
