"""The tuning protocol's pure parts: search spaces, quasi-random trials under budgets, best-so-far, selection.

Every rule declares its search space with its hyperparameters
(:attr:`fastgd.rules.Rule.search_space`: a log-uniform learning rate, betas
and momenta on the ``1 - β`` log scale, ε …); the others stay at their
defaults. A whole-batch solver (:mod:`fastgd.sweep.solvers`, ``lbfgs``)
declares its own. The protocol, as DeepOBS (Schneider et al. 2019), Schmidt, Schneider
and Hennig (2021), "Descending through a Crowded Valley", and AlgoPerf (Dahl
et al. 2023) run it:

1. :func:`sample_settings`: ``budget`` trials per rule, points of a scrambled
   Sobol sequence (:class:`scipy.stats.qmc.Sobol`) mapped through the space;
   ``one-shot`` is the defaults alone.
2. Each trial is trained and scored on a validation split, never the test set.
3. :func:`best_so_far`: the best validation score after 1, 2, … trials, per
   rule: how much a rule gains from tuning.
4. :func:`choose_settings`: each rule's best trial, and the fresh seeds
   (at least :data:`MIN_SEEDS`) to train it again with; the statistics
   (:mod:`fastgd.sweep.stats`) are computed over those runs.

>>> from fastgd.sweep import tuning
>>> tuning.sample_settings("adam", "one-shot")
[{'lr': 0.001, 'betas': (0.9, 0.999), 'eps': 1e-08}]
>>> len(tuning.sample_settings("adam", "small", seed=0))
8
"""

import math

import numpy as np

__all__ = ["BUDGETS", "MIN_SEEDS", "search_space", "n_trials", "sample_settings", "split_learning_rate",
           "trials_frame", "best_so_far", "choose_settings", "fresh_seeds"]

BUDGETS = {"one-shot": 1, "small": 8, "large": 32}
"""Trials per rule under each named budget; ``one-shot`` is the rule's defaults, the others Sobol points."""

MIN_SEEDS = 10
"""The chosen setting is trained again with at least this many seeds."""


def _rule(rule):
    from fastgd.rules import Rule, registry
    from fastgd.sweep.solvers import SOLVERS, Solver

    if isinstance(rule, (Rule, Solver)):
        return rule
    if rule in SOLVERS:
        return SOLVERS[rule]
    if rule not in registry.RULES:
        raise ValueError(f"unknown rule {rule!r} (registered: {', '.join(registry.RULES)})")
    return registry.RULES[rule]


def search_space(rule):
    """Hyperparameter name → its distribution (a tuple of them, or None per entry, for ``betas``), ``lr`` first."""
    return _rule(rule).search_space


def n_trials(budget):
    """The number of trials of a named budget (:data:`BUDGETS`) or of a positive integer."""
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r} (one of {', '.join(BUDGETS)}, or a number of trials)")
        return BUDGETS[budget]
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"a budget is a name ({', '.join(BUDGETS)}) or a number of trials >= 1, got {budget!r}")
    return int(budget)


def sample_settings(rule, budget="small", seed=0):
    """The settings to try for ``rule``: a list of dicts of its searched hyperparameters (``lr`` first).

    ``one-shot`` gives the defaults; any other budget gives the first
    :func:`n_trials` points of a scrambled Sobol sequence seeded with
    ``seed`` (the same seed, the same settings; every rule with the same
    number of dimensions sees the same points of the unit cube). Each setting,
    with the rule's other defaults, passes the rule's own checks.
    """
    rule = _rule(rule)
    count = n_trials(budget)
    if budget == "one-shot":
        return [{name: rule.defaults[name] for name in rule.search_space}]
    if rule.search_dimensions == 0:
        raise ValueError(f"rule {rule.name!r} declares no search space: only the one-shot budget applies")
    from scipy.stats import qmc

    sobol = qmc.Sobol(rule.search_dimensions, scramble=True, rng=np.random.default_rng(seed))
    # a power of two keeps the sequence balanced (scipy warns otherwise); its first points are the trials
    points = sobol.random_base2(max(0, math.ceil(math.log2(count))))[:count]
    settings = []
    for point in points:
        setting = rule.from_unit(point)
        try:
            rule.check({**rule.defaults, **setting})
        except (TypeError, ValueError) as error:
            raise ValueError(f"rule {rule.name!r}: the search space gave {setting}, which the rule refuses: "
                             f"{error}") from None
        settings.append(setting)
    return settings


