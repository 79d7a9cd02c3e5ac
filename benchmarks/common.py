"""The asv suite's glue: parameter grids, the Numba cache lock, warm-ups under it, and the files ``setup_cache`` writes.

What is measured, and how, is ``fastgd.baselines``, the one measurement layer the comparison
report uses too: its trainers (fastgd, NumPy, scikit-learn, PyTorch, JAX + optax), its update
steps, its timer (``baselines.seconds_per_call``) and the machine's limits. The grids come from
fastgd's registries (``optim.OPTIMIZERS``, ``datasets.BUNDLED``), so a new rule or data set is
benchmarked without touching the suite; ``tests/test_benchmarks.py`` fails when one is left out.

Numba compiles on first call: every benchmark warms its kernels in ``setup`` under
:func:`numba_cache_lock`, so compilation never leaks into a timing and concurrent benchmark
processes never write the shared on-disk cache at the same time.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import time

import numpy as np
# Imported once, here, by asv's fork server, rather than by each of the thousands of benchmark
# processes it forks (about a second each): fastgd.datasets and the scikit-learn trainer use them.
# Not torch: it would add its memory to every peak-memory figure.
import sklearn.datasets  # noqa: F401
import sklearn.metrics  # noqa: F401
import sklearn.model_selection  # noqa: F401
import sklearn.neural_network  # noqa: F401
import sklearn.preprocessing  # noqa: F401

from benchmarks import NUMBA_CACHE_DIR
from fastgd import baselines, datasets, optim

DTYPES = ("float32", "float64")
RULES = tuple(optim.OPTIMIZERS)
LARGE_SYNTHETIC = datasets.synthetic_name("classification", 100_000, 100)
DATASETS = (*datasets.BUNDLED, LARGE_SYNTHETIC)
# Seconds a track_ that times something spends measuring it (tests set 0: the fewest calls): batches of
# at least a millisecond, so a median of up to 200; every process also pays its setup (a second or two:
# loading kernels, importing torch or JAX), which this should not dwarf when asv runs every combination.
TRACK_SECONDS = 0.2


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



def warmed(call):
    """``call`` after one call under :func:`numba_cache_lock` (which compiles, or loads, its kernels)."""
    with numba_cache_lock():
        call()
    return call


def warm_up(implementation, data, rule, hidden, batch_size, dtype):
    """``baselines.warm_up`` under :func:`numba_cache_lock`: one epoch on the first rows, outside any timing."""
    with numba_cache_lock():
        baselines.warm_up(implementation, data, rule, hidden, batch_size, dtype)


def warmed_trainer(implementation, data, rule, hidden, batch_size, dtype):
    """A new trainer of ``implementation`` (``baselines.TRAINERS``), after :func:`warm_up`."""
    return baselines.warmed_trainer(implementation, data, rule, hidden, batch_size, dtype, warming=numba_cache_lock)


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
    modules beside it, whatever the environment says) and warnings off.

    Python writes its bytecode (``__pycache__``) as it would for a user, whatever
    ``PYTHONDONTWRITEBYTECODE`` says: with it set (this project's machines set it), every process
    compiled fastgd's modules from source again, 40 ms of every warm start that no installed
    package pays.
    """
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONWARNINGS="ignore")
    environment.pop("FASTGD_GENERATED_DIR", None)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    output = subprocess.run([sys.executable, *arguments], env=environment, check=True, capture_output=True, text=True)
    return output.stdout.strip().splitlines()[-1]


def start_seconds(workload, cache_dir):
    """Seconds a fresh Python process takes for ``START_WORKLOADS[workload]``, imports included, with ``cache_dir`` as
    Numba's cache."""
    code = f"import time\nstart = time.perf_counter()\n{START_WORKLOADS[workload]}print(time.perf_counter() - start)\n"
    return float(_fresh_python(["-c", code], cache_dir))


# --- a fit's fixed cost: what a whole fit costs beyond its epochs --------------------------------

