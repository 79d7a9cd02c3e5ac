"""The one measurement layer: the baselines fastgd is compared with, the timer, and the machine's limits.

The comparison report (:mod:`fastgd.report.throughput`), the asv suite (``benchmarks/``, whose
``common.py`` keeps only asv's glue: parameter grids, the Numba cache lock, data files generated
once per run) and the speed scripts all measure through this module, so that they quote the
same numbers for the same thing.

* MLP training (:data:`TRAINERS`): fastgd's compiled epoch, the NumPy reference network and rule
  (its optimizer state kept from epoch to epoch), scikit-learn's MLP, a plain PyTorch loop and
  JAX + optax with a jitted whole epoch, all with the same network (ReLU hidden layers; softmax
  output with cross-entropy, or identity output with half the squared error), the same
  Glorot-uniform weights (scikit-learn's draw for :data:`SEED`, zero biases), no L2 penalty and
  the same learning rate per rule (:func:`learning_rate`). :meth:`Trainer.seconds_per_epoch`
  times them, :func:`score_on_test_split` scores them with ``sklearn.metrics``.
* One update step over a flat vector (:data:`STEP_IMPLEMENTATIONS`): fastgd's ``opt.step`` with
  its serial or its ``prange`` kernel, the NumPy rules of :mod:`fastgd.reference`, and
  ``torch.optim`` (its default loop, and its fused kernel where torch has one).
* The machine: the in-place streams that bound a step (:class:`InPlaceStreams`, the steps'
  own access pattern), STREAM's triad (:class:`StreamTriad`, main memory), and the matrix-product
  rate through NumPy's BLAS at 2048² and at a network's own shapes (:func:`gemm_rate`,
  :func:`network_gemm_rate`), MKL's at 2048² (:func:`mkl_gemm_rate`), and the higher of the two
  (:func:`peak_gemm_rate`), the peak a GEMM share is measured against.
* One timer, :func:`seconds_per_call`: the median (a ceiling: the least) per-call time of
  batches of calls over a budget of seconds.

Data sets are named as :func:`dataset` reads them: a bundled set's name, or
``synthetic_<rows>x<features>[_<k>classes]`` for a generated one (two classes unless named).

Nothing here compiles ahead: the first call of a fastgd callable compiles (or loads) its
kernels, so warm up before timing (``benchmarks/common.py`` does it under a lock).
"""

import abc
import contextlib
import dataclasses
import functools
import inspect
import math
import re
import time
import warnings

import numpy as np

from fastgd import _config, datasets, optim, reference
from fastgd.models import MLP
from fastgd.training import Training

__all__ = ["IMPLEMENTATIONS", "TRAINERS", "STEP_IMPLEMENTATIONS", "TORCH_OPTIMIZERS", "TORCH_FUSED", "SEED",
           "LEARNING_RATES", "learning_rate", "available", "torch_available", "jax_available", "warm_up",
           "warmed_trainer", "same_threads", "seconds_per_call", "per_call_seconds", "dataset", "synthetic_name",
           "head",
           "score_on_test_split", "finite",
           "last_level_cache_bytes", "Trainer", "FastgdTrainer", "NumpyTrainer", "SklearnTrainer", "TorchTrainer",
           "JaxTrainer", "JaxTraining",
           "optax_transform", "params_and_grad", "step_callable", "users_step_implementation", "worth_timing",
           "arrays_written",
           "bytes_moved", "bytes_per_parameter", "bytes_per_step", "InPlaceStreams", "StreamTriad", "TRIAD_SIZE",
           "in_place_bandwidth", "triad_bandwidth", "gemm_rate", "epoch_gemm_shapes", "epoch_matmul_flops",
           "network_gemm_rate", "mkl_gemm_rate", "peak_gemm_rate"]

SEED = 0
# torch.optim's class for each rule (the names of the hyperparameters are the same); Lion, LAMB,
# Schedule-Free AdamW and Muon (with AdamW on its vectors) have none
TORCH_OPTIMIZERS = {"sgd": "SGD", "momentum": "SGD", "nesterov": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop",
                    "adadelta": "Adadelta", "adam": "Adam", "amsgrad": "Adam", "adamax": "Adamax", "nadam": "NAdam",
                    "adamw": "AdamW", "radam": "RAdam", "rprop": "Rprop", "asgd": "ASGD", "adafactor": "Adafactor"}
# the classes with a fused CPU kernel (``fused=True``) in torch 2.13; torch_step checks the signature as well
TORCH_FUSED = frozenset({"SGD", "Adagrad", "Adam", "AdamW"})

def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def jax_available():
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError:
        return False
    return True


# --- settings shared by every trainer ----------------------------------------------------------


# A learning rate per rule with which a 32-unit ReLU network trained with batches of 32 makes
# steady progress on every bundled set (the convergence targets are set against these).
LEARNING_RATES = {"sgd": 0.05, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.02, "rmsprop": 1e-3,
                  "adadelta": 1.0, "adam": 1e-3, "amsgrad": 1e-3, "adamax": 2e-3, "nadam": 2e-3, "adamw": 1e-3,
                  "lion": 3e-4, "radam": 1e-3, "rprop": 1e-3, "asgd": 0.05, "schedule_free_adamw": 2.5e-3,
                  "lamb": 1e-2, "adafactor": 1e-2, "muon": 0.02}
LEARNING_RATE_BATCH_SIZE = 32


