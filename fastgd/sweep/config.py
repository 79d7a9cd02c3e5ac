"""Sweep configurations: a small TOML file, checked completely before anything runs.

    name = "my-sweep"
    datasets = ["iris", "digits"]          # fastgd.datasets.BUNDLED, or "synthetic-classification-10000x20"
    rules = "all"                          # or a list of names from fastgd.optim.OPTIMIZERS
    learning_rates = [1e-3, 1e-2, 1e-1]
    batch_sizes = [32]                     # integers, or "full" for batch gradient descent
    seeds = [0, 1, 2]
    epochs = 20
    dtype = "float64"

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

Every combination becomes one :class:`RunSpec`; its ``run_id`` (a hash of what
defines the run, the rule's definition included) is how a store knows what it
already holds: a run of an edited rule is a new run. The presets
``quick``, ``default`` and ``full`` ship in ``fastgd/sweep/presets/``.
"""

import hashlib
import itertools
import json
import math
import re
import os
import tomllib
from dataclasses import asdict, dataclass, replace
from importlib import resources

from fastgd import datasets, optim
from fastgd import rules as rule_registry
from fastgd.kernels.mlp import ACTIVATIONS

__all__ = ["SweepConfigError", "RunSpec", "SweepConfig", "load_config", "load_preset", "PRESETS"]

PRESETS = ("quick", "default", "full")
_SYNTHETIC = re.compile(r"^synthetic-(classification|regression)-(\d+)x(\d+)$")
_TOP_LEVEL = {"name", "datasets", "rules", "hyperparameters", "learning_rates", "batch_sizes", "seeds", "epochs",
              "dtype", "model", "targets", "plugins"}
_MODEL_KEYS = {"hidden_layer_sizes", "activation", "alpha"}


class SweepConfigError(ValueError):
    """A configuration that cannot run; the message is one line naming the problem."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run (and nothing that does not)."""

    dataset: str
    rule: str
    learning_rate: float
    hyperparameters: tuple  # sorted (name, value) pairs besides the learning rate
    batch_size: object  # int or "full"
    seed: int
    n_epochs: int
    hidden_layer_sizes: tuple
    activation: str
    alpha: float
    dtype: str
    target_loss: float
    rule_hash: str  # the rule's definition (fastgd.rules.Rule.hash): an edited rule makes new runs

    @property
    def run_id(self):
        canonical = json.dumps(asdict(self), sort_keys=True, default=list)
        return hashlib.sha1(canonical.encode()).hexdigest()[:20]

    @property
    def group(self):
        """Runs of one group share data and network shape: they can train in one compiled call."""
        return (self.dataset, self.hidden_layer_sizes, self.activation, self.alpha, self.dtype, self.batch_size,
                self.n_epochs)

    def optimizer_hyperparameters(self):
        return dict(self.hyperparameters, lr=self.learning_rate)


@dataclass(frozen=True)
class SweepConfig:
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

    def with_plugins(self, plugins):
        """This configuration with more plugins (already loaded here), e.g. from ``--plugin``."""
        known = {plugin.digest or plugin.spec for plugin in self.plugins}
        extra = tuple(plugin for plugin in plugins if (plugin.digest or plugin.spec) not in known)
        return replace(self, plugins=self.plugins + extra)

    def runs(self):
        """Every RunSpec of the sweep, in a fixed order."""
        specs = []
        for dataset, rule in itertools.product(self.datasets, self.rules):
            grid = self.rule_grids.get(rule, {})
            names = sorted(grid)
            for values in itertools.product(*(grid[n] for n in names)):
                hyperparameters = tuple(zip(names, (tuple(v) if isinstance(v, list) else v for v in values)))
                for learning_rate, batch_size, seed in itertools.product(self.learning_rates, self.batch_sizes,
                                                                         self.seeds):
                    specs.append(RunSpec(dataset, rule, learning_rate, hyperparameters, batch_size, seed,
                                         self.n_epochs, self.hidden_layer_sizes, self.activation, self.alpha,
                                         self.dtype, self.targets[dataset], rule_registry.get(rule).hash))
        return specs


def load_dataset(name):
    """A bundled data set by name, or a synthetic one named ``synthetic-<task>-<n>x<features>``."""
    match = _SYNTHETIC.match(name)
    if match:
        task, n_samples, n_features = match.group(1), int(match.group(2)), int(match.group(3))
        return datasets.synthetic(task, n_samples, n_features)
    return datasets.load(name)


def _fail(message):
    raise SweepConfigError(message)


def _list(raw, key, kind, check, description):
    values = raw.get(key)
    if not isinstance(values, list) or not values:
        _fail(f"'{key}' must be a non-empty list of {description}")
    for value in values:
        if not (isinstance(value, kind) and not isinstance(value, bool) and check(value)):
            _fail(f"'{key}' must be a non-empty list of {description}, got {value!r}")
    return tuple(values)


