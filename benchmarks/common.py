"""What the benchmarks share: the parameter grids, the implementations under test, the machine's limits.

The grids come from fastgd's registries (``optim.OPTIMIZERS``, ``datasets.BUNDLED``), so a new
rule or data set is benchmarked without touching the suite; ``tests/test_benchmarks.py`` fails
when one is left out.

Two families of implementations stand side by side:

* one optimizer step over a flat parameter vector (``STEP_IMPLEMENTATIONS``): fastgd's
  ``opt.step`` with its serial or its ``prange`` kernel, the plain NumPy rules of
  ``fastgd.reference``, and ``torch.optim`` (its default single-tensor loop, and its fused kernel
  where torch has one);
* MLP training (``TRAINERS``, benchopt's "solvers"): fastgd's compiled epoch, the NumPy
  reference network, scikit-learn's MLP, a plain PyTorch loop and JAX + optax with a jitted
  whole epoch, all with the same network (ReLU hidden layers, one by default or those of
  ``NETWORKS``; softmax output with cross-entropy or identity output with half the squared
  error), the same Glorot-uniform weights (scikit-learn's draw for ``SEED``), no L2 penalty,
  and the same learning rate per rule.

Numba compiles on first call: every benchmark warms its kernels in ``setup`` under
:func:`numba_cache_lock`, so compilation never leaks into a timing and concurrent benchmark
processes never write the shared on-disk cache at the same time.
"""

import abc
import contextlib
import dataclasses
import fcntl
import functools
import inspect
import json
import math
import os
import subprocess
import sys
import time
import warnings

import numpy as np
# Imported once, here, by asv's fork server, rather than by each of the thousands of benchmark
# processes it forks (about a second each): fastgd.datasets and the scikit-learn trainer use them.
# Not torch: it would add its memory to every peak-memory figure.
import sklearn.datasets  # noqa: F401
import sklearn.model_selection  # noqa: F401
import sklearn.neural_network  # noqa: F401
import sklearn.preprocessing  # noqa: F401

from benchmarks import NUMBA_CACHE_DIR
from fastgd import MLP, _config, baselines, datasets, optim, reference
from fastgd.kernels.memory import triad
from fastgd.training import Training

SEED = 0
DTYPES = ("float32", "float64")
RULES = tuple(optim.OPTIMIZERS)
LARGE_SYNTHETIC = "synthetic_100000x100"
DATASETS = (*datasets.BUNDLED, LARGE_SYNTHETIC)
# Seconds a track_ that times something spends measuring it (tests set 0: the fewest calls).
TRACK_SECONDS = 0.5

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


# --- Numba -------------------------------------------------------------------------------------

