"""Sweep configurations: a small TOML file, checked completely before anything runs.

    name = "my-sweep"
    datasets = ["iris", "digits"]          # fastgd.datasets.BUILTIN (bundled sets, "mnist1d"),
                                           # "synthetic-classification-10000x20", or registered names
    rules = "all"                          # or a list of names from fastgd.optim.OPTIMIZERS, and the
                                           # whole-batch solver "lbfgs" (fastgd.sweep.solvers: full batch
                                           # only, an epoch one L-BFGS step; "all" leaves it out)
    learning_rates = [1e-3, 1e-2, 1e-1]
    batch_sizes = [32]                     # integers, or "full" for batch gradient descent
    seeds = [0, 1, 2]
    epochs = 20
    dtype = "float64"
    schedules = ["constant", "cosine"]     # optional ("constant" alone by default): fastgd.training.SCHEDULES,
                                           # each over the epochs, at its parameters' defaults; an axis

    [model]
    hidden_layer_sizes = [32]
    activation = "relu"
    alpha = 1e-4

    [targets]                              # training loss that counts as "reached", per data set
    iris = 0.1
    digits = 0.05

    [hyperparameters.rmsprop]              # optional: grids over a rule's other hyperparameters
    momentum = [0.0, 0.9]

    plugins = ["my_rules.py"]              # optional, before any table: files (relative to this file) or
                                           # modules that register rules (fastgd.rules); then name them
                                           # in rules, or rules = "all"

A ``[tuning]`` table makes the sweep follow the tuning protocol
(:mod:`fastgd.sweep.plan`) instead of a grid: each rule's settings come
from its declared search space, so ``learning_rates``, ``seeds`` and
``[hyperparameters.*]`` are refused beside it::

    [tuning]
    budget = "small"                       # "one-shot" (the defaults), "small" (8 trials) or "large" (32)
                                           # per rule, data set and batch size (fastgd.sweep.tuning.BUDGETS)
    seed = 0                               # of the scrambled Sobol sequence the trials are drawn from
    tuning_seed = 0                        # the training seed of every trial
    validation_fraction = 0.2              # of the training rows, held out to score the trials
    final_seeds = 10                       # the best trial on validation loss is trained again with this many
                                           # seeds (at least 10, none of them tuning_seed) on every training
                                           # row and scored on the test rows

``datasets`` may instead be a table, one ``[datasets.NAME]`` per data set
(then leave out the list): your own files and loaders, and a network of
their own for any set::

    [datasets.churn]
    path = "data/churn.csv"                # .csv, .tsv, .parquet, .npy, .npz; relative to this file
    target = "churned"                     # the target column (a column index for .npy; none for .npz)
    task = "classification"                # optional: inferred from the target otherwise
    test_size = 0.25                       # optional, with split_seed = 0: the fixed train/test split
    options = {drop = ["customer_id"], categorical = ["plan"]}   # see fastgd.datasets.Source
    standardise = false                    # optional: keep the features (and a regression target) in raw units

    [datasets.blobs]
    loader = "make_classification"         # a scikit-learn loader or generator, or "mnist1d"
    options = {n_samples = 100000, n_features = 100, n_informative = 20, n_classes = 10}

    [datasets.digits]                      # a built-in set, named with no source
    model = {hidden_layer_sizes = [64, 64]}    # optional, for any set: overrides [model] for it
    epochs = 50                            # optional, for any set: override the top-level epochs and
    batch_sizes = [64]                     # batch_sizes for it (the top-level epochs may then be left out)
    dtype = "float32"                      # optional, for any set: overrides the top-level dtype for it
    f_star = 0.0123                        # optional: its optimal training loss, where known; its runs
                                           # then record the full training objective after every epoch

Named test problems (:mod:`fastgd.problems`) stand beside or instead of ``datasets``: each becomes a
data set of its name with the table :func:`fastgd.problems.as_dataset_table` gives it (loader, model,
epochs, batch size, f*) and the problem's target (a ``[targets]`` entry overrides it). The stored
configuration (:attr:`SweepConfig.source`) holds those tables, not the names::

    problems = ["logreg_digits", "digits_cnn"]

The model may instead be a declared network (:class:`fastgd.networks.Network`), for every data set
(``model = "digits_cnn"`` before any table, or ``[model]`` with ``architecture`` or ``layers``) or for
one (``[datasets.NAME] model``): a network known by name (:data:`fastgd.networks.KNOWN`; one with a
number of classes takes the data set's), or layers in torch's vocabulary (``type`` is a layer of
:mod:`fastgd.networks.layers` or torch's name for it, ``Linear``, ``Conv2d``..., the other keys its
arguments) on samples of ``input_shape`` (channels first; by default the data set's columns as a
flat vector). Its loss is cross-entropy on a classification set, the mean squared error on a
regression set. Beside either, ``alpha`` is its L2 penalty (scikit-learn's α/(2m)·ΣW² over the
weights, as the MLP's; 0 by default) and ``init`` the scheme its θ is drawn by
(:data:`fastgd.networks.INIT_SCHEMES`: ``"torch"``, torch's default, or ``"lecture"``, Glorot-uniform
weights and zero biases). Beside ``layers``, ``parameter_order`` is θ's order
(:data:`fastgd.networks.PARAMETER_ORDERS`): ``"torch"`` (the default) or ``"scikit-learn"``, a Dense stack
with one activation kind between its layers that runs the MLP's passes, with scikit-learn's MLP losses
(cross-entropy of the softmax, half the mean squared error) and initialisation (``init = "scikit-learn"``, its
only scheme and its default); a run of either order is a run of its own. At their defaults these leave a run's
id as it was::

    [datasets.digits]
    model = "digits_cnn"                   # fastgd.networks.KNOWN

    [datasets.wine]
    model = {architecture = "mlp_64_100_10", alpha = 1e-4, init = "lecture"}

    [datasets.iris]
    model = {parameter_order = "scikit-learn", layers = [
        {type = "Dense", out_features = 16}, {type = "Tanh"}, {type = "Dense", out_features = 3}]}

    [datasets.mnist1d]
    model = {input_shape = [1, 40], layers = [
        {type = "Conv1D", out_channels = 8, kernel_size = 5, stride = 2}, {type = "ReLU"},
        {type = "Flatten"}, {type = "Dense", out_features = 10}]}

A declared network is checked against each data set it trains on before anything runs: an unknown
architecture or layer type, a layer argument it does not take, an ``input_shape`` whose values per
sample are not the data set's columns, a layer that cannot stand where it is, an output that is not
the data set's number of classes (or one value for regression), a workspace that would not fit in
memory.

A data set of the sweep's own may not take a built-in name; each is loaded
and checked when the configuration is (a missing file or column, NaN or
infinity, one class... is refused, naming the file).

:func:`fastgd.sweep.plan.runs` turns a configuration into runs (its
:class:`~fastgd.sweep.plan.RunSpec`); a run's ``run_id`` (a hash of what
defines the run, the rule's definition included) is how a store knows what it
already holds: a run of an edited rule is a new run. The presets
``quick``, ``default``, ``full``, ``large``, ``paper`` (the whole tuning
protocol) and ``suite`` (every test problem of :mod:`fastgd.problems`, small budget) ship in
``fastgd/sweep/presets/``.

A configuration is checked whole before anything runs, and refused with one
line (:class:`SweepConfigError`) where a run could not start or the sweep
would mislead: unknown keys, names and data sets; a value listed twice (it
would define the same runs twice); learning rates, targets, penalties and
hyperparameters that are not finite; seeds outside 0 to 2**32 - 1 (what
scikit-learn's initialisation takes); more than ``MAX_EPOCHS`` epochs; a
``[hyperparameters.RULE]`` table for a rule not in ``rules`` or a target for
a data set not in ``datasets`` (they would be ignored); a synthetic set too
small to split or too large for this machine's memory; a network that would
not fit in it; under ``[tuning]``, an unknown budget, fewer than
``tuning.MIN_SEEDS`` final seeds, a validation fraction a data set's training
rows cannot hold, a rule without a search space (beyond ``one-shot``).
"""