def learning_rate(rule, batch_size):
    """``LEARNING_RATES[rule]`` (a user's rule: its default), scaled down in proportion below batches of 32.

    Smaller batches give noisier gradients: at the full rate, momentum with batch 1 diverges on
    the large synthetic set in its first epoch (and fastgd then stops that epoch early).
    """
    rate = LEARNING_RATES.get(rule, optim.OPTIMIZERS[rule].default_hyperparameters()["lr"])
    return rate * min(1.0, batch_size / LEARNING_RATE_BATCH_SIZE)

# The rules scikit-learn's MLP has, as its solver settings.
SKLEARN_SOLVERS = {"sgd": dict(solver="sgd", momentum=0.0, nesterovs_momentum=False),
                   "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
                   "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
                   "adam": dict(solver="adam")}


# --- timing ------------------------------------------------------------------------------------

def seconds_per_call(function, budget_seconds, min_repeats=3, statistic=np.median):
    """Median (or ``statistic``) seconds of one call of an already warmed ``function``, over
    :func:`per_call_seconds`'s batches."""
    return float(statistic(per_call_seconds(function, budget_seconds, min_repeats)))


def per_call_seconds(function, budget_seconds, min_repeats=3):
    """Seconds of one call of an already warmed ``function``, one value per batch of calls.

    Calls are timed in batches, ten times longer until a batch lasts a millisecond (well above
    the clock's resolution); batches repeat until ``budget_seconds`` have passed, at least
    ``min_repeats`` times. Their spread is the timing's noise.
    """
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= 1e-3:
            break
        number *= 10
    deadline = start + budget_seconds
    per_call = [elapsed / number]
    while len(per_call) < min_repeats or time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(number):
            function()
        per_call.append((time.perf_counter() - start) / number)
    return per_call


# --- data sets ---------------------------------------------------------------------------------

def synthetic_name(n_samples, n_features, n_classes=2):
    """The name :func:`dataset` reads as a generated set: ``synthetic_<rows>x<features>``, then ``_<k>classes``
    for other than two."""
    return f"synthetic_{n_samples}x{n_features}" + ("" if n_classes == 2 else f"_{n_classes}classes")


def dataset(name):
    """A data set by its name here: a bundled one, or :func:`synthetic_name`'s (``make_classification`` from
    :data:`SEED`, split and standardised by ``fastgd.datasets.synthetic``; 75,000 training rows take a second)."""
    if name in datasets.BUNDLED:
        return datasets.load(name)
    match = re.fullmatch(r"synthetic_(\d+)x(\d+)(?:_(\d+)classes)?", name)
    if match is None:
        raise ValueError(f"unknown data set {name!r}: a bundled one ({', '.join(datasets.BUNDLED)}) or "
                         "synthetic_<rows>x<features>[_<k>classes]")
    n_samples, n_features, n_classes = int(match[1]), int(match[2]), int(match[3] or 2)
    data = datasets.synthetic("classification", n_samples, n_features, n_classes=n_classes, random_state=SEED)
    return dataclasses.replace(data, name=name)


def head(data, n_rows):
    """The first ``n_rows`` training rows of ``data`` (views: same dtype, layout and flags)."""
    return dataclasses.replace(data, X_train=data.X_train[:n_rows], y_train=data.y_train[:n_rows])


def score_on_test_split(data, outputs):
    """Accuracy (classification) or R² (regression) of a network's ``outputs`` on the test split, by
    ``sklearn.metrics``."""
    from sklearn.metrics import accuracy_score, r2_score

    if data.task == "classification":
        return float(accuracy_score(data.y_test, np.argmax(outputs, axis=1)))
    return float(r2_score(data.y_test, np.ravel(outputs)))


def require_torch():
    """``torch``, or NotImplementedError (asv's "skipped") when it is not installed."""
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed") from None
    return torch


def torch_optimizer_class(rule):
    """torch.optim's class for ``rule`` (:data:`TORCH_OPTIMIZERS`); asv's "skipped" where torch has none,
    a user's rule included."""
    name = TORCH_OPTIMIZERS.get(rule)
    if name is None:
        raise NotImplementedError(f"torch.optim has no {rule}")
    return getattr(require_torch().optim, name)


# --- MLP training ------------------------------------------------------------------------------