FIT_EPOCHS = 20


def fit_fixed_cost(n_pairs=15, n_epochs=FIT_EPOCHS):
    """What a ``n_epochs``-epoch ``MLPClassifier.fit`` on digits (32 ReLU units, batches of 32, Adam) costs
    beyond its epochs, in seconds, medians over ``n_pairs`` alternated measurements:

    ``fit``, the whole fit; ``fixed``, the fit less ``n_epochs`` epochs of the same network, rule and
    data trained by a ``Training`` alone, measured right after it (each pair's difference, then their
    median: the medians of two series that drift apart by a few per cent would differ by more than
    the cost measured); ``beyond_compiled``, the fit less the seconds its compiled epochs took
    themselves (``history_.seconds``), which also counts each epoch's Python around them.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from fastgd import MLP, MLPClassifier, Training

    data = datasets.load("digits")
    settings = dict(hidden_layer_sizes=(32,), batch_size=32, max_iter=n_epochs, tol=0.0,
                    n_iter_no_change=n_epochs + 1, random_state=baselines.SEED)
    net = MLP([data.n_features, 32, data.n_outputs], "relu", "softmax", alpha=1e-4, dtype=np.float64)
    fits, fixed, beyond_compiled = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is reached on purpose
        with numba_cache_lock():
            MLPClassifier(**settings).fit(data.X_train, data.y_train)  # compile or load outside the timing
        for _ in range(n_pairs + 1):  # the first pair warms up
            start = time.perf_counter()
            fitted = MLPClassifier(**settings).fit(data.X_train, data.y_train)
            fit_seconds = time.perf_counter() - start
            training = Training(net, optim.Adam(net.init(baselines.SEED), lr=1e-3), data.X_train, data.Y_train, 32,
                                seed=baselines.SEED)
            start = time.perf_counter()
            for _ in range(n_epochs):
                training.epoch()
            epochs_seconds = time.perf_counter() - start
            fits.append(fit_seconds)
            fixed.append(fit_seconds - epochs_seconds)
            beyond_compiled.append(fit_seconds - fitted.history_.seconds[-1])
    return {name: float(np.median(values[1:])) for name, values in
            (("fit", fits), ("fixed", fixed), ("beyond_compiled", beyond_compiled))}


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


# --- data: generated at most once per asv run ----------------------------------------------------

def load_dataset(name, directory=None):
    """``baselines.dataset(name)``; with ``directory`` (a ``setup_cache`` directory), generated there once, at the
    first benchmark process that needs it, and loaded from its file after.

    Generating a large set anew in every benchmark process would cost seconds each and swell
    every peak-memory figure; generating every set in ``setup_cache`` would make ``asv run -b``
    on one combination pay for all. Its arrays are read-only, as ``datasets.load`` gives them
    (Numba types read-only arrays apart). Bundled sets load fast from scikit-learn: never written.
    """
    if name in datasets.BUNDLED or directory is None:
        return baselines.dataset(name)
    path = os.path.join(directory, f"{name}.npz")
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process generates it; the others wait and load it
        if not os.path.exists(path):
            data = baselines.dataset(name)
            np.savez(path + ".partial.npz", X_train=data.X_train, X_test=data.X_test, y_train=data.y_train,
                     y_test=data.y_test, n_classes=data.n_classes)
            os.replace(path + ".partial.npz", path)
    with np.load(path) as saved:
        arrays = {key: saved[key] for key in ("X_train", "X_test", "y_train", "y_test")}
        n_classes = int(saved["n_classes"])
    for array in arrays.values():
        array.flags.writeable = False
    return datasets.Dataset(name, "classification", n_classes=n_classes, **arrays)


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
    def dataset(self):
        """Its data set's name for ``baselines.dataset``."""
        if self.source != "synthetic":
            return self.source
        n_samples = round(NETWORK_TRAINING_ROWS / (1 - datasets.TEST_SIZE))
        return datasets.synthetic_name("classification", n_samples, self.n_features, NETWORK_CLASSES)