def split_learning_rate(setting):
    """``(learning_rate, other hyperparameters)`` of a setting, as a sweep's run takes them."""
    others = {name: value for name, value in setting.items() if name != "lr"}
    return setting["lr"], others


def trials_frame(rules, budget="small", seed=0):
    """One row per (rule, trial): ``rule``, ``trial`` (1, 2, …), ``budget``, ``setting``, ``learning_rate`` and
    ``hyperparameters`` (the setting without ``lr``), ready to be trained and given a validation score."""
    import pandas as pd

    if isinstance(rules, str):
        rules = [rules]
    records = []
    for rule in rules:
        rule = _rule(rule)
        for trial, setting in enumerate(sample_settings(rule, budget, seed), start=1):
            learning_rate, others = split_learning_rate(setting)
            records.append((rule.name, trial, str(budget), setting, learning_rate, others))
    return pd.DataFrame(records, columns=["rule", "trial", "budget", "setting", "learning_rate", "hyperparameters"])


def _check_frame(trials, score, by):
    if not isinstance(score, str) or "test" in score:
        raise ValueError(f"settings are chosen on a validation score, never the test set: got score={score!r}")
    missing = [column for column in (*by, "trial", score) if column not in trials]
    if missing:
        raise ValueError(f"the trials frame lacks the column(s) {missing}")


def best_so_far(trials, score="validation_loss", by=("rule",), minimize=True):
    """The best validation score after each number of trials, per group of ``by``, in trial order.

    Returns ``by`` columns, ``trial``, ``score`` (this trial's) and
    ``best_so_far``. A trial without a finite score (diverged, failed)
    improves nothing; ``best_so_far`` is NaN until a trial has one.
    """
    by = list(by)
    _check_frame(trials, score, by)
    frame = trials[[*by, "trial", score]].sort_values([*by, "trial"], kind="stable").reset_index(drop=True)
    values = frame[score].astype(float)
    worst = np.inf if minimize else -np.inf
    filled = values.where(np.isfinite(values), worst)
    running = filled.groupby([frame[column] for column in by]).cummin() if minimize else \
        filled.groupby([frame[column] for column in by]).cummax()
    frame = frame.rename(columns={score: "score"})
    frame["best_so_far"] = running.where(np.isfinite(running))
    return frame


def fresh_seeds(n_seeds, tuning_seeds=()):
    """The seeds a chosen setting is trained again with: the first ``n_seeds`` of 0, 1, 2, … not in
    ``tuning_seeds``."""
    taken = {int(seed) for seed in tuning_seeds}
    return [seed for seed in range(n_seeds + len(taken)) if seed not in taken][:n_seeds]


def choose_settings(trials, score="validation_loss", by=("rule",), minimize=True, n_seeds=MIN_SEEDS,
                    tuning_seeds=()):
    """Each group's best trial on the validation score, and the seeds to train it again with.

    Returns one row per group of ``by``: the chosen ``trial``, its ``score``,
    its ``setting`` (from a ``setting`` column, else ``learning_rate`` and
    ``hyperparameters``) and ``seeds``: ``n_seeds`` (at least
    :data:`MIN_SEEDS`) seeds not among ``tuning_seeds``, so the re-run is not
    scored on the luck that chose it. Ties go to the earlier trial; a group
    without a finite score is left out.
    """
    import pandas as pd

    by = list(by)
    _check_frame(trials, score, by)
    if isinstance(n_seeds, (bool, np.bool_)) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < MIN_SEEDS:
        raise ValueError(f"the chosen setting is re-run with at least {MIN_SEEDS} seeds, got n_seeds={n_seeds!r}")
    if "setting" not in trials and not {"learning_rate", "hyperparameters"} <= set(trials):
        raise ValueError("the trials frame needs a 'setting' column or 'learning_rate' and 'hyperparameters'")
    seeds = fresh_seeds(n_seeds, tuning_seeds)
    ordered = trials.sort_values([*by, "trial"], kind="stable")
    ordered = ordered[np.isfinite(ordered[score].astype(float))]
    rows = []
    for key, group in ordered.groupby(by, sort=True):
        values = group[score].astype(float).to_numpy()
        best = group.iloc[int(np.argmin(values) if minimize else np.argmax(values))]
        if "setting" in group:
            setting = dict(best["setting"])
        else:
            setting = {"lr": float(best["learning_rate"]), **dict(best["hyperparameters"] or {})}
        rows.append((*key, int(best["trial"]), float(best[score]), setting, list(seeds)))
    return pd.DataFrame(rows, columns=[*by, "trial", "score", "setting", "seeds"])