class Trainer(abc.ABC):
    """One implementation of MLP training: built with its data and settings, then epoch after epoch.

    ``data``: a ``fastgd.datasets.Dataset``; ``rule``: a key of ``optim.OPTIMIZERS`` (an
    implementation without it raises NotImplementedError); ``hidden``: units of the one hidden
    layer, or a tuple of units per hidden layer; ``batch_size``: samples per update (at most the
    training set); ``dtype``: of the parameters and of the arithmetic. Shuffling and initial
    weights come from ``SEED``, the learning rate from :func:`learning_rate`.
    """

    COMPILED_WHEN_BUILT = False  # True: the constructor compiles everything an epoch runs, for these shapes

    def __init__(self, data, rule, hidden, batch_size, dtype):
        self.data, self.rule = data, rule
        self.hidden = (int(hidden),) if np.ndim(hidden) == 0 else tuple(int(units) for units in hidden)
        self.batch_size, self.dtype = batch_size, np.dtype(dtype)
        self.learning_rate = learning_rate(rule, batch_size)
        self.n_samples = data.X_train.shape[0]
        self.layer_sizes = [data.n_features, *self.hidden, data.n_outputs]

    def initial_theta(self):
        """fastgd's θ layout with scikit-learn's Glorot-uniform draw, zero biases."""
        return MLP(self.layer_sizes, "relu", self.data.output, alpha=0.0, dtype=self.dtype).init(random_state=SEED)

    @abc.abstractmethod
    def epoch(self):
        """Train one epoch; return its mean training loss (over batches, each before its update)."""

    def fit(self, n_epochs):
        """Train ``n_epochs`` more epochs the way users of this implementation do; return their mean losses.

        Stops after an epoch whose loss is not finite (divergence), which is then the last.
        """
        losses = []
        for _ in range(n_epochs):
            losses.append(self.epoch())
            if not math.isfinite(losses[-1]):
                break
        return losses

    def fit_seconds(self, n_epochs):
        """Wall seconds of :meth:`fit` for ``n_epochs``."""
        start = time.perf_counter()
        self.fit(n_epochs)
        return time.perf_counter() - start

    def seconds_per_epoch(self, budget_seconds):
        """Seconds per epoch of a fit that lasts about ``budget_seconds`` (one epoch if that is longer).

        A first epoch, untimed, sizes the fit: it may carry first-call costs (JAX's first run of
        its compiled epoch took 50 ms against 2 ms after, on digits at batch 256).
        """
        start = time.perf_counter()
        finite(self.epoch())
        n_epochs = max(1, int(budget_seconds / (time.perf_counter() - start)))
        start = time.perf_counter()
        finite(self.fit(n_epochs)[-1])
        return (time.perf_counter() - start) / n_epochs


def finite(loss):
    """``loss``, or RuntimeError: a diverged epoch times nothing meaningful (fastgd's stops at the first NaN)."""
    if not math.isfinite(loss):
        raise RuntimeError(f"training diverged (loss {loss}): lower the learning rate")
    return loss