# The one table of network sizes: the asv suite (bench_training.NetworkEpoch) and
# scripts/network_speed.py both read it. By label, in the order of issue 15.
NETWORKS = {network.label: network for network in (
    Network("synthetic", 100, (256, 256), 64, "float32"),
    Network("synthetic", 256, (512, 512), 256, "float32"),
    Network("synthetic", 256, (1024, 1024), 1024, "float32"),
    Network("digits", 64, (32,), 32, "float64"),
)}


def load_network_data(label, directory=None):
    """The data set of ``NETWORKS[label]`` (:func:`load_dataset`)."""
    network = NETWORKS[label]
    data = load_dataset(network.dataset, directory)
    if [data.n_features, data.n_outputs] != [network.n_features, NETWORK_CLASSES]:
        raise ValueError(f"{label}: the data set has {data.n_features} features and {data.n_outputs} outputs")
    return data


# --- declared CNNs (issue 26) --------------------------------------------------------------------

CNN_IMPLEMENTATIONS = ("fastgd", "torch", "jax", "jax_steps")
CNN_LEARNING_RATE = 1e-3  # Adam's default
# every framework on one thread: a ratio means little when one has the cores and the other not (issue 25)
CNN_THREADS = 1


@dataclasses.dataclass(frozen=True)
class Cnn:
    """A declared CNN of issue 26's speed table, trained with Adam in float32.

    ``network`` is a :func:`fastgd.networks.known` name. Without ``n_batches`` it trains on
    scikit-learn's 8×8 digits (bundled, 1,347 training rows); with it, on that many batches of
    standard normal inputs with random labels (a speed measurement: the data's meaning does not
    change the work, and a few batches keep an epoch of the large networks to a second or so).
    """

    network: str
    batch_size: int
    n_batches: int = None

    @property
    def label(self):
        return f"{self.network}/{self.batch_size}"

    def data(self):
        """(the network, X as (n, *input_shape) float32, one-hot Y float32)."""
        from fastgd import networks

        net = networks.known(self.network)
        if self.n_batches is None:
            digits = datasets.load("digits")
            X, Y = digits.X_train, digits.Y_train
        else:
            rng = np.random.default_rng(0)
            n_rows = self.n_batches * self.batch_size
            X = rng.standard_normal((n_rows, net.n_inputs))
            Y = np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, n_rows)]
        X = np.ascontiguousarray(X, dtype=np.float32).reshape((-1,) + net.input_shape)
        return net, X, np.ascontiguousarray(Y, dtype=np.float32)


# By label: the digits CNN at batch 64 and DeepOBS's 2c2d at batch 128 on four batches (issue 26's table)
CNNS = {cnn.label: cnn for cnn in (Cnn("digits_cnn", 64), Cnn("mnist_2c2d", 128, n_batches=4))}


def torch_sequential(net, theta):
    """``torch.nn.Sequential`` of a declared network's layers with its parameters θ (``net.unpack``'s names are
    torch's ``state_dict`` keys); NotImplementedError for a layer it does not translate."""
    import torch
    from torch import nn

    modules, shape = [], net.input_shape
    for layer, resolved in zip(net.layers, net.resolved):
        kind = type(layer).__name__
        if kind == "Dense":
            modules.append(nn.Linear(shape[0], layer.out_features, bias=layer.bias))
        elif kind in ("Conv1D", "Conv2D"):
            conv = nn.Conv1d if kind == "Conv1D" else nn.Conv2d
            modules.append(conv(shape[0], layer.out_channels, layer.kernel_size, stride=layer.stride,
                                padding=layer.padding, bias=layer.bias))
        elif kind in ("MaxPool1D", "MaxPool2D") and not isinstance(layer.padding, str):
            pool = nn.MaxPool1d if kind == "MaxPool1D" else nn.MaxPool2d
            modules.append(pool(layer.kernel_size, layer.stride, padding=layer.padding))
        elif kind in ("ReLU", "Tanh", "Sigmoid", "Identity", "Flatten"):
            modules.append(getattr(nn, kind)())
        else:
            raise NotImplementedError(f"layer {kind} has no PyTorch translation here")
        shape = resolved.out_shape
    module = nn.Sequential(*modules)
    module.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in net.unpack(theta).items()})
    return module