import dataclasses
import functools
import inspect
import itertools
import json
import math
import os
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources

import numpy as np

from fastgd import datasets, optim, problems
from fastgd import networks
from fastgd.models import check_network_fits
from fastgd.validation import MAX_SEED, is_integer, is_real, is_seed
from fastgd import rules as rule_registry
from fastgd.sweep import solvers, tuning
from fastgd.sweep.completeness import planned_runs
from fastgd.kernels.mlp import ACTIVATIONS

__all__ = ["SweepConfigError", "SweepConfig", "Tuning", "load_config", "load_preset", "PRESETS", "network_for",
           "network_options", "model_description", "LAYER_TYPES"]

PRESETS = ("quick", "default", "lecture", "full", "large", "paper", "suite")
_TOP_LEVEL = {"name", "datasets", "problems", "rules", "hyperparameters", "learning_rates", "batch_sizes", "seeds",
              "epochs", "dtype", "model", "targets", "plugins", "tuning", "schedules"}
_TUNING_KEYS = ("budget", "seed", "final_seeds", "validation_fraction", "tuning_seed")
# the final runs' seeds are 0, 1, 2, ... past the tuning seed: past this, final_seeds is a typo
MAX_FINAL_SEEDS = 10_000
_MODEL_KEYS = {"hidden_layer_sizes", "activation", "alpha"}
# a declared network's keys in [model] or [datasets.NAME] model: a known architecture, or layers on an input shape
_NETWORK_KEYS = ("architecture", "layers", "input_shape")
# what a declared network's table may add to either, with the defaults the canonical JSON leaves out (init's is
# the parameter order's own scheme: networks.ORDER_SCHEMES' first)
_NETWORK_OPTIONS = {"alpha": 0.0, "init": "torch", "parameter_order": "torch"}
# a declared network's loss on a data set of each task, in each parameter order
_ORDER_LOSSES = {"torch": {"classification": "cross_entropy", "regression": "mse"},
                 "scikit-learn": {"classification": "cross_entropy", "regression": "squared_error"}}
# the layer types [model] layers may name, by their lower-case name: fastgd's (Conv2D) and torch's (Conv2d, Linear)
LAYER_TYPES = {cls.__name__.lower(): cls for cls in (
    networks.Dense, networks.Conv1D, networks.Conv2D, networks.MaxPool1D, networks.MaxPool2D, networks.AvgPool1D,
    networks.AvgPool2D, networks.GlobalAvgPool, networks.Flatten, networks.ReLU, networks.Tanh, networks.Sigmoid,
    networks.Identity)}
LAYER_TYPES["linear"] = networks.Dense
_DATASET_KEYS = ("path", "loader", "target", "task", "test_size", "split_seed", "options", "standardise", "model",
                 "epochs", "batch_sizes", "dtype", "f_star")
# the keys of a [datasets.NAME] table that say how its runs train, not what the data set is
_BUDGET_KEYS = ("epochs", "batch_sizes", "dtype", "f_star")
DTYPES = ("float32", "float64")
# every epoch of every run is a row of the store, and a batched chunk holds its curves in memory
MAX_EPOCHS = 100_000
# batch sizes past the number of samples mean full batches; past this they only overflow
MAX_BATCH_SIZE = 2 ** 31 - 1
MAX_CONFIG_BYTES = 1 << 20
# every run is a row of the store and a RunSpec in memory: past this, a grid is a typo
MAX_RUNS = 1_000_000
# the target training loss of a data set given on the command line without one
DEFAULT_TARGET_LOSS = 0.1


class SweepConfigError(ValueError):
    """A configuration that cannot run; the message is one line naming the problem."""


@dataclass(frozen=True)
class Tuning:
    """A sweep's ``[tuning]`` table: how :mod:`fastgd.sweep.plan` tunes each rule and runs it again."""

    budget: str = "small"  # tuning.BUDGETS: trials per rule and data set
    seed: int = 0  # of the Sobol sequence the trials are drawn from
    final_seeds: int = tuning.MIN_SEEDS  # seeds of the chosen setting's final runs
    validation_fraction: float = 0.2  # of the training rows, held out to score the trials
    tuning_seed: int = 0  # the training seed of every trial (the final runs take other seeds)