class FastgdTrainer(Trainer):
    """fastgd's compiled epochs (``fastgd.training.Training``, as the estimators run them)."""

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        self.net = MLP(self.layer_sizes, "relu", data.output, alpha=0.0, dtype=self.dtype)
        optimizer = optim.OPTIMIZERS[rule](self.initial_theta(), lr=self.learning_rate, layout=self.net.layout)
        self.training = Training(self.net, optimizer, data.X_train, data.Y_train, batch_size, seed=SEED)

    def epoch(self):
        return self.training.epoch()

    def test_outputs(self):
        return self.net.predict(self.training.theta, self.data.X_test)

    def floor_seconds(self, budget_seconds):
        """Seconds per epoch of its matrix products alone and of its rule's steps alone (:mod:`fastgd.kernels.floors`).

        Both as its epochs take them: the same pass (serial, or the whole batch on MKL's threads) and
        the same step (serial, or ``prange`` beside a threaded pass), on copies of its buffers and state.
        Returns ``{"products": s, "steps": s}``; NotImplementedError for the pass in blocks of rows.
        """
        from fastgd.kernels import floors, mkl
        from fastgd.kernels.train import WHOLE_BATCH_ON_MKL

        training = self.training
        n_blocks = training._blocks()
        if n_blocks not in (1, WHOLE_BATCH_ON_MKL):
            raise NotImplementedError("the floor of the pass in blocks of rows is not measured")
        if n_blocks == WHOLE_BATCH_ON_MKL:
            mkl.load()  # before epoch_products_on_mkl is compiled or loaded: it links MKL's cblas_?gemm
        products = floors.epoch_products if n_blocks == 1 else floors.epoch_products_on_mkl
        n_samples, batch_size = training.X.shape[0], training.batch_size
        rng = np.random.default_rng(SEED)
        theta = training.theta.copy()
        grad = (rng.standard_normal(theta.size) * 1e-3).astype(theta.dtype)
        # a batch's rows, and workspaces filled with finite values: products of garbage may be denormal or NaN
        inputs = np.ascontiguousarray(training.X[:batch_size]).reshape(-1)
        activations = rng.standard_normal(training._activations.size).astype(theta.dtype)
        deltas = rng.standard_normal(training._deltas.size).astype(theta.dtype)
        product_arguments = (inputs, theta, grad.copy(), activations, deltas, self.net.layer_sizes, n_samples,
                             batch_size)
        packed = training.optimizer.packed(parallel=n_blocks != 1)
        hyper = packed.hyper.copy()
        hyper[-1] = 1.0  # the constant schedule's factor
        n_steps = -(-n_samples // batch_size)
        step_arguments = (packed.function, theta, grad, packed.states.copy(), packed.aux.copy(), hyper,
                          packed.counters.copy(), packed.layout, n_steps)
        seconds = {}
        for name, dispatcher, arguments in (("products", products, product_arguments),
                                            ("steps", floors.epoch_steps, step_arguments)):
            run = _config.compile_for(dispatcher, arguments)
            run(*arguments)  # warm: caches, pages, threads
            seconds[name] = seconds_per_call(lambda: run(*arguments), budget_seconds)
        return seconds


class NumpyTrainer(Trainer):
    """The NumPy reference network (``reference.mlp_loss_grad``) and rule, in a plain mini-batch loop."""

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        self.theta = self.initial_theta()
        self.X = data.X_train.astype(self.dtype)
        self.Y = data.Y_train.astype(self.dtype)
        self.optimizer = reference.ReferenceOptimizer(rule, self.theta, layout=reference.mlp_layout(self.layer_sizes),
                                                      lr=self.learning_rate)
        self.rng = np.random.default_rng(SEED)

    def epoch(self):
        order = self.rng.permutation(self.n_samples)
        total = 0.0
        for start in range(0, self.n_samples, self.batch_size):
            rows = order[start:start + self.batch_size]
            loss, grad = reference.mlp_loss_grad(self.theta, self.X[rows], self.Y[rows], self.layer_sizes, "relu",
                                                 self.data.output, 0.0)
            total += loss * rows.size
            self.optimizer.step(grad)
        return total / self.n_samples


class SklearnTrainer(Trainer):
    """scikit-learn's MLPClassifier or MLPRegressor.

    :meth:`epoch` is one ``partial_fit``, scikit-learn's only per-epoch call, which also checks
    its input again (about a millisecond here); :meth:`fit` is one ``fit`` of that many epochs,
    how scikit-learn users train, where that check is paid once. ``fit`` starts over from
    the initial weights, as scikit-learn's does.
    """

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        if rule not in SKLEARN_SOLVERS:
            raise NotImplementedError(f"scikit-learn's MLP has no {rule}")
        self.X = data.X_train.astype(self.dtype)
        self.y = data.y_train if data.task == "classification" else data.y_train.astype(self.dtype)
        self.estimator = self._estimator(max_iter=1)

    def _estimator(self, max_iter):
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        estimator = MLPClassifier if self.data.task == "classification" else MLPRegressor
        # tol=0 and a patience beyond max_iter: a fit runs exactly max_iter epochs
        return estimator(hidden_layer_sizes=self.hidden, activation="relu", alpha=0.0, batch_size=self.batch_size,
                         learning_rate="constant", learning_rate_init=self.learning_rate, max_iter=max_iter,
                         shuffle=True, random_state=SEED, tol=0.0, n_iter_no_change=max_iter + 1,
                         **SKLEARN_SOLVERS[self.rule])

    def epoch(self):
        if self.data.task == "classification":
            self.estimator.partial_fit(self.X, self.y, classes=np.arange(self.data.n_classes))
        else:
            self.estimator.partial_fit(self.X, self.y)
        return self.estimator.loss_

    def fit(self, n_epochs):
        from sklearn.exceptions import ConvergenceWarning

        self.estimator = self._estimator(max_iter=n_epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.estimator.fit(self.X, self.y)
        return list(self.estimator.loss_curve_)

    def test_outputs(self):
        if self.data.task == "classification":
            return self.estimator.predict_proba(self.data.X_test.astype(self.dtype))
        return self.estimator.predict(self.data.X_test.astype(self.dtype))


class TorchTrainer(Trainer):
    """A plain PyTorch CPU loop: ``nn.Sequential(Linear, ReLU, Linear)``, ``torch.optim``, fancy-indexed batches."""

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        torch = require_torch()
        optimizer_class = torch_optimizer_class(rule)
        torch_dtype = getattr(torch, self.dtype.name)
        self.X = torch.from_numpy(data.X_train.astype(self.dtype))
        layers = []
        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            layers += [torch.nn.Linear(n_in, n_out, dtype=torch_dtype), torch.nn.ReLU()]
        layers.pop()  # no activation after the output layer: the loss applies softmax
        coefs, intercepts = MLP(self.layer_sizes, "relu", data.output, alpha=0.0, dtype=self.dtype).unpack(
            self.initial_theta())
        with torch.no_grad():
            for linear, coef, intercept in zip(layers[::2], coefs, intercepts):
                linear.weight.copy_(torch.from_numpy(coef.T.copy()))
                linear.bias.copy_(torch.from_numpy(intercept))
        self.model = torch.nn.Sequential(*layers)
        if data.task == "classification":
            self.targets = torch.from_numpy(data.y_train.copy())
            self.loss_function = torch.nn.CrossEntropyLoss()
        else:
            self.targets = torch.from_numpy(data.Y_train.astype(self.dtype))
            mean_squared_error = torch.nn.MSELoss()
            self.loss_function = lambda outputs, targets: mean_squared_error(outputs, targets) / 2
        hyperparameters = dict(optim.OPTIMIZERS[rule].default_hyperparameters(), lr=self.learning_rate)
        self.optimizer = optimizer_class(self.model.parameters(), **hyperparameters)
        self.generator = torch.Generator().manual_seed(SEED)
        self.torch = torch

    def epoch(self):
        order = self.torch.randperm(self.n_samples, generator=self.generator)
        total = 0.0
        for start in range(0, self.n_samples, self.batch_size):
            rows = order[start:start + self.batch_size]
            self.optimizer.zero_grad()
            loss = self.loss_function(self.model(self.X[rows]), self.targets[rows])
            loss.backward()
            self.optimizer.step()
            total += loss.item() * rows.numel()
        return total / self.n_samples


def require_jax():
    """NotImplementedError (asv's "skipped") when jax or optax is not installed (the ``jax`` extra)."""
    if not jax_available():
        raise NotImplementedError("jax and optax are not installed (pip install 'fastgd[jax]')")


class JaxTrainer(Trainer):
    """JAX + optax, the compiled peer a user would pick instead: a whole epoch in one ``jax.jit``
    (:class:`JaxTraining`, compiled when the trainer is built, so the first epoch is
    timed as warm as the next). Same network, initial weights and loss as the others."""

    COMPILED_WHEN_BUILT = True

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        require_jax()
        coefs, intercepts = MLP(self.layer_sizes, "relu", data.output, alpha=0.0, dtype=self.dtype).unpack(
            self.initial_theta())
        classification = data.task == "classification"
        self.training = JaxTraining(coefs, intercepts, data.X_train,
                                              data.y_train if classification else data.Y_train, classification,
                                              rule, self.learning_rate, batch_size, dtype=self.dtype, seed=SEED)

    def epoch(self):
        return self.training.epoch()


TRAINERS = {"fastgd": FastgdTrainer, "numpy": NumpyTrainer, "sklearn": SklearnTrainer, "torch": TorchTrainer,
            "jax": JaxTrainer}
WARM_UP_ROWS = 64
IMPLEMENTATIONS = tuple(TRAINERS)


def available(implementation):
    """Whether ``implementation`` (one of :data:`IMPLEMENTATIONS`) can run here: its optional packages are installed."""
    return {"torch": torch_available, "jax": jax_available}.get(implementation, lambda: True)()


def warm_up(implementation, data, rule, hidden, batch_size, dtype):
    """One epoch of ``implementation`` on the first rows of the same arrays (at least a batch), to be run before any
    timing.

    It compiles (or loads) every Numba kernel an epoch calls, for exactly these array types
    (a slice has the dtype, layout and flags of the whole), and pays torch's and
    scikit-learn's first-call costs. A trainer that compiles for its own shapes when built (JAX's)
    needs none: its warm-up would compile for the warm-up's shapes, which the trainer timed does not use.
    """
    if TRAINERS[implementation].COMPILED_WHEN_BUILT:
        return
    # at least one whole batch: fastgd picks its model's pass by the batch's size (kernels.train.model_blocks)
    rows = min(max(WARM_UP_ROWS, batch_size), data.X_train.shape[0])
    TRAINERS[implementation](head(data, rows), rule, hidden, min(batch_size, rows), dtype).epoch()


@contextlib.contextmanager
def same_threads(n_threads):
    """Within the block, every implementation computes on ``n_threads`` threads, as far as each can be told to.

    A ratio of two implementations' times means little when one has the cores to itself and the other not:
    on a busy two-core machine PyTorch's epoch took 21.75 ms with two threads and 3.39 ms with one. fastgd's
    loops and every BLAS loaded (NumPy's and SciPy's, which scikit-learn calls) through
    :func:`fastgd.threads.limit`; PyTorch through ``torch.set_num_threads`` (restored after); JAX through
    ``XLA_FLAGS``, which XLA reads once, when JAX first computes: later it cannot be changed, and the
    yielded description says so. Yields {implementation: how its threads were set}, for the report.
    """
    from fastgd import threads

    told = {}
    torch, torch_before = None, None
    with threads.limit(n_threads):
        told.update(fastgd=f"{n_threads} (Numba and BLAS)", numpy=f"{n_threads} (BLAS)",
                    sklearn=f"{n_threads} (BLAS)")
        if torch_available():
            import torch

            torch_before = torch.get_num_threads()
            torch.set_num_threads(n_threads)
            told["torch"] = f"{n_threads} (torch.set_num_threads)"
        if jax_available():
            told["jax"] = _limit_jax_threads(n_threads)
        try:
            yield told
        finally:
            if torch is not None:
                torch.set_num_threads(torch_before)


def _limit_jax_threads(n_threads):
    import os

    try:
        from jax._src import xla_bridge

        started = bool(xla_bridge._backends)
    except (ImportError, AttributeError):
        return "XLA's own thread pool (whether JAX had started could not be told)"
    if started:
        return "XLA's own thread pool (JAX had computed before: XLA_FLAGS can no longer be set)"
    flags = [f"--xla_cpu_multi_thread_eigen={'false' if n_threads == 1 else 'true'}",
             f"intra_op_parallelism_threads={n_threads}"]
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
    return f"{n_threads} (XLA_FLAGS intra_op_parallelism_threads, set before JAX computed)"


def warmed_trainer(implementation, data, rule, hidden, batch_size, dtype, warming=contextlib.nullcontext):
    """A new trainer of ``implementation`` after :func:`warm_up`, which runs inside the context ``warming()``."""
    with warming():
        warm_up(implementation, data, rule, hidden, batch_size, dtype)
    return TRAINERS[implementation](data, rule, hidden, batch_size, dtype)


def optax_transform(rule, lr):
    """optax's transform for ``rule`` with fastgd's (torch's) default hyperparameters, where optax has the same
    update: its momentum trace and Adam's ε placement are torch's. NotImplementedError for the other rules."""
    import optax

    hyper = optim.OPTIMIZERS[rule].default_hyperparameters() if rule in optim.OPTIMIZERS else {}
    if rule in ("sgd", "momentum", "nesterov"):
        return optax.sgd(lr, momentum=hyper["momentum"] or None, nesterov=hyper["nesterov"])
    if rule == "adam":
        return optax.adam(lr, *hyper["betas"], eps=hyper["eps"])
    if rule == "adamw":
        return optax.adamw(lr, *hyper["betas"], eps=hyper["eps"], weight_decay=hyper["weight_decay"])
    if rule == "lion":
        return optax.lion(lr, *hyper["betas"], weight_decay=hyper["weight_decay"])
    raise NotImplementedError(f"no optax transform stands in for {rule}")


class JaxTraining:
    """An MLP trained by JAX + optax the way a JAX user writes it: a whole epoch in one ``jax.jit``.

    The epoch draws a permutation, runs ``lax.scan`` over its full batches (and one step for the
    last, shorter batch) and returns the mean of the batch losses; θ and the optimizer state are
    donated to it, so XLA updates them in place. It is compiled here, for these shapes, so the
    first epoch is as warm as the next. The network is fastgd's (``coefs``/``intercepts`` as
    :meth:`fastgd.MLP.unpack` gives them, ReLU hidden layers) with fastgd's loss: softmax
    cross-entropy for class labels ``targets``, else half the mean squared error, plus
    α/(2m)·ΣW². float64 turns on ``jax_enable_x64`` for the process.
    """

    def __init__(self, coefs, intercepts, X, targets, classification, rule, lr, batch_size, alpha=0.0,
                 dtype=np.float32, seed=0):
        import jax
        import jax.numpy as jnp
        import optax

        transform = optax_transform(rule, lr)
        dtype = np.dtype(dtype)
        if dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.params = [(jnp.asarray(np.asarray(coef, dtype)), jnp.asarray(np.asarray(intercept, dtype)))
                       for coef, intercept in zip(coefs, intercepts)]
        self.opt_state = transform.init(self.params)
        self.X = jnp.asarray(np.asarray(X, dtype))
        self.targets = jnp.asarray(targets if classification else np.asarray(targets, dtype))

        def loss_of(params, X, targets):
            outputs = X
            for layer, (coef, intercept) in enumerate(params):
                outputs = outputs @ coef + intercept
                if layer < len(params) - 1:
                    outputs = jax.nn.relu(outputs)
            if classification:
                loss = optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()
            else:
                loss = 0.5 * jnp.mean((outputs - targets) ** 2)
            if alpha:
                loss = loss + 0.5 * alpha * sum(jnp.sum(coef * coef) for coef, _ in params) / X.shape[0]
            return loss

        def step(carry, rows, X, targets):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_of)(params, X[rows], targets[rows])
            updates, opt_state = transform.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        n_samples = self.X.shape[0]
        size = min(batch_size, n_samples)
        n_full = n_samples // size

        def epoch(params, opt_state, key, X, targets):
            order = jax.random.permutation(key, n_samples)
            carry, losses = jax.lax.scan(lambda carry, rows: step(carry, rows, X, targets), (params, opt_state),
                                         order[:n_full * size].reshape(n_full, size))
            total = losses.sum() * size
            if n_full * size < n_samples:
                carry, loss = step(carry, order[n_full * size:], X, targets)
                total = total + loss * (n_samples - n_full * size)
            return (*carry, total / n_samples)

        self.key = jax.random.key(seed)
        # compiled ahead, for these shapes: jax.jit would trace and compile this new closure at its first call
        # (about a second, against 2 ms for an epoch on digits), inside whatever times that call
        self._epoch = jax.jit(epoch, donate_argnums=(0, 1)).lower(self.params, self.opt_state, self.key, self.X,
                                                                  self.targets).compile()
        self._split = jax.random.split

    def epoch(self):
        """Train one epoch; its mean training loss (over batches, each before its update)."""
        self.key, key = self._split(self.key)
        self.params, self.opt_state, loss = self._epoch(self.params, self.opt_state, key, self.X, self.targets)
        return float(loss)


@contextlib.contextmanager
def parallel_threshold(n_params):
    """Optimizers built inside use their ``prange`` kernel from ``n_params`` parameters on."""
    saved = _config.PARALLEL_THRESHOLD
    _config.PARALLEL_THRESHOLD = n_params
    try:
        yield
    finally:
        _config.PARALLEL_THRESHOLD = saved


# --- one optimizer step ------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _random_vectors(n_params, dtype):
    rng = np.random.default_rng(SEED)
    return rng.standard_normal(n_params, dtype=dtype), rng.standard_normal(n_params, dtype=dtype)


def params_and_grad(n_params, dtype):
    """Standard normal parameters and gradient, fresh copies (a step writes them)."""
    params, grad = _random_vectors(n_params, np.dtype(dtype).name)
    return params.copy(), grad.copy()


def fastgd_step(rule, params, grad, parallel=None):
    """``opt.step(grad)`` of fastgd's optimizer; ``parallel`` forces the kernel form (None: by size, as users get)."""
    if parallel is None:
        optimizer = optim.OPTIMIZERS[rule](params)
    else:
        with parallel_threshold(1 if parallel else params.size + 1):
            optimizer = optim.OPTIMIZERS[rule](params)
    return functools.partial(optimizer.step, grad)


def numpy_step(rule, params, grad):
    """One step of the plain NumPy rule of ``fastgd.reference``."""
    return functools.partial(reference.ReferenceOptimizer(rule, params).step, grad)


def torch_step(rule, params, grad, fused=False):
    """``torch.optim``'s step over the same memory (``fused``: its fused CPU kernel)."""
    torch = require_torch()
    optimizer_class = torch_optimizer_class(rule)
    options = {}
    if fused:
        if "fused" not in inspect.signature(optimizer_class).parameters:
            raise NotImplementedError(f"torch.optim.{optimizer_class.__name__} has no fused implementation")
        options["fused"] = True
    tensor = torch.from_numpy(params)
    tensor.grad = torch.from_numpy(grad)
    hyperparameters = optim.OPTIMIZERS[rule].default_hyperparameters()
    return optimizer_class([tensor], **hyperparameters, **options).step


STEP_IMPLEMENTATIONS = {
    "fastgd_serial": functools.partial(fastgd_step, parallel=False),
    "fastgd_parallel": functools.partial(fastgd_step, parallel=True),
    "numpy": numpy_step,
    "torch": torch_step,
    "torch_fused": functools.partial(torch_step, fused=True),
}


def users_step_implementation(n_params):
    """The key of :data:`STEP_IMPLEMENTATIONS` that is fastgd's ``opt.step`` as users get it at ``n_params``: the
    serial kernel below ``FASTGD_PARALLEL_THRESHOLD`` parameters, the ``prange`` one from there on."""
    return "fastgd_parallel" if n_params >= _config.PARALLEL_THRESHOLD else "fastgd_serial"


def worth_timing(rule, n_params, implementation):
    """Whether a step of ``implementation`` says something the others do not, decided before torch is imported.

    The NumPy reference beyond 10⁶ parameters only for Adam (slow, and far from the memory bus
    at every size); fastgd's kernel form that users do not get at ``n_params`` only for SGD and
    Adam (the serial and ``prange`` loops are the same for every rule); torch.optim at its
    best: fused where it has a fused kernel (:data:`TORCH_FUSED`), its default loop elsewhere
    and for Adam.
    """
    if implementation == "numpy":
        return n_params <= 1_000_000 or rule == "adam"
    if implementation.startswith("fastgd") and implementation != users_step_implementation(n_params):
        return rule in ("sgd", "adam")
    if implementation == "torch_fused":
        return TORCH_OPTIMIZERS.get(rule) in TORCH_FUSED
    if implementation == "torch":
        return TORCH_OPTIMIZERS.get(rule) not in TORCH_FUSED or rule == "adam"
    return True


def step_callable(rule, n_params, dtype, implementation):
    """A zero-argument callable taking one step of ``rule`` (default hyperparameters) on ``n_params`` standard normal
    parameters with a fixed standard normal gradient; ``implementation`` is a key of :data:`STEP_IMPLEMENTATIONS`
    (NotImplementedError where it lacks the rule). Not yet called: the first call compiles fastgd's kernel."""
    return STEP_IMPLEMENTATIONS[implementation](rule, *params_and_grad(n_params, dtype))


# --- the machine's limits ----------------------------------------------------------------------

def arrays_written(rule):
    """How many parameter-sized arrays a step of ``rule`` (default hyperparameters) writes in place: θ and its
    state."""
    state = optim.OPTIMIZERS[rule](np.zeros(1)).state
    return 1 + sum(isinstance(value, np.ndarray) and value.shape == (1,) for value in state.values())


def bytes_moved(arrays, dtype, size=1):
    """Bytes a step writing ``arrays`` arrays in place moves over ``size`` elements: those read and written, and g."""
    return (2 * arrays + 1) * np.dtype(dtype).itemsize * size


def bytes_per_parameter(rule, dtype):
    """Bytes one step moves per parameter: θ and g read, θ written, each state array read and written.

    Adam in float32: (3 + 2·2) arrays × 4 bytes = 28 bytes per parameter.
    """
    return bytes_moved(arrays_written(rule), dtype)


def bytes_per_step(rule, n_params, dtype):
    """Bytes a step of ``rule`` over ``n_params`` parameters must move (:func:`bytes_per_parameter`)."""
    return bytes_per_parameter(rule, dtype) * n_params


class InPlaceStreams:
    """``arrays`` vectors of ``size`` elements updated in place from one read-only vector, on every core.

    An update step's own access pattern, its memory traffic alone: a rule writing ``arrays``
    arrays (θ and its state, :func:`arrays_written`) reads them and g and writes them back in
    place, which this does with nothing else (``fastgd.kernels.memory.in_place_streams``), over
    the same working set, counted the same way (:func:`bytes_moved`). It is the reference for
    a step of that size and number of arrays: a share of it above 1 would be a step faster
    than its traffic alone. The first call compiles the kernel.
    """

    def __init__(self, size, arrays, dtype=np.float32):
        from fastgd.kernels.memory import MAX_STREAMS, in_place_streams

        if not 1 <= arrays <= MAX_STREAMS:
            raise ValueError(f"arrays must be from 1 to {MAX_STREAMS}, got {arrays}")
        dtype = np.dtype(dtype)
        self._kernel = in_place_streams
        self.written, self.grad, self.scalar = np.ones((arrays, size), dtype), np.ones(size, dtype), dtype.type(1e-7)
        self.bytes = bytes_moved(arrays, dtype, size)

    def __call__(self):
        self._kernel(self.written, self.grad, self.scalar)

    def bandwidth(self, budget_seconds):
        """Bytes per second of the best time (as STREAM reports): a ceiling should not sink with the machine's load,
        or medians of the steps it bounds would pass it."""
        return self.bytes / seconds_per_call(self, budget_seconds, statistic=np.min)


class StreamTriad:
    """STREAM's triad a ← b + s·c over float64 arrays of ``size`` elements, on every core: main memory's bandwidth
    once the arrays outgrow the last-level cache (:data:`TRIAD_SIZE`), beside the steps' own reference. The first call
    compiles the kernel."""

    BYTES_PER_ELEMENT = 24  # as STREAM counts: read b and c, write a

    def __init__(self, size):
        from fastgd.kernels.memory import triad

        self._kernel = triad
        self.a, self.b, self.c = np.zeros(size), np.ones(size), np.full(size, 2.0)

    def __call__(self):
        self._kernel(self.a, self.b, self.c, 3.0)

    def bandwidth(self, budget_seconds):
        """Bytes per second of the best time, as STREAM reports."""
        return self.BYTES_PER_ELEMENT * self.a.size / seconds_per_call(self, budget_seconds, statistic=np.min)


# 480 MB: beyond the 260 MiB L3 of this project's machines
TRIAD_SIZE = 20_000_000


def last_level_cache_bytes(root="/sys/devices/system/cpu/cpu0/cache"):
    """The size of the CPU's last-level cache in bytes, as Linux's sysfs gives it (a VM sees its host's); None
    elsewhere. A working set below it streams from the cache, not from main memory."""
    import glob

    sizes = {}
    for directory in glob.glob(f"{root}/index*"):
        try:
            with open(f"{directory}/level") as level, open(f"{directory}/size") as size:
                text = size.read().strip()
                units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
                sizes[int(level.read())] = int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
        except (OSError, ValueError):
            continue
    return sizes[max(sizes)] if sizes else None


def in_place_bandwidth(size, dtype=np.float32, arrays=1, budget_seconds=0.2):
    """Bytes/s of :class:`InPlaceStreams`, warmed: the reference for a step of ``size`` writing ``arrays`` arrays.

    Measure it in the same run as the steps it bounds, at their size and dtype: the working set
    decides whether both stream from cache or from memory.
    """
    streams = InPlaceStreams(size, arrays, dtype)
    streams()
    return streams.bandwidth(budget_seconds)


def triad_bandwidth(size=TRIAD_SIZE, budget_seconds=0.2):
    """Bytes/s of :class:`StreamTriad`, warmed."""
    triad = StreamTriad(size)
    triad()
    return triad.bandwidth(budget_seconds)


def gemm_rate(dtype, budget_seconds, shapes=((2048, 2048, 2048),)):
    """FLOP per second of NumPy's BLAS over the matrix products ``shapes``, each ``(m, k, n)``: an m×k by a k×n.

    A call runs every product once; the default is the square 2048² product, the BLAS's peak.
    """
    rng = np.random.default_rng(SEED)
    operands = [(rng.random((m, k)).astype(dtype), rng.random((k, n)).astype(dtype)) for m, k, n in shapes]
    outputs = [np.empty((m, n), dtype) for m, _, n in shapes]

    def products():
        for (a, b), out in zip(operands, outputs):
            np.matmul(a, b, out=out)

    return sum(2 * m * k * n for m, k, n in shapes) / seconds_per_call(products, budget_seconds)


def mkl_gemm_rate(dtype, budget_seconds, shape=(2048, 2048, 2048)):
    """FLOP per second of MKL's ``?gemm`` (the threaded passes' BLAS) on one ``(m, k, n)`` product, the square 2048²
    by default; raises :class:`fastgd.kernels.mkl.MKLError` where MKL is not installed."""
    from fastgd.kernels import floors, mkl

    mkl.load()  # before products_on_mkl is compiled or loaded: it links MKL's cblas_?gemm
    m, k, n = shape
    rng = np.random.default_rng(SEED)
    A, B = rng.random(m * k).astype(dtype), rng.random(k * n).astype(dtype)
    C = np.empty(m * n, dtype)
    run = _config.compile_for(floors.products_on_mkl, (A, B, C, m, n, k, 1))
    run(A, B, C, m, n, k, 1)
    return 2 * m * k * n / seconds_per_call(lambda: run(A, B, C, m, n, k, 1), budget_seconds)


def peak_gemm_rate(dtype, budget_seconds):
    """``(FLOP per second, BLAS name)``: the higher of NumPy's BLAS's and MKL's 2048² rates (MKL's where installed).

    The matrix-product peak of the machine as fastgd's passes can reach it: a share against the
    slower BLAS's peak would overstate itself where the passes run on the faster one.
    """
    from fastgd.kernels.mkl import MKLError

    rates = {"NumPy's BLAS": gemm_rate(dtype, budget_seconds)}
    try:
        rates["MKL"] = mkl_gemm_rate(dtype, budget_seconds)
    except MKLError:
        pass
    name = max(rates, key=rates.get)
    return rates[name], name


def epoch_gemm_shapes(layer_sizes, batch_size):
    """The matrix products of one batch's pass, as ``(m, k, n)``: per layer forward X·W, backward Aᵀ·δ, and
    δ·Wᵀ (not for the input layer)."""
    shapes = []
    for layer, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        shapes += [(batch_size, n_in, n_out), (n_in, batch_size, n_out)]
        if layer > 0:
            shapes.append((batch_size, n_out, n_in))
    return shapes


def epoch_matmul_flops(n_samples, layer_sizes):
    """FLOPs of an epoch's matrix products (those of :func:`epoch_gemm_shapes`, over ``n_samples`` rows)."""
    return sum(2 * m * k * n for m, k, n in epoch_gemm_shapes(layer_sizes, n_samples))


def network_gemm_rate(layer_sizes, batch_size, dtype, budget_seconds):
    """FLOP per second of NumPy's BLAS on the network's own products (:func:`epoch_gemm_shapes`): the peak an epoch of
    that network could reach with its matrix products, against 2048²'s for large ones."""
    return gemm_rate(dtype, budget_seconds, epoch_gemm_shapes(layer_sizes, batch_size))
