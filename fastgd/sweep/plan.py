"""What a sweep runs: :class:`RunSpec`, the grid's plan and the tuning protocol's plans.

A :class:`fastgd.sweep.config.SweepConfig` says what the user asked for; this
module turns it into runs. :func:`runs` is every run known before training
starts: the grid's (every combination of data set, rule, schedule, hyperparameters,
learning rate, batch size and seed; a data set's own
epochs and batch sizes where its table gives them) or, under ``[tuning]``, the tuning trials.

The tuning protocol of a sweep with a ``[tuning]`` table tunes each rule on a
validation split, then runs the chosen setting again with fresh seeds on the
test split. For every data set, rule, batch size and schedule of the configuration (each schedule is tuned
on its own, as in the Crowded Valley study):

1. **Tuning** (``phase = "tune"``): the budget's settings
   (:func:`fastgd.sweep.tuning.sample_settings`: scrambled Sobol points of the
   rule's declared search space, or its defaults for ``one-shot``), each trained
   once, with ``tuning_seed``, on the training rows less ``validation_fraction``
   of them (:meth:`fastgd.datasets.Dataset.validation_split`, stratified, its
   rows fixed by ``datasets.SPLIT_SEED``) and scored on those held-out rows:
   ``validation_loss`` and ``validation_metric``.
2. **Final** (``phase = "final"``): the trial of lowest validation loss
   (:func:`fastgd.sweep.tuning.choose_settings`; ties to the earlier trial)
   trained again with ``final_seeds`` seeds other than the tuning seed, on every
   training row, scored on the test rows (``test_metric``, ``test_loss``). The test
   rows never choose anything.

A rule none of whose trials reached a finite validation loss (every one
diverged or failed) has nothing to choose from: its final runs take the rule's
defaults (the one-shot setting) with ``trial`` empty, and the sweep's outcome
says so in its ``notes``. Its comparison then shows what the defaults do
rather than leaving a hole in every across-data-set statistic.

Both phases are ordinary runs that :func:`fastgd.sweep.runner.run_sweep`
trains and stores, local processes or Dask alike. The final runs are built
from the stored tuning results, looked up by run id, so a sweep interrupted in
either phase resumes where it stopped.
"""

import hashlib
import itertools
import json
from dataclasses import MISSING, asdict, dataclass

import numpy as np

from fastgd.sweep import solvers, tuning
from fastgd.sweep.config import network_options

__all__ = ["RunSpec", "runs", "grid_runs", "tuning_runs", "final_runs"]


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
    data_hash: str  # the data set's content (datasets.Dataset.content_hash): an edited file makes new runs
    # the tuning protocol: "test" trains on every training row and scores on the test rows; "validation" holds out
    # validation_fraction of the training rows (Dataset.validation_split) and scores there
    split: str = "test"
    validation_fraction: float = None
    phase: str = "grid"  # "grid", or the protocol's "tune" and "final"
    trial: int = None  # a tuning trial's 0-based index (tuning.sample_settings order); a final run's chosen trial
    budget: str = None  # the tuning budget (tuning.BUDGETS) of a protocol's run
    # a declared network (SweepConfig.network_of's canonical JSON; hidden_layer_sizes and activation are then () and
    # "", alpha its L2 penalty, 0 by default), or None for the MLP: an MLP's run keeps the id it had before networks
    # could be declared
    model: str = None
    schedule: str = "constant"  # the learning-rate schedule (fastgd.training.SCHEDULES), over n_epochs
    track_objective: bool = False  # record the full training objective after every epoch (fastgd.sweep.runner)

    @property
    def run_id(self):
        # fields at their defaults are left out: a grid run keeps the id it had before the protocol's fields existed
        defaults = {name: value.default for name, value in self.__dataclass_fields__.items()
                    if value.default is not MISSING}
        fields = {name: value for name, value in asdict(self).items()
                  if name not in defaults or value != defaults[name]}
        canonical = json.dumps(fields, sort_keys=True, default=list)
        return hashlib.sha1(canonical.encode()).hexdigest()[:20]

    @property
    def group(self):
        """Runs of one group share data and network shape: they can train in one compiled call."""
        return (self.dataset, self.split, self.validation_fraction, self.hidden_layer_sizes, self.activation,
                self.alpha, self.model, self.dtype, self.batch_size, self.n_epochs, self.schedule)

    def optimizer_hyperparameters(self):
        return dict(self.hyperparameters, lr=self.learning_rate)


def runs(config):
    """Every RunSpec of the sweep known before it trains, in a fixed order: the grid's runs, or under ``[tuning]``
    the tuning trials (the final runs follow from their results: :func:`final_runs`)."""
    return tuning_runs(config) if config.tuning is not None else grid_runs(config)


def _run(config, dataset, rule, learning_rate, hyperparameters, batch_size, seed, data_hash, schedule, **protocol):
    """A RunSpec of ``config``: the network, epochs, dtype and target of ``dataset``, the rule's current hash; a data
    set whose optimal loss the configuration knows (``f_star``) has its runs record the full training objective."""
    model = config.network_of(dataset)
    hidden, activation, alpha = config.model_of(dataset) if model is None else ((), "", network_options(model)[0])
    return RunSpec(dataset=dataset, rule=rule, learning_rate=float(learning_rate), hyperparameters=hyperparameters,
                   batch_size=batch_size, seed=seed, n_epochs=config.epochs_of(dataset), hidden_layer_sizes=hidden,
                   activation=activation, alpha=alpha, dtype=config.dtype_of(dataset),
                   target_loss=config.targets[dataset], rule_hash=solvers.definition(rule).hash, data_hash=data_hash,
                   model=model, schedule=schedule,
                   track_objective=dataset in config.f_stars, **protocol)