@dataclass(frozen=True)
class SweepConfig:
    """A checked sweep configuration (:func:`parse`); :mod:`fastgd.sweep.plan` makes its runs."""
    name: str
    datasets: tuple
    rules: tuple
    rule_grids: dict  # rule -> {hyperparameter: [values]}
    learning_rates: tuple
    batch_sizes: tuple
    seeds: tuple
    n_epochs: int
    dtype: str
    hidden_layer_sizes: tuple
    activation: str
    alpha: float
    targets: dict
    source: dict  # the parsed TOML, stored with the sweep
    plugins: tuple = ()  # fastgd.rules.Plugin: loaded by every worker before it trains
    # the sweep's own data sets (datasets.Source, or a registered datasets.Dataset), sent to every worker
    sources: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # data set -> (hidden_layer_sizes, activation, alpha) where not [model]
    base_dir: str = None  # where the configuration's relative paths start
    tuning: Tuning = None  # the [tuning] table: the sweep follows the tuning protocol (fastgd.sweep.plan)
    # data set -> its declared network, canonical JSON (see network_of), for the data sets that train one
    networks: dict = field(default_factory=dict)
    schedules: tuple = ("constant",)  # learning-rate schedules (fastgd.training.SCHEDULES): an axis of the runs
    dataset_epochs: dict = field(default_factory=dict)  # data set -> its own epochs ([datasets.NAME] epochs)
    dataset_batch_sizes: dict = field(default_factory=dict)  # data set -> its own batch sizes (a tuple)
    f_stars: dict = field(default_factory=dict)  # data set -> its optimal training loss, where known
    dataset_dtypes: dict = field(default_factory=dict)  # data set -> its own dtype ([datasets.NAME] dtype)

    def epochs_of(self, dataset):
        """The epochs a run on ``dataset`` trains: its table's ``epochs``, else the configuration's."""
        return self.dataset_epochs.get(dataset, self.n_epochs)

    def batch_sizes_of(self, dataset):
        """The batch sizes the runs on ``dataset`` train with: its table's ``batch_sizes``, else the
        configuration's."""
        return self.dataset_batch_sizes.get(dataset, self.batch_sizes)

    def dtype_of(self, dataset):
        """The dtype of θ (and of every array of training) in the runs on ``dataset``: its table's ``dtype``, else
        the configuration's."""
        return self.dataset_dtypes.get(dataset, self.dtype)

    def model_of(self, dataset):
        """(hidden_layer_sizes, activation, alpha) of the MLP trained on ``dataset`` (see :meth:`network_of` first)."""
        return self.models.get(dataset, (self.hidden_layer_sizes, self.activation, self.alpha))

    def network_of(self, dataset):
        """The declared network trained on ``dataset`` as canonical JSON text (``{"architecture": name}`` or
        ``{"input_shape": ..., "layers": [...]}``, what :func:`network_for` builds), or None: an MLP
        (:meth:`model_of`)."""
        return self.networks.get(dataset)

    def model(self, dataset, data):
        """``(net, init)``: the model trained on ``dataset`` (``data``: its :class:`fastgd.datasets.Dataset`), its
        declared :class:`fastgd.networks.Network` (:meth:`network_of`) else its :class:`fastgd.MLP`
        (:meth:`model_of`), and ``init(seed)``, the θ a run of that seed starts from."""
        network = self.network_of(dataset)
        dtype = np.dtype(self.dtype_of(dataset))
        if network is not None:
            net = network_for(network, data.task, data.n_features, data.n_outputs)
            _, scheme = network_options(network)
            return net, lambda seed: net.init(random_state=seed, scheme=scheme, dtype=dtype)
        from fastgd.models import MLP

        hidden, activation, alpha = self.model_of(dataset)
        net = MLP([data.n_features, *hidden, data.n_outputs], activation, data.output, alpha, dtype)
        return net, lambda seed: net.init(random_state=seed)

    def on_dataset(self, definition, target_loss=None):
        """This configuration run on one data set instead of its own (see :func:`on_dataset`)."""
        return replace(parse(on_dataset(self.source, definition, target_loss), self.base_dir), plugins=self.plugins)

    def with_plugins(self, plugins):
        """This configuration with more plugins (already loaded here), e.g. from ``--plugin``."""
        known = {plugin.digest or plugin.spec for plugin in self.plugins}
        extra = tuple(plugin for plugin in plugins if (plugin.digest or plugin.spec) not in known)
        return replace(self, plugins=self.plugins + extra)

    @functools.cached_property
    def data_hashes(self):
        """{data set: its content hash}, each set made and hashed once per configuration (``runs`` is called
        several times a command)."""
        return {dataset: datasets.load(dataset, self.sources).content_hash for dataset in self.datasets}

    @functools.cached_property
    def validation_hashes(self):
        """{data set: the content hash of its validation split} (:meth:`datasets.Dataset.validation_split`) under
        ``[tuning]``; empty without it."""
        if self.tuning is None:
            return {}
        return {dataset: datasets.load(dataset, self.sources).validation_split(self.tuning.validation_fraction)
                .content_hash for dataset in self.datasets}


def on_dataset(raw, definition, target_loss=None):
    """A configuration (a parsed TOML dict, unchecked) run on one data set instead of its own: ``--dataset``.

    ``definition``: a data set name, or a ``[datasets.NAME]`` table as a dict with its ``name``.
    ``target_loss``: the training loss that counts as reached; by default the configuration's
    for that data set, else ``DEFAULT_TARGET_LOSS``. A model the configuration gives that data
    set (``[datasets.NAME] model``) is kept.
    """
    definition = {"name": definition} if isinstance(definition, str) else dict(definition)
    name = definition.pop("name")
    tables, targets = raw.get("datasets"), raw.get("targets")
    own = tables.get(name) if isinstance(tables, dict) else None
    for key in ("model", *_BUDGET_KEYS):
        if isinstance(own, dict) and key in own and key not in definition:
            definition[key] = own[key]
    if target_loss is None:
        target_loss = targets.get(name, DEFAULT_TARGET_LOSS) if isinstance(targets, dict) else DEFAULT_TARGET_LOSS
    raw = dict(raw, datasets={name: definition}, targets={name: target_loss})
    raw.pop("problems", None)
    return raw


def on_problems(raw, names):
    """A configuration (a parsed TOML dict, unchecked) run on the test problems ``names`` (:mod:`fastgd.problems`)
    instead of its own data sets: ``--problem``. Each problem's own target and model count (the configuration's
    ``[model]`` was for its data sets)."""
    raw = {key: value for key, value in raw.items() if key not in ("datasets", "targets", "model")}
    return dict(raw, problems=list(names))