@contextlib.contextmanager
def numba_cache_lock():
    """This process alone compiles into (or loads from) the suite's Numba cache while inside.

    Numba names a new cache entry's data file after the number of entries its index holds: two
    processes compiling two signatures of one function at once can both write ``...1.nbc``, and
    one index entry then points at the other signature's machine code. Benchmarks compile only
    in their warm-ups, and every warm-up runs inside this lock.
    """
    os.makedirs(NUMBA_CACHE_DIR, exist_ok=True)
    with open(os.path.join(NUMBA_CACHE_DIR, "compile.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def parallel_threshold(n_params):
    """Optimizers built inside use their ``prange`` kernel from ``n_params`` parameters on."""
    saved = _config.PARALLEL_THRESHOLD
    _config.PARALLEL_THRESHOLD = n_params
    try:
        yield
    finally:
        _config.PARALLEL_THRESHOLD = saved


def require_torch():
    """``torch``, or NotImplementedError (asv's "skipped") when it is not installed."""
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed") from None
    return torch


def torch_optimizer_class(rule):
    """torch.optim's class for ``rule`` (fastgd.baselines.TORCH_OPTIMIZERS); asv's "skipped" where torch has none,
    a user's rule included."""
    name = baselines.TORCH_OPTIMIZERS.get(rule)
    if name is None:
        raise NotImplementedError(f"torch.optim has no {rule}")
    return getattr(require_torch().optim, name)


# --- timing ------------------------------------------------------------------------------------

def seconds_per_call(function, budget_seconds, min_repeats=3, statistic=np.median):
    """Median (or ``statistic``) seconds of one call of an already warmed ``function``.

    Calls are timed in batches, ten times longer until a batch lasts a millisecond (well above
    the clock's resolution); batches repeat until ``budget_seconds`` have passed, at least
    ``min_repeats`` times.
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
    return float(statistic(per_call))


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


def bytes_per_step(rule, n_params, dtype):
    """Bytes a step must move: θ, g and every state array read once, θ and the state written once.

    Adam in float32: (3 + 2·2) arrays × 4 bytes = 28 bytes per parameter.
    """
    return baselines.bytes_per_parameter(rule, dtype) * n_params


# --- the machine's limits ----------------------------------------------------------------------

class StreamTriad:
    """STREAM's triad a = b + s·c over float64 arrays of ``size`` elements, on every core; built warm."""

    BYTES_PER_ELEMENT = 24  # as STREAM counts: read b and c, write a

    def __init__(self, size):
        self.a, self.b, self.c = np.zeros(size), np.ones(size), np.full(size, 2.0)
        with numba_cache_lock():
            self()

    def __call__(self):
        triad(self.a, self.b, self.c, 3.0)

    def bandwidth(self, budget_seconds):
        """Bytes per second."""
        return self.BYTES_PER_ELEMENT * self.a.size / seconds_per_call(self, budget_seconds)


class InPlaceStreams:
    """``arrays`` vectors of ``size`` elements updated in place from one read-only vector, on every core; built warm.

    The ceiling of a step writing as many arrays (θ and its state) over as many
    elements: the same bytes over the same working set, so both stream from the
    same level of the memory hierarchy (a 10⁷ float32 step fits this machine's
    260 MiB L3; STREAM's triad of 10⁷ float64 does not).
    """

    def __init__(self, size, arrays, dtype=np.float32):
        self._call, self.bytes = baselines.in_place_streams(size, arrays, dtype)
        with numba_cache_lock():
            self()

    def __call__(self):
        self._call()

    def bandwidth(self, budget_seconds):
        """Bytes per second, of the best time (as STREAM reports): a ceiling should not sink with the load."""
        return self.bytes / seconds_per_call(self, budget_seconds, statistic=np.min)


def gemm_rate(dtype, budget_seconds, size=2048):
    """FLOP per second of a square matrix product through NumPy's BLAS."""
    a = np.random.default_rng(SEED).random((size, size)).astype(dtype)
    b = a.copy()
    return 2 * size**3 / seconds_per_call(lambda: a @ b, budget_seconds)


def epoch_matmul_flops(n_samples, layer_sizes):
    """FLOPs of an epoch's matrix products: forward X·W, backward Aᵀ·δ and δ·Wᵀ (not for the input layer)."""
    flops = 0
    for layer, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        flops += 2 * n_samples * n_in * n_out * (3 if layer > 0 else 2)
    return flops


# --- start-up cost -----------------------------------------------------------------------------

# Code run in a fresh interpreter, timed from before the first import: what a user waits for.
START_WORKLOADS = {
    "import_numba": "import numba\n",  # the floor under every other workload
    "adam_step": (
        "import numpy as np\n"
        "from fastgd import optim\n"
        "optimizer = optim.Adam(np.zeros(1000, np.float32))\n"
        "optimizer.step(np.ones(1000, np.float32))\n"
    ),
    "classifier_fit": (
        "from fastgd import MLPClassifier, datasets\n"
        "data = datasets.load('digits')\n"
        "MLPClassifier(hidden_layer_sizes=(32,), batch_size=32, max_iter=1).fit(data.X_train, data.y_train)\n"
    ),
}


def _fresh_python(arguments, cache_dir):
    """The last line a fresh ``python ARGUMENTS`` prints, with ``cache_dir`` as Numba's cache (generated rule
    modules beside it, whatever the environment says) and warnings off."""
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONWARNINGS="ignore")
    environment.pop("FASTGD_GENERATED_DIR", None)
    output = subprocess.run([sys.executable, *arguments], env=environment, check=True, capture_output=True, text=True)
    return output.stdout.strip().splitlines()[-1]


def start_seconds(workload, cache_dir):
    """Seconds a fresh Python process takes for ``START_WORKLOADS[workload]``, imports included, with ``cache_dir`` as Numba's cache."""
    code = f"import time\nstart = time.perf_counter()\n{START_WORKLOADS[workload]}print(time.perf_counter() - start)\n"
    return float(_fresh_python(["-c", code], cache_dir))


# --- compilation per fit: what each new rule and dtype costs ------------------------------------

# A user's rule, as a plugin file: sign descent with a gradient-scaled step.
USER_RULE_PLUGIN = """
from fastgd import rules

def sign_descent_element(param, grad, lr, eps):
    return param - lr * grad / (abs(grad) + eps)

rules.register(rules.Rule("sign_descent", element=sign_descent_element,
                          hyperparameters={"lr": rules.LearningRate(1e-3), "eps": rules.Real(1e-8)}))
"""

# Each stage is the seconds of one MLPClassifier fit (one epoch on digits), imports and data excluded,
# after the stages before it in the same process.
COMPILE_STAGES = {
    "first_fit": ("adam", "float64"),
    "next_rule": ("sgd", "float64"),
    "next_dtype": ("adam", "float32"),
}
_FITS = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from fastgd import MLPClassifier, datasets, rules
data = datasets.load("digits")
rules.load_plugins(sys.argv[2:])
seconds = {}
for stage, (optimizer, dtype) in json.loads(sys.argv[1]).items():
    start = time.perf_counter()
    MLPClassifier(hidden_layer_sizes=(32,), batch_size=32, max_iter=1, optimizer=optimizer, dtype=dtype).fit(
        data.X_train, data.y_train)
    seconds[stage] = time.perf_counter() - start
print(json.dumps(seconds))
"""


def _fit_seconds(stages, cache_dir, plugins=()):
    return json.loads(_fresh_python(["-c", _FITS, json.dumps(stages), *map(str, plugins)], cache_dir))


def warm_first_fit_seconds(cache_dir):
    """Seconds of a first one-epoch ``MLPClassifier.fit`` on digits in a fresh process, imports and data excluded,
    with ``cache_dir`` as Numba's cache (fill it first for the warm figure)."""
    return _fit_seconds({"first_fit": COMPILE_STAGES["first_fit"]}, cache_dir)["first_fit"]


def compile_costs(work_dir):
    """Seconds of each fit of :data:`COMPILE_STAGES` from an empty cache, a user's rule's first fit from an empty
    cache, and the first fit again with the cache filled; fresh processes, ``work_dir`` for caches and the plugin."""
    costs = _fit_seconds(COMPILE_STAGES, os.path.join(work_dir, "cache"))
    costs["cached_first_fit"] = warm_first_fit_seconds(os.path.join(work_dir, "cache"))
    plugin = os.path.join(work_dir, "sign_descent.py")
    with open(plugin, "w") as file:
        file.write(USER_RULE_PLUGIN)
    costs["user_rule_first_fit"] = _fit_seconds({"user": ("sign_descent", "float64")},
                                                os.path.join(work_dir, "user-cache"), [plugin])["user"]
    return costs


def print_and_save(lines, results, out=None):
    """Print a script's markdown summary; with ``out``, write it there and the numbers beside it as ``.json``."""
    print("\n".join(lines))
    if out:
        with open(out, "w") as markdown:
            markdown.write("\n".join(lines) + "\n")
        with open(os.path.splitext(out)[0] + ".json", "w") as raw:
            json.dump(results, raw, indent=2)


# --- data --------------------------------------------------------------------------------------

def save_large_synthetic(directory):
    """Write the large synthetic set (split, standardised) to ``directory``; return the file's path.

    Benchmarks load it from there (``setup_cache``): generating it anew in every benchmark
    process would cost seconds each and swell every peak-memory figure.
    """
    n_samples, n_features = map(int, LARGE_SYNTHETIC.removeprefix("synthetic_").split("x"))
    data = datasets.synthetic("classification", n_samples, n_features, random_state=SEED)
    return _save(data, os.path.join(directory, f"{LARGE_SYNTHETIC}.npz"))


def _save(data, path):
    np.savez(path, X_train=data.X_train, X_test=data.X_test, y_train=data.y_train, y_test=data.y_test)
    return path


def _load_saved(path, name, n_classes):
    """A classification set written by :func:`_save`, read-only as ``datasets.load`` gives its arrays."""
    with np.load(path) as saved:
        arrays = {key: saved[key] for key in ("X_train", "X_test", "y_train", "y_test")}
    for array in arrays.values():
        array.flags.writeable = False  # as datasets.load gives them: Numba types read-only arrays apart
    return datasets.Dataset(name, "classification", n_classes=n_classes, **arrays)


def load_dataset(name, large_synthetic_path=None):
    """A bundled set by name, or the large synthetic set from where :func:`save_large_synthetic` put it."""
    if name in datasets.BUNDLED:
        return datasets.load(name)
    if name != LARGE_SYNTHETIC:
        raise ValueError(f"unknown dataset {name!r}; known: {DATASETS}")
    return _load_saved(large_synthetic_path, LARGE_SYNTHETIC, n_classes=2)


# --- real network sizes (issue 15) -------------------------------------------------------------

NETWORK_TRAINING_ROWS = 20_000
NETWORK_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Network:
    """A network size of issue 15, trained with Adam: its data, hidden layers, batch size and dtype.

    ``source`` is ``"digits"`` (bundled, 1,347 training rows) or ``"synthetic"``:
    ``make_classification`` with ``n_features`` features, 10 classes and
    ``NETWORK_TRAINING_ROWS`` training rows (a third as many again held out), standardised.
    """

    source: str
    n_features: int
    hidden: tuple
    batch_size: int
    dtype: str

    @property
    def layer_sizes(self):
        return [self.n_features, *self.hidden, NETWORK_CLASSES]

    @property
    def label(self):
        """e.g. ``"100-256-256-10/64"``: the layer sizes and, after the slash, the batch size."""
        sizes = "-".join(map(str, self.layer_sizes))
        prefix = "" if self.source == "synthetic" else f"{self.source} "
        return f"{prefix}{sizes}/{self.batch_size}"

    @property
    def data_file(self):
        """The file :func:`save_network_data` writes this network's data to (None: a bundled set)."""
        return f"network_synthetic_{self.n_features}.npz" if self.source == "synthetic" else None


# The one table of network sizes: the asv suite (bench_training.NetworkEpoch) and
# scripts/network_speed.py both read it. By label, in the order of issue 15.
NETWORKS = {network.label: network for network in (
    Network("synthetic", 100, (256, 256), 64, "float32"),
    Network("synthetic", 256, (512, 512), 256, "float32"),
    Network("synthetic", 256, (1024, 1024), 1024, "float32"),
    Network("digits", 64, (32,), 32, "float64"),
)}


def network_synthetic(n_features):
    """The synthetic set of the network sizes with ``n_features`` features (a second or two to generate)."""
    n_samples = round(NETWORK_TRAINING_ROWS / (1 - datasets.TEST_SIZE))
    return datasets.synthetic("classification", n_samples, n_features, n_classes=NETWORK_CLASSES, random_state=SEED)


def save_network_data(directory):
    """Write every synthetic set :data:`NETWORKS` trains on to ``directory`` (once each); return ``directory``.

    For ``setup_cache``, as :func:`save_large_synthetic`: benchmark processes then load them.
    """
    for network in NETWORKS.values():
        if network.data_file and not os.path.exists(os.path.join(directory, network.data_file)):
            _save(network_synthetic(network.n_features), os.path.join(directory, network.data_file))
    return directory


def load_network_data(label, directory=None):
    """The data set of ``NETWORKS[label]``: from ``directory`` where :func:`save_network_data` wrote it,
    generated here without one."""
    network = NETWORKS[label]
    if network.source == "digits":
        data = datasets.load("digits")
    elif directory is None:
        data = network_synthetic(network.n_features)
    else:
        data = _load_saved(os.path.join(directory, network.data_file), f"synthetic_{network.n_features}",
                           n_classes=NETWORK_CLASSES)
    if [data.n_features, data.n_outputs] != [network.n_features, NETWORK_CLASSES]:
        raise ValueError(f"{label}: the data set has {data.n_features} features and {data.n_outputs} outputs")
    return data


def head(data, n_rows):
    """The first ``n_rows`` training rows of ``data`` (views: same dtype, layout and flags)."""
    return dataclasses.replace(data, X_train=data.X_train[:n_rows], y_train=data.y_train[:n_rows])


def score_on_test_split(data, outputs):
    """Accuracy (classification) or R² (regression) of network outputs on the test split."""
    if data.task == "classification":
        return float(np.mean(np.argmax(outputs, axis=1) == data.y_test))
    residual = np.sum((data.y_test - outputs.ravel()) ** 2)
    return float(1.0 - residual / np.sum((data.y_test - data.y_test.mean()) ** 2))


# --- MLP training ------------------------------------------------------------------------------

class Trainer(abc.ABC):
    """One implementation of MLP training: built with its data and settings, then epoch after epoch.

    ``data``: a ``fastgd.datasets.Dataset``; ``rule``: a key of ``optim.OPTIMIZERS`` (an
    implementation without it raises NotImplementedError); ``hidden``: units of the one hidden
    layer, or a tuple of units per hidden layer; ``batch_size``: samples per update (at most the training set); ``dtype``: of the
    parameters and of the arithmetic. Shuffling and initial weights come from ``SEED``, the
    learning rate from :func:`learning_rate`.
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
        """Seconds per epoch of a fit that lasts about ``budget_seconds`` (one epoch if that is longer)."""
        start = time.perf_counter()
        finite(self.epoch())
        first = time.perf_counter() - start
        n_epochs = int(budget_seconds / first)
        if n_epochs < 2:
            return first
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
    if not baselines.jax_available():
        raise NotImplementedError("jax and optax are not installed (pip install 'fastgd[jax]')")


class JaxTrainer(Trainer):
    """JAX + optax, the compiled peer a user would pick instead: a whole epoch in one ``jax.jit``
    (``fastgd.baselines.JaxTraining``, compiled when the trainer is built, so the first epoch is
    timed as warm as the next). Same network, initial weights and loss as the others."""

    COMPILED_WHEN_BUILT = True

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        require_jax()
        coefs, intercepts = MLP(self.layer_sizes, "relu", data.output, alpha=0.0, dtype=self.dtype).unpack(
            self.initial_theta())
        classification = data.task == "classification"
        self.training = baselines.JaxTraining(coefs, intercepts, data.X_train,
                                              data.y_train if classification else data.Y_train, classification,
                                              rule, self.learning_rate, batch_size, dtype=self.dtype, seed=SEED)

    def epoch(self):
        return self.training.epoch()


TRAINERS = {"fastgd": FastgdTrainer, "numpy": NumpyTrainer, "sklearn": SklearnTrainer, "torch": TorchTrainer,
            "jax": JaxTrainer}
WARM_UP_ROWS = 64


def warm_up(implementation, data, rule, hidden, batch_size, dtype):
    """One epoch of ``implementation`` on the first rows of the same arrays, outside any timing.

    It compiles (or loads) every Numba kernel an epoch calls, for exactly these array types
    (a slice has the dtype, layout and flags of the whole), and pays torch's and
    scikit-learn's first-call costs. A trainer that compiles for its own shapes when built (JAX's)
    needs none.
    """
    if TRAINERS[implementation].COMPILED_WHEN_BUILT:
        return  # its warm-up would compile for the warm-up's shapes, which the trainer timed does not use
    rows = min(WARM_UP_ROWS, data.X_train.shape[0])
    with numba_cache_lock():
        TRAINERS[implementation](head(data, rows), rule, hidden, min(batch_size, rows), dtype).epoch()


def warmed_trainer(implementation, data, rule, hidden, batch_size, dtype):
    """A new trainer of ``implementation``, after :func:`warm_up`."""
    warm_up(implementation, data, rule, hidden, batch_size, dtype)
    return TRAINERS[implementation](data, rule, hidden, batch_size, dtype)