def grid_runs(config):
    """The runs of a grid configuration (no ``[tuning]``): every combination of data set, rule, schedule, the rule's
    hyperparameter grid, learning rate, batch size and seed, in that nesting order."""
    specs = []
    for dataset, rule, schedule in itertools.product(config.datasets, config.rules, config.schedules):
        grid = config.rule_grids.get(rule, {})
        names = sorted(grid)
        for values in itertools.product(*(grid[name] for name in names)):
            hyperparameters = tuple(zip(names, (_plain(value) for value in values)))
            for learning_rate, batch_size, seed in itertools.product(config.learning_rates,
                                                                     config.batch_sizes_of(dataset), config.seeds):
                specs.append(_run(config, dataset, rule, learning_rate, hyperparameters, batch_size, seed,
                                  config.data_hashes[dataset], schedule))
    return specs



def _plain(value):
    """A setting's value as a RunSpec holds it: Python numbers, tuples for sequences."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_plain(item) for item in value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def _spec(config, dataset, rule, batch_size, schedule, setting, seed, phase, trial):
    learning_rate, others = tuning.split_learning_rate(setting)
    hyperparameters = tuple(sorted((name, _plain(value)) for name, value in others.items()))
    tune = phase == "tune"
    return _run(config, dataset, rule, learning_rate, hyperparameters, batch_size, seed,
                config.validation_hashes[dataset] if tune else config.data_hashes[dataset], schedule,
                split="validation" if tune else "test",
                validation_fraction=config.tuning.validation_fraction if tune else None,
                phase=phase, trial=trial, budget=config.tuning.budget)


def _groups(config):
    """(data set, rule, batch size, schedule) in the configuration's order (each data set's own batch sizes): each is
    tuned and chosen on its own."""
    return ((dataset, rule, batch_size, schedule) for dataset, rule in itertools.product(config.datasets, config.rules)
            for batch_size, schedule in itertools.product(config.batch_sizes_of(dataset), config.schedules))


def tuning_runs(config):
    """The tuning trials of a configuration with ``[tuning]``: one RunSpec per (data set, rule, batch size,
    schedule, trial), on the validation split, trained with ``tuning_seed``."""
    settings = {rule: tuning.sample_settings(rule, config.tuning.budget, config.tuning.seed) for rule in config.rules}
    return [_spec(config, dataset, rule, batch_size, schedule, setting, config.tuning.tuning_seed, "tune", trial)
            for dataset, rule, batch_size, schedule in _groups(config)
            for trial, setting in enumerate(settings[rule])]


def final_runs(config, validation_losses):
    """The final runs of a configuration with ``[tuning]``, and notes on what could not be chosen.

    ``validation_losses``: ``{run_id: validation loss}`` of the stored tuning
    runs (None or NaN for one that diverged or failed); every run of
    :func:`tuning_runs` must be there (ValueError otherwise: tuning is not
    finished). Returns ``(specs, notes)``: ``final_seeds`` RunSpecs per group
    at its best trial's setting, and one line per group whose trials all
    lacked a finite validation loss (those take the rule's defaults).
    """
    trials = tuning_runs(config)
    missing = [spec for spec in trials if spec.run_id not in validation_losses]
    if missing:
        raise ValueError(f"{len(missing)} of {len(trials)} tuning runs are not stored yet (the first: "
                         f"{missing[0].rule} on {missing[0].dataset}, trial {missing[0].trial}): the final runs "
                         "follow from all of them")
    import pandas as pd

    groups = {key: index for index, key in enumerate(_groups(config))}
    frame = pd.DataFrame({
        "group": [groups[(spec.dataset, spec.rule, spec.batch_size, spec.schedule)] for spec in trials],
        "trial": [spec.trial for spec in trials],
        "setting": [spec.optimizer_hyperparameters() for spec in trials],
        "validation_loss": [np.nan if validation_losses[spec.run_id] is None else
                            float(validation_losses[spec.run_id]) for spec in trials]})
    chosen = tuning.choose_settings(frame, "validation_loss", by=("group",), n_seeds=config.tuning.final_seeds,
                                    tuning_seeds=(config.tuning.tuning_seed,)).set_index("group")
    seeds = tuning.fresh_seeds(config.tuning.final_seeds, (config.tuning.tuning_seed,))
    specs, notes = [], []
    for (dataset, rule, batch_size, schedule), group in groups.items():
        if group in chosen.index:
            setting, trial = chosen.loc[group, "setting"], int(chosen.loc[group, "trial"])
        else:
            setting, trial = tuning.sample_settings(rule, "one-shot")[0], None
            under = "" if schedule == "constant" else f", {schedule} schedule"
            notes.append(f"{rule} on {dataset} (batch size {batch_size}{under}): no trial reached a finite validation "
                         "loss; its final runs take the rule's defaults")
        specs += [_spec(config, dataset, rule, batch_size, schedule, setting, seed, "final", trial)
                  for seed in seeds]
    return specs, notes