def _with_problems(raw):
    """``raw`` with its ``problems`` written out as ``[datasets.NAME]`` tables and ``[targets]`` entries."""
    if "problems" not in raw:
        return raw
    names = raw["problems"]
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        _fail(f"'problems' must be a non-empty list of problem names ({', '.join(sorted(problems.PROBLEMS))}), "
              f"got {names!r}")
    _no_repeats("problems", names)
    entry = raw.get("datasets", [])
    if isinstance(entry, list) and all(isinstance(name, str) for name in entry):
        tables = {name: {} for name in entry}
        _no_repeats("datasets", entry)
    elif isinstance(entry, dict):
        tables = dict(entry)
    else:
        _fail(f"'datasets' must be a list of data set names or [datasets.NAME] tables, got {entry!r}")
    if "model" in raw and not tables:
        _fail("[model] applies to no data set here: each of 'problems' has its own model; remove [model], or list "
              "data sets of your own in 'datasets' for it")
    targets = raw.get("targets", {})
    if not isinstance(targets, dict):
        _fail("[targets] must be a table: data set name = target training loss")
    targets = dict(targets)
    for name in names:
        try:
            problem = problems.get(name)
        except problems.ProblemError as error:
            _fail(f"'problems': {error}")
        if name in tables:
            _fail(f"{name!r} is in both 'problems' and 'datasets': a problem is a data set of its own name; "
                  "remove one")
        tables[name] = problems.as_dataset_table(problem)
        targets.setdefault(name, problem.target)
    raw = {key: value for key, value in raw.items() if key != "problems"}
    return dict(raw, datasets=tables, targets=targets)


def _fail(message):
    raise SweepConfigError(message)


def _list(raw, key, check, description, default=None, where=None):
    where = where or f"'{key}'"
    values = raw.get(key, default)
    if not isinstance(values, list) or not values:
        _fail(f"{where} must be a non-empty list of {description}, got {values!r}")
    for value in values:
        if not check(value):
            _fail(f"{where} must be a non-empty list of {description}, got {value!r}")
    _no_repeats(key, values, where)
    return tuple(values)


def _no_repeats(key, values, where=None):
    """Two equal entries would define the same runs twice."""
    seen = []
    for value in values:
        if value in seen:  # == also across spellings: 0.1 and 1e-1, 1 and 1.0
            _fail(f"{where or repr(key)} lists {value!r} twice")
        seen.append(value)


def _finite_numbers(value):
    """True when every number inside value (a scalar or nested lists) is finite."""
    if isinstance(value, list):
        return all(_finite_numbers(item) for item in value)
    return not isinstance(value, float) or math.isfinite(value)


def parse(raw, base_dir=None):
    """A checked :class:`SweepConfig` from a parsed TOML dict; raises SweepConfigError.

    Everything that could stop a run is checked here, before anything runs or is written:
    names, ranges, repeated entries, data set names and sizes, the memory a run needs.
    ``plugins`` are loaded first (paths relative to ``base_dir``), so that the rules they
    register can be named and checked.
    """
    if not isinstance(raw, dict):
        _fail(f"a configuration is a table of keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        _fail(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_LEVEL))})")
    raw = _with_problems(raw)
    plugin_specs = raw.get("plugins", [])
    if not isinstance(plugin_specs, list) or not all(isinstance(spec, str) for spec in plugin_specs):
        _fail(f"'plugins' must be a list of paths or module names, got {plugin_specs!r}")
    try:
        plugins = tuple(rule_registry.resolve_plugin(spec, base_dir) for spec in plugin_specs)
        rule_registry.load_plugins(plugins)
    except rule_registry.PluginError as error:
        _fail(str(error))
    name = raw.get("name", "sweep")
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        _fail(f"'name' must be a non-empty line of text, got {name!r}")
    names, sources, model_tables, budgets = _datasets(raw, base_dir)
    shapes = {}
    for dataset in names:  # a sweep's own sets are loaded here: what is wrong in a file is found before any run
        try:
            shapes[dataset] = datasets.check(sources.get(dataset, dataset))
        except ValueError as error:
            _fail(f"[datasets.{dataset}] {error}" if dataset in sources else str(error))

    rules_entry = raw.get("rules", "all")
    if rules_entry == "all":
        rules = tuple(optim.OPTIMIZERS)
    elif isinstance(rules_entry, list):
        rules = _list(raw, "rules", lambda v: isinstance(v, str), "rule names")
    else:
        _fail(f"'rules' must be \"all\" or a list of rule names, got {rules_entry!r}")
    grids = raw.get("hyperparameters", {})
    if not isinstance(grids, dict):
        _fail("[hyperparameters] must hold one table per rule, e.g. [hyperparameters.rmsprop]")
    for rule in list(rules) + list(grids):
        if rule not in optim.OPTIMIZERS and not solvers.is_solver(rule):
            _fail(f"unknown rule {rule!r}: use one of {sorted(optim.OPTIMIZERS)} or the solver(s) "
                  f"{sorted(solvers.SOLVERS)}")
    tuning_table = _tuning(raw, rules)
    for rule, grid in grids.items():
        if rule not in rules:
            _fail(f"[hyperparameters.{rule}] is for a rule not in 'rules': add {rule!r} to 'rules' or remove the "
                  "table")
        if not isinstance(grid, dict):
            _fail(f"[hyperparameters.{rule}] must be a table of hyperparameter lists")
        accepted = set((solvers.SOLVERS[rule] if solvers.is_solver(rule) else optim.OPTIMIZERS[rule])
                       .default_hyperparameters()) - {"lr"}
        for key, values in grid.items():
            if key not in accepted:
                _fail(f"rule {rule!r} has no hyperparameter {key!r} (it has {sorted(accepted)}; the learning rate "
                      "is 'learning_rates')")
            if not isinstance(values, list) or not values:
                _fail(f"[hyperparameters.{rule}] {key} must be a non-empty list of values")
            if not all(_finite_numbers(value) for value in values):
                _fail(f"[hyperparameters.{rule}] {key} must hold finite numbers, got {values!r}")
            _no_repeats(f"[hyperparameters.{rule}] {key}", values)

    learning_rates, seeds = (), ()
    if tuning_table is None:  # under [tuning] the settings and seeds come from the protocol
        learning_rates = _list(raw, "learning_rates", lambda v: is_real(v) and math.isfinite(v) and v > 0,
                               "positive finite learning rates")
        seeds = _list(raw, "seeds", is_seed,
                      f"integer seeds from 0 to {MAX_SEED}")
    batch_sizes = _batch_sizes(raw, "batch_sizes")
    own_epochs = {dataset: budget["epochs"] for dataset, budget in budgets.items() if "epochs" in budget}
    epochs = raw.get("epochs")
    if "epochs" in raw or len(own_epochs) < len(names):
        _check_epochs(epochs, "'epochs'", "" if "epochs" in raw else
                      f" ({next(name for name in names if name not in own_epochs)} has no epochs of its own)")
    dtype = raw.get("dtype", "float64")
    if dtype not in DTYPES:
        _fail(f"'dtype' must be \"float32\" or \"float64\", got {dtype!r}")
    own_dtypes = {dataset: budget["dtype"] for dataset, budget in budgets.items() if "dtype" in budget}
    schedules = _schedules(raw, sorted({*own_epochs.values(), *([epochs] if epochs is not None else [])}))
    own_batch_sizes = {dataset: budget["batch_sizes"] for dataset, budget in budgets.items() if "batch_sizes" in budget}

    mlp_default = ((32,), "relu", 1e-4)
    default_network = _network_model(raw.get("model", {}), "[model]")
    hidden, activation, alpha = default_model = \
        mlp_default if default_network is not None else _model(raw.get("model", {}), "[model]", mlp_default)
    models, declared = {}, {}  # data set -> its MLP, its declared network (the table that declares it)
    for dataset in names:
        if dataset in model_tables:
            where = f"[datasets.{dataset}] model"
            network = _network_model(model_tables[dataset], where)
            if network is None:
                models[dataset] = _model(model_tables[dataset], where, default_model)
            else:
                declared[dataset] = (network, where)
        elif default_network is not None:
            declared[dataset] = (default_network, "[model]")

    targets = raw.get("targets", {})
    if not isinstance(targets, dict):
        _fail("[targets] must be a table: data set name = target training loss")
    for dataset in targets:
        if dataset not in names:
            _fail(f"[targets] has {dataset!r}, which is not in 'datasets'")
    for dataset in names:
        target = targets.get(dataset)
        if not is_real(target) or not (0 < target < math.inf):
            _fail(f"[targets] needs a positive finite target training loss for {dataset!r}, got {target!r}")

    # counted as a report counts the runs a stored configuration planned, from the same table
    n_runs = planned_runs(dict(raw, rules=list(rules), batch_sizes=list(batch_sizes))).n_runs
    if n_runs > MAX_RUNS:
        _fail(f"the configuration defines {n_runs} runs, more than {MAX_RUNS}: split it into several sweeps")
    for dataset, (task, n_features, n_outputs) in shapes.items():
        if dataset in declared:
            network, where = declared[dataset]
            _check_network(network, where, dataset, (task, n_features, n_outputs),
                           own_batch_sizes.get(dataset, batch_sizes), own_dtypes.get(dataset, dtype), sources)
            continue
        try:
            check_network_fits([n_features, *models.get(dataset, default_model)[0], n_outputs],
                               own_dtypes.get(dataset, dtype))
        except ValueError as error:
            _fail(f"{dataset}: {error}")
        if tuning_table is not None:
            try:
                datasets.load(dataset, sources).validation_split(tuning_table.validation_fraction)
            except datasets.DatasetError as error:
                _fail(f"[tuning] validation_fraction: {error}")

    config = SweepConfig(name, names, rules, grids, tuple(float(v) for v in learning_rates), batch_sizes,
                         seeds, epochs, dtype, hidden, activation, alpha,
                         {d: float(targets[d]) for d in names}, raw, plugins, sources, models, base_dir,
                         tuning_table, {dataset: _canonical(network) for dataset, (network, _) in declared.items()},
                         schedules, own_epochs, own_batch_sizes,
                         {dataset: budget["f_star"] for dataset, budget in budgets.items() if "f_star" in budget},
                         own_dtypes)
    _check_every_optimizer_accepts(config)
    _check_solvers(config)
    return config