class CnnEpochs:
    """One implementation's epochs of a :class:`Cnn`: fastgd's ``Training`` (one compiled call an epoch),
    PyTorch's ``nn.Sequential`` with ``torch.optim.Adam`` over shuffled batches, as its users train, or JAX +
    optax's jitted epoch (``baselines.JaxNetworkTraining``: ``lax.scan`` over the batches of a permutation drawn
    by NumPy; ``jax_steps``, one jitted step a batch, which XLA's CPU backend runs faster on large
    convolutions). All start from the same θ (``net.init``, torch's default initialisation), cross-entropy, float32;
    NotImplementedError where PyTorch, or JAX and optax, are not installed."""

    def __init__(self, cnn, implementation):
        from fastgd.training import Training

        net, X, Y = cnn.data()
        theta = net.init(random_state=0, dtype=np.float32)
        self.n_samples, self.batch_size = X.shape[0], cnn.batch_size
        if implementation == "fastgd":
            self.training = Training(net, optim.Adam(theta, lr=CNN_LEARNING_RATE), X, Y, cnn.batch_size, seed=0)
            self.epoch = self.training.epoch
        elif implementation == "torch":
            torch = baselines.require_torch()
            self.torch = torch
            self.module = torch_sequential(net, theta)
            self.optimizer = torch.optim.Adam(self.module.parameters(), lr=CNN_LEARNING_RATE)
            self.X, self.labels = torch.from_numpy(X), torch.from_numpy(Y.argmax(axis=1))
            self.generator = torch.Generator().manual_seed(0)
            self.epoch = self._torch_epoch
        elif implementation in ("jax", "jax_steps"):
            if not baselines.jax_available():
                raise NotImplementedError("JAX and optax are not installed (pip install 'fastgd[jax]')")
            self.training = baselines.JaxNetworkTraining(net, theta, X, Y, CNN_LEARNING_RATE, cnn.batch_size,
                                                         per_step=implementation == "jax_steps")
            orders = np.random.default_rng(0)
            self.epoch = lambda: self.training.epoch(orders.permutation(self.n_samples))
        else:
            raise ValueError(f"implementation must be one of {CNN_IMPLEMENTATIONS}, got {implementation!r}")

    def _torch_epoch(self):
        torch = self.torch
        order = torch.randperm(self.n_samples, generator=self.generator)
        total = 0.0
        for start in range(0, self.n_samples, self.batch_size):
            rows = order[start:start + self.batch_size]
            self.optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.module(self.X[rows]), self.labels[rows])
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(rows)
        return total / self.n_samples

    def seconds_per_epoch(self, budget_seconds):
        """Median seconds of an epoch over about ``budget_seconds`` (one epoch at least), on :data:`CNN_THREADS`."""
        with baselines.same_threads(CNN_THREADS):
            return baselines.seconds_per_call(lambda: baselines.finite(self.epoch()), budget_seconds, min_repeats=1)


def warmed_cnn_epochs(label, implementation):
    """:class:`CnnEpochs` of ``CNNS[label]``, built and run one epoch on :data:`CNN_THREADS` (JAX's threads are
    set before it first computes, in the build; fastgd's epoch under :func:`numba_cache_lock`: it compiles, or
    loads, the network's pass); NotImplementedError without the implementation's packages."""
    with numba_cache_lock() if implementation == "fastgd" else contextlib.nullcontext():
        with baselines.same_threads(CNN_THREADS):
            epochs = CnnEpochs(CNNS[label], implementation)
            baselines.finite(epochs.epoch())
    return epochs