def parse(raw, base_dir=None):
    """A checked :class:`SweepConfig` from a parsed TOML dict; raises SweepConfigError.

    ``plugins`` are loaded here (paths relative to ``base_dir``), so that the
    rules they register can be named and checked.
    """
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        _fail(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_LEVEL))})")
    plugin_specs = raw.get("plugins", [])
    if not isinstance(plugin_specs, list) or not all(isinstance(spec, str) for spec in plugin_specs):
        _fail(f"'plugins' must be a list of paths or module names, got {plugin_specs!r}")
    try:
        plugins = tuple(rule_registry.resolve_plugin(spec, base_dir) for spec in plugin_specs)
        rule_registry.load_plugins(plugins)
    except rule_registry.PluginError as error:
        _fail(str(error))
    name = raw.get("name", "sweep")
    names = _list(raw, "datasets", str, lambda v: True, "data set names")
    for dataset in names:
        if dataset not in datasets.BUNDLED and not _SYNTHETIC.match(dataset):
            _fail(f"unknown dataset {dataset!r}: use one of {sorted(datasets.BUNDLED)} or "
                  "'synthetic-classification-<n>x<features>'")

    rules_entry = raw.get("rules", "all")
    grids = raw.get("hyperparameters", {})
    if not isinstance(grids, dict):
        _fail("[hyperparameters] must hold one table per rule, e.g. [hyperparameters.rmsprop]")
    if rules_entry == "all":
        rules = tuple(optim.OPTIMIZERS)
    elif isinstance(rules_entry, list) and rules_entry and all(isinstance(r, str) for r in rules_entry):
        rules = tuple(rules_entry)
    else:
        _fail(f"'rules' must be \"all\" or a list of rule names, got {rules_entry!r}")
    for rule in list(rules) + list(grids):
        if rule not in optim.OPTIMIZERS:
            _fail(f"unknown rule {rule!r}: use one of {sorted(optim.OPTIMIZERS)}")
    for rule, grid in grids.items():
        if not isinstance(grid, dict):
            _fail(f"[hyperparameters.{rule}] must be a table of hyperparameter lists")
        accepted = set(optim.OPTIMIZERS[rule].default_hyperparameters()) - {"lr"}
        for key, values in grid.items():
            if key not in accepted:
                _fail(f"rule {rule!r} has no hyperparameter {key!r} (it has {sorted(accepted)}; the learning rate "
                      "is 'learning_rates')")
            if not isinstance(values, list) or not values:
                _fail(f"[hyperparameters.{rule}] {key} must be a non-empty list of values")

    learning_rates = _list(raw, "learning_rates", (int, float), lambda v: math.isfinite(v) and v > 0,
                           "positive learning rates")
    batch_sizes = raw.get("batch_sizes", [32])
    if not isinstance(batch_sizes, list) or not batch_sizes or not all(
            b == "full" or (isinstance(b, int) and not isinstance(b, bool) and b >= 1) for b in batch_sizes):
        _fail(f"'batch_sizes' must list positive integers or \"full\", got {batch_sizes!r}")
    seeds = _list(raw, "seeds", int, lambda v: v >= 0, "non-negative integer seeds")
    epochs = raw.get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        _fail(f"'epochs' must be a positive integer, got {epochs!r}")
    dtype = raw.get("dtype", "float64")
    if dtype not in ("float32", "float64"):
        _fail(f"'dtype' must be \"float32\" or \"float64\", got {dtype!r}")

    model = raw.get("model", {})
    if not isinstance(model, dict) or set(model) - _MODEL_KEYS:
        _fail(f"[model] takes only {sorted(_MODEL_KEYS)}, got {sorted(model) if isinstance(model, dict) else model}")
    hidden = model.get("hidden_layer_sizes", [32])
    if not isinstance(hidden, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                                for n in hidden):
        _fail(f"[model] hidden_layer_sizes must be a list of positive integers, got {hidden!r}")
    activation = model.get("activation", "relu")
    if activation not in ACTIVATIONS:
        _fail(f"[model] activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    alpha = model.get("alpha", 1e-4)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (0 <= alpha < math.inf):
        _fail(f"[model] alpha must be a finite number >= 0, got {alpha!r}")

    targets = raw.get("targets", {})
    if not isinstance(targets, dict):
        _fail("[targets] must be a table: data set name = target training loss")
    for dataset in names:
        target = targets.get(dataset)
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not target > 0:
            _fail(f"[targets] needs a positive target training loss for {dataset!r}, got {target!r}")

    config = SweepConfig(str(name), names, rules, grids, tuple(float(v) for v in learning_rates), tuple(batch_sizes),
                         seeds, epochs, dtype, tuple(hidden), activation, float(alpha),
                         {d: float(targets[d]) for d in names}, raw, plugins)
    _check_every_optimizer_accepts(config)
    return config


def _check_every_optimizer_accepts(config):
    """Build each distinct optimizer once on a dummy vector: bad values fail here, before any run."""
    import numpy as np

    seen = set()
    for spec in config.runs():
        key = (spec.rule, spec.hyperparameters, spec.learning_rate)
        if key in seen:
            continue
        seen.add(key)
        try:
            optim.OPTIMIZERS[spec.rule](np.zeros(1), **spec.optimizer_hyperparameters())
        except (TypeError, ValueError) as error:
            _fail(f"rule {spec.rule!r} with {spec.optimizer_hyperparameters()}: {error}")


def load_config(path):
    """Read and check a TOML sweep configuration file."""
    try:
        with open(path, "rb") as file:
            raw = tomllib.load(file)
    except FileNotFoundError:
        _fail(f"no such configuration file: {path}")
    except tomllib.TOMLDecodeError as error:
        _fail(f"{path} is not valid TOML: {error}")
    return parse(raw, base_dir=os.path.dirname(os.path.abspath(path)))


def load_preset(name):
    if name not in PRESETS:
        _fail(f"unknown preset {name!r}: use one of {list(PRESETS)}")
    text = resources.files("fastgd.sweep").joinpath("presets", f"{name}.toml").read_text()
    return parse(tomllib.loads(text))