def _check_solvers(config):
    """A whole-batch solver (:mod:`fastgd.sweep.solvers`) trains on the full batch, at a constant learning rate, on
    an MLP or a declared network: refused in one line otherwise."""
    for name in config.rules:
        if not solvers.is_solver(name):
            continue
        for dataset in config.datasets:
            sizes = list(config.batch_sizes_of(dataset))
            if sizes != ["full"]:
                _fail(f"rule {name!r} trains on the full batch only: the batch sizes of {dataset!r} must be "
                      f"[\"full\"], got {sizes!r} (sweep it apart from the minibatch rules, into the same store)")
        if list(config.schedules) != ["constant"]:
            _fail(f"rule {name!r} takes no learning-rate schedule: schedules must be [\"constant\"], got "
                  f"{list(config.schedules)!r}")


def _schedules(raw, epoch_budgets):
    """The ``schedules`` of a configuration, each one :func:`fastgd.training.make_schedule` makes over each of
    ``epoch_budgets`` (the configuration's epochs and its data sets' own)."""
    from fastgd.training import SCHEDULES, make_schedule

    schedules = _list(raw, "schedules", lambda name: isinstance(name, str), f"schedule names ({', '.join(SCHEDULES)})",
                      default=["constant"])
    for name in schedules:
        for epochs in epoch_budgets:
            try:
                make_schedule(name, n_epochs=epochs)
            except ValueError as error:
                _fail(f"'schedules': {error}")
    return schedules


def _check_epochs(epochs, where, why=""):
    if not is_integer(epochs) or not 1 <= epochs <= MAX_EPOCHS:
        _fail(f"{where} must be an integer from 1 to {MAX_EPOCHS}{why}, got {epochs!r}")
    return epochs


def _batch_sizes(table, key, where=None):
    """The checked batch sizes of ``table[key]`` (the configuration's, by default [32]; or a data set's)."""
    return _list(table, key, lambda b: b == "full" or (is_integer(b) and 1 <= b <= MAX_BATCH_SIZE),
                 f"batch sizes (integers from 1 to {MAX_BATCH_SIZE}, or \"full\")", default=[32], where=where)


def _budget(table, where):
    """The checked ``epochs``, ``batch_sizes``, ``dtype`` and ``f_star`` a [datasets.NAME] table gives, as a dict."""
    budget = {}
    if "epochs" in table:
        budget["epochs"] = _check_epochs(table["epochs"], f"{where} epochs")
    if "batch_sizes" in table:
        budget["batch_sizes"] = _batch_sizes(table, "batch_sizes", f"{where} batch_sizes")
    if "dtype" in table:
        if table["dtype"] not in DTYPES:
            _fail(f"{where} dtype must be \"float32\" or \"float64\", got {table['dtype']!r}")
        budget["dtype"] = table["dtype"]
    if "f_star" in table:
        f_star = table["f_star"]
        if not is_real(f_star) or not 0 <= f_star < math.inf:
            _fail(f"{where} f_star must be a finite training loss >= 0 (the optimal one), got {f_star!r}")
        budget["f_star"] = float(f_star)
    return budget


def _tuning(raw, rules):
    """The checked [tuning] table as a :class:`Tuning`, or None without one."""
    if "tuning" not in raw:
        return None
    table = raw["tuning"]
    if not isinstance(table, dict):
        _fail(f"[tuning] must be a table ({', '.join(_TUNING_KEYS)}), got {table!r}")
    unknown = sorted(set(table) - set(_TUNING_KEYS))
    if unknown:
        _fail(f"[tuning] has no key {unknown[0]!r} (it takes {', '.join(_TUNING_KEYS)})")
    given = [key for key in ("learning_rates", "hyperparameters", "seeds") if key in raw]
    if given:
        _fail(f"'{given[0]}' and [tuning] do not go together: under [tuning] the settings come from each rule's "
              "search space and the seeds from tuning_seed and final_seeds; remove one")
    defaults = Tuning()
    budget = table.get("budget", defaults.budget)
    if not isinstance(budget, str) or budget not in tuning.BUDGETS:
        _fail(f"[tuning] budget must be one of {', '.join(repr(name) for name in tuning.BUDGETS)}, got {budget!r}")
    for key in ("seed", "tuning_seed"):
        value = table.get(key, getattr(defaults, key))
        if not is_seed(value):
            _fail(f"[tuning] {key} must be an integer from 0 to {MAX_SEED}, got {value!r}")
    final_seeds = table.get("final_seeds", defaults.final_seeds)
    if not is_integer(final_seeds) or not tuning.MIN_SEEDS <= final_seeds <= MAX_FINAL_SEEDS:
        _fail(f"[tuning] final_seeds must be an integer from {tuning.MIN_SEEDS} (the chosen setting is run again "
              f"with at least {tuning.MIN_SEEDS} seeds) to {MAX_FINAL_SEEDS}, got {final_seeds!r}")
    fraction = table.get("validation_fraction", defaults.validation_fraction)
    if not is_real(fraction) or not 0 < fraction < 1:
        _fail(f"[tuning] validation_fraction must be a number between 0 and 1, got {fraction!r}")
    seed = table.get("seed", defaults.seed)
    for rule in rules:
        try:
            tuning.sample_settings(rule, budget, seed)
        except ValueError as error:
            _fail(f"[tuning] {error}")
    return Tuning(budget, seed, final_seeds, float(fraction), table.get("tuning_seed", defaults.tuning_seed))


def _model(table, where, default):
    """(hidden_layer_sizes, activation, alpha) of a [model] table, what it leaves out taken from ``default``."""
    if not isinstance(table, dict) or set(table) - _MODEL_KEYS:
        _fail(f"{where} takes only {sorted(_MODEL_KEYS)}, got {sorted(table) if isinstance(table, dict) else table}")
    hidden = table.get("hidden_layer_sizes", list(default[0]))
    if not isinstance(hidden, list) or not all(is_integer(n) and n >= 1 for n in hidden):
        _fail(f"{where} hidden_layer_sizes must be a list of positive integers, got {hidden!r}")
    activation = table.get("activation", default[1])
    if activation not in ACTIVATIONS:
        _fail(f"{where} activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    alpha = table.get("alpha", default[2])
    if not is_real(alpha) or not (0 <= alpha < math.inf):
        _fail(f"{where} alpha must be a finite number >= 0, got {alpha!r}")
    return tuple(hidden), activation, float(alpha)


def _network_model(value, where):
    """The declared network of a model entry as a plain dict (``{"architecture": name}``, or ``{"input_shape":
    [...] or None, "layers": [{"type": ..., argument: value}, ...]}`` with every layer argument spelled out), or
    None where the entry is an MLP's table."""
    if isinstance(value, str):
        value = {"architecture": value}
    if not isinstance(value, dict) or not set(value) & set(_NETWORK_KEYS):
        return None
    mlp_keys = sorted(set(value) & (_MODEL_KEYS - set(_NETWORK_OPTIONS)))
    if mlp_keys:
        _fail(f"{where} declares a network ({', '.join(sorted(set(value) & set(_NETWORK_KEYS)))}): {mlp_keys[0]} is "
              "the MLP's (a declared network has its own layers); remove it")
    unknown = sorted(set(value) - set(_NETWORK_KEYS) - set(_NETWORK_OPTIONS))
    if unknown:
        _fail(f"{where} has no key {unknown[0]!r} (a network is an architecture, or layers with an input_shape, "
              f"and may take {', '.join(list(_NETWORK_OPTIONS)[:-1])} and {list(_NETWORK_OPTIONS)[-1]})")
    options = _network_options(value, where)
    if "architecture" in value:
        if set(value) - set(_NETWORK_OPTIONS) != {"architecture"}:
            _fail(f"{where} names the architecture {value['architecture']!r}: it has its own layers and input "
                  "shape; give layers and input_shape without it instead")
        if "parameter_order" in options:
            _fail(f"{where} names the architecture {value['architecture']!r}, declared in torch's parameter order: "
                  f"parameter_order {options['parameter_order']!r} is for layers declared here")
        name = value["architecture"]
        if not isinstance(name, str) or name not in _architectures():
            _fail(f"{where}: no known architecture {name!r}; known: {', '.join(sorted(_architectures()))}")
        return {"architecture": name, **options}
    if "layers" not in value:
        _fail(f"{where} gives an input_shape but no layers: add layers = [{{type = \"Dense\", ...}}, ...]")
    layers = value["layers"]
    if not isinstance(layers, list) or not layers:
        _fail(f"{where} layers must be a non-empty list of tables such as {{type = \"Conv2D\", out_channels = 8, "
              f"kernel_size = 3}}, got {layers!r}")
    shape = value.get("input_shape")
    if shape is not None and (not isinstance(shape, list) or not 1 <= len(shape) <= 3
                              or not all(is_integer(n) and n >= 1 for n in shape)):
        _fail(f"{where} input_shape must be 1 to 3 positive integers, [features], [channels, length] or "
              f"[channels, height, width], got {shape!r}")
    return {"input_shape": None if shape is None else [int(n) for n in shape],
            "layers": [_layer(table, f"{where} layers[{index}]") for index, table in enumerate(layers)], **options}


def _network_options(value, where):
    """A declared network's checked ``alpha``, ``init`` and ``parameter_order``, those not at their defaults (a
    table that spells a default out declares the same runs as one that leaves it out)."""
    alpha = value.get("alpha", _NETWORK_OPTIONS["alpha"])
    if not is_real(alpha) or not (0 <= alpha < math.inf):
        _fail(f"{where} alpha must be a finite number >= 0, got {alpha!r}")
    order = value.get("parameter_order", _NETWORK_OPTIONS["parameter_order"])
    if not isinstance(order, str) or order not in networks.ORDER_SCHEMES:
        _fail(f"{where} parameter_order must be one of {', '.join(map(repr, networks.ORDER_SCHEMES))}, got {order!r}")
    schemes = networks.ORDER_SCHEMES[order]
    init = value.get("init", schemes[0])
    if not isinstance(init, str) or init not in schemes:
        in_order = "" if order == _NETWORK_OPTIONS["parameter_order"] else f" in parameter_order {order!r}"
        _fail(f"{where} init must be one of {', '.join(map(repr, schemes))}{in_order}, got {init!r}")
    options = {"alpha": float(alpha), "init": init, "parameter_order": order}
    defaults = dict(_NETWORK_OPTIONS, init=schemes[0])
    return {key: option for key, option in options.items() if option != defaults[key]}


def network_options(model):
    """(alpha, init) of a declared network (:meth:`SweepConfig.network_of`'s JSON text or its dict): its L2 penalty
    and the scheme its θ is drawn by (:meth:`fastgd.networks.Network.init`; by default its parameter order's own)."""
    model = json.loads(model) if isinstance(model, str) else model
    own_scheme = networks.ORDER_SCHEMES[_order(model)][0]
    return float(model.get("alpha", _NETWORK_OPTIONS["alpha"])), model.get("init", own_scheme)


def _order(model):
    """A declared network's parameter order (its dict)."""
    return model.get("parameter_order", _NETWORK_OPTIONS["parameter_order"])


def _layer(table, where):
    """One layer of a declared network's ``layers`` as a plain dict: its canonical type and every argument."""
    if not isinstance(table, dict) or not isinstance(table.get("type"), str):
        _fail(f"{where} must be a table with a type, e.g. {{type = \"ReLU\"}}, got {table!r}")
    kind = LAYER_TYPES.get(table["type"].lower())
    if kind is None:
        _fail(f"{where}: unknown layer type {table['type']!r}; known: "
              f"{', '.join(sorted({cls.__name__ for cls in LAYER_TYPES.values()}))} (or torch's names, e.g. Linear)")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    arguments = {key: value for key, value in table.items() if key != "type"}
    unknown = sorted(set(arguments) - set(fields))
    if unknown:
        takes = f"it takes {', '.join(fields)}" if fields else "it takes no arguments"
        _fail(f"{where} ({kind.__name__}): no argument {unknown[0]!r} ({takes})")
    missing = [name for name, f in fields.items() if f.default is dataclasses.MISSING and name not in arguments]
    if missing:
        _fail(f"{where} ({kind.__name__}): {missing[0]} is missing")
    layer = kind(**{key: tuple(value) if isinstance(value, list) else value for key, value in arguments.items()})
    return {"type": kind.__name__, **{name: list(value) if isinstance(value, tuple) else value
                                      for name, value in dataclasses.asdict(layer).items()}}


def model_description(model=None, hidden_layer_sizes=(), activation="relu", alpha=0.0, n_features=None,
                      n_outputs=None):
    """A model in words, as a report names it: a declared network (``model``, :meth:`SweepConfig.network_of`'s JSON
    text or dict) by its architecture's name or its layers with the arguments they do not leave at their
    defaults; else the MLP of those sizes (the input and output as ``n_features``, ``n_outputs``, "?" unknown)."""
    if model is None:
        sizes = ["?" if n_features is None else n_features, *hidden_layer_sizes, "?" if n_outputs is None else
                 n_outputs]
        return f"MLP {'-'.join(map(str, sizes))}, {activation}, alpha {alpha:g}"
    model = json.loads(model) if isinstance(model, str) else model
    alpha, init = network_options(model)
    order = _order(model)
    options = (f", alpha {alpha:g}" if alpha else "") \
        + (f", {init} init" if init != networks.ORDER_SCHEMES[order][0] else "") \
        + (f", {order} parameter order" if order != _NETWORK_OPTIONS["parameter_order"] else "")
    if "architecture" in model:
        return model["architecture"] + options
    layers = []
    for layer in model["layers"]:
        kind = LAYER_TYPES[layer["type"].lower()]
        given = [f"{f.name}={layer[f.name]!r}" for f in dataclasses.fields(kind)  # in the declaration's order
                 if f.name in layer and (f.default is dataclasses.MISSING or layer[f.name] != f.default)]
        layers.append(f"{kind.__name__}({', '.join(given)})")
    shape = model["input_shape"]
    return f"{', '.join(layers)} on {'the columns' if shape is None else tuple(shape)}{options}"


def _architectures():
    """The models a configuration names by ``architecture``: the known networks (:data:`fastgd.networks.KNOWN`)
    and the noisy quadratics (:data:`fastgd.networks.quadratic.QUADRATICS`, DeepOBS's ``quadratic_deep``)."""
    from fastgd.networks.quadratic import QUADRATICS

    return {**networks.KNOWN, **QUADRATICS}


def _canonical(network):
    return json.dumps(network, sort_keys=True)


def network_for(model, task, n_features, n_outputs):
    """The :class:`fastgd.networks.Network` a sweep trains on a data set of ``task`` with ``n_features`` columns
    and ``n_outputs`` outputs; ``model`` is :meth:`SweepConfig.network_of`'s JSON text (or its dict).

    A known architecture with a number of classes takes the data set's (a noisy quadratic, e.g.
    ``quadratic_deep``, trains on a regression set whose samples are its x); declared layers get cross-entropy
    on a classification set and the mean squared error on a regression set (half of it, scikit-learn's, in
    scikit-learn's ``parameter_order``); either takes the model's ``alpha``
    (:func:`network_options`; its ``init`` is the runs' to draw θ by). Raises ValueError in one line
    where the network does not fit the data (its input, its loss, its outputs).
    """
    model = json.loads(model) if isinstance(model, str) else model
    if "architecture" in model:
        name = model["architecture"]
        function = _architectures()[name]
        takes_classes = "n_classes" in inspect.signature(function).parameters
        net = function(n_classes=n_outputs) if takes_classes and task == "classification" else function()
    else:
        name = "the layers"
        shape = model["input_shape"] or [n_features]
        layers = [LAYER_TYPES[layer["type"].lower()](**{key: tuple(value) if isinstance(value, list) else value
                                                         for key, value in layer.items() if key != "type"})
                  for layer in model["layers"]]
        order = _order(model)
        net = networks.Network(layers, tuple(shape), loss=_ORDER_LOSSES[order][task], parameter_order=order)
    if net.n_inputs != n_features:
        raise networks.NetworkError(f"{name} take{'s' if name != 'the layers' else ''} inputs of shape "
                                    f"{net.input_shape}, {net.n_inputs} values per sample; the data set has "
                                    f"{n_features} columns")
    if (net.loss_name == "cross_entropy") != (task == "classification"):
        made_for = "classification (cross-entropy)" if net.loss_name == "cross_entropy" else \
            f"regression ({net.loss_name})"
        raise networks.NetworkError(f"{name} is a network for {made_for}; the data set is {task}")
    if net.n_outputs != n_outputs:
        what = f"{n_outputs} classes" if task == "classification" else "1 target"
        raise networks.NetworkError(f"{name} end{'s' if name != 'the layers' else ''} with {net.n_outputs} outputs; "
                                    f"the data set has {what}")
    alpha, _ = network_options(model)
    return net.with_alpha(alpha) if alpha else net


def _check_network(network, where, dataset, shape, batch_sizes, dtype, sources):
    """Refuse, in one line naming the table and the data set, a declared network that cannot train on it."""
    try:
        net = network_for(network, *shape)
        n_train = datasets.load(dataset, sources).X_train.shape[0]
        net.check_fits(max(n_train if size == "full" else min(size, n_train) for size in batch_sizes), np.dtype(dtype))
    except ValueError as error:  # NetworkError and LayerError
        _fail(f"{where}{'' if where.startswith('[datasets.') else f' on {dataset}'}: {error}")


def _datasets(raw, base_dir):
    """The data set names, the sweep's own sources, the [datasets.NAME] model tables and the budgets they give
    (:func:`_budget`) of a configuration."""
    entry = raw.get("datasets")
    if isinstance(entry, list):
        tables = {name: {} for name in _list(raw, "datasets", lambda v: isinstance(v, str), "data set names")}
    elif isinstance(entry, dict) and entry:
        tables = entry
    else:
        _fail(f"'datasets' must be a non-empty list of data set names or [datasets.NAME] tables, got {entry!r}")
    sources, models, budgets = {}, {}, {}
    for name, table in tables.items():
        where = f"[datasets.{name}]"
        if not isinstance(table, dict):
            _fail(f"{where} must be a table ({', '.join(_DATASET_KEYS)}), got {table!r}")
        unknown = sorted(set(table) - set(_DATASET_KEYS))
        if unknown:
            _fail(f"{where} has no key {unknown[0]!r} (it takes {', '.join(_DATASET_KEYS)})")
        if "model" in table:
            models[name] = table["model"]
        budgets[name] = _budget(table, where)
        definition = {key: value for key, value in table.items() if key not in ("model", *_BUDGET_KEYS)}
        if not definition:
            if name in datasets.registered():  # from Python: its workers get it from here
                sources[name] = datasets.registered()[name]
            continue
        if datasets.is_builtin(name) or name in datasets.registered():
            kind = "a bundled" if datasets.is_builtin(name) else "a registered"
            _fail(f"{where}: the name {name!r} clashes with {kind} data set of that name: give yours another name")
        path = definition.get("path")
        if isinstance(path, str) and path:
            path = os.path.join(base_dir or os.getcwd(), os.path.expanduser(path))
        try:
            sources[name] = datasets.Source(
                name, path=path, loader=definition.get("loader"), target=definition.get("target"),
                task=definition.get("task"), test_size=definition.get("test_size", datasets.TEST_SIZE),
                split_seed=definition.get("split_seed", datasets.SPLIT_SEED), options=definition.get("options", {}),
                standardise=definition.get("standardise", True))
        except datasets.DatasetError as error:
            _fail(f"{where} {error}")
    return tuple(tables), sources, models, budgets


def _check_every_optimizer_accepts(config):
    """Build each distinct optimizer setting once on a dummy vector: bad values fail here, before any run."""
    for rule in config.rules:
        if config.tuning is not None:
            settings = tuning.sample_settings(rule, config.tuning.budget, config.tuning.seed)
        else:
            grid = config.rule_grids.get(rule, {})
            names = sorted(grid)
            settings = [dict(zip(names, values), lr=learning_rate)
                        for values in itertools.product(*(grid[name] for name in names))
                        for learning_rate in config.learning_rates]
        for setting in settings:
            try:
                if solvers.is_solver(rule):
                    solvers.SOLVERS[rule].check(setting)
                    continue
                optim.OPTIMIZERS[rule](np.zeros(1), **setting)
            except (TypeError, ValueError) as error:
                _fail(f"rule {rule!r} with {setting}: {error}")


def load_config(path, dataset=None, target_loss=None, problem_names=None):
    """Read and check a TOML sweep configuration file (UTF-8, at most MAX_CONFIG_BYTES).

    ``dataset`` (and ``target_loss``): run it on that data set instead of its own (:func:`on_dataset`),
    checked once, as such; ``problem_names``: on those test problems instead (:func:`on_problems`).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        _fail(f"no such configuration file: {path}")
    if os.path.isdir(path):
        _fail(f"{path} is a directory, not a configuration file")
    if not os.path.isfile(path):
        _fail(f"{path} is not a regular file")
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror or error}")
    if len(content) > MAX_CONFIG_BYTES:
        _fail(f"{path} is larger than {MAX_CONFIG_BYTES} bytes: not a sweep configuration")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        _fail(f"{path} is not UTF-8 text (byte {error.start}): not a TOML configuration")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        _fail(f"{path} is not valid TOML: {' '.join(str(error).split())}")
    except RecursionError:
        _fail(f"{path} is not a usable TOML configuration: its values nest too deeply")
    return parse(_on(raw, dataset, target_loss, problem_names), base_dir=os.path.dirname(os.path.abspath(path)))


def _on(raw, dataset, target_loss, problem_names):
    if dataset is not None:
        raw = on_dataset(raw, dataset, target_loss)
    if problem_names is not None:
        raw = on_problems(raw, problem_names)
    return raw


def load_preset(name, dataset=None, target_loss=None, problem_names=None):
    """A preset (:data:`PRESETS`); ``dataset``, ``target_loss`` and ``problem_names`` as for :func:`load_config`."""
    if name not in PRESETS:
        _fail(f"unknown preset {name!r}: use one of {list(PRESETS)}")
    raw = tomllib.loads(resources.files("fastgd.sweep").joinpath("presets", f"{name}.toml").read_text())
    return parse(_on(raw, dataset, target_loss, problem_names))
