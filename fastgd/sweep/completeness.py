"""What a stored sweep planned, read back from the configuration its store records, for a report to say how
complete the store is.

A sweep records its parsed configuration (``sweeps.config``) when it starts, with ``rules`` as the list it
resolved (``"all"`` means the rules registered at that moment). :func:`planned_runs` counts the runs that
configuration defines the way :func:`fastgd.sweep.config.parse` does, without loading a data set or a
rule: a report is made from the store alone, perhaps where the sweep's files and plugins are not.
:func:`completeness` compares the plan with the runs stored.
"""

import math
from dataclasses import dataclass

__all__ = ["Plan", "planned_runs", "completeness"]


@dataclass(frozen=True)
class Plan:
    """The data sets, rules and number of runs of one configuration; ``rules`` None where the store recorded only
    ``"all"`` (a store of an older fastgd), ``n_runs`` None where it cannot be counted without the rule list."""

    datasets: tuple
    rules: tuple
    n_runs: int


def planned_runs(config):
    """The :class:`Plan` of a configuration as a store records it (a dict); None where it is not one."""
    from fastgd.sweep import tuning

    if not isinstance(config, dict):
        return None
    try:
        tables = config.get("datasets", [])
        datasets = tuple(tables) if isinstance(tables, (list, dict)) else ()
        rules_entry = config.get("rules", "all")
        rules = tuple(rules_entry) if isinstance(rules_entry, list) else None
        # each batch size (a data set's own, else the configuration's) under each schedule (one, constant, for a
        # store from before schedules were an axis)
        own = tables if isinstance(tables, dict) else {}
        batch_sizes = sum(len((own.get(name) or {}).get("batch_sizes", config.get("batch_sizes", [32])))
                          for name in datasets) * len(config.get("schedules", ["constant"]))
        if rules is None:
            return Plan(datasets, None, None)
        if isinstance(config.get("tuning"), dict):
            table = config["tuning"]
            per_rule = tuning.n_trials(table.get("budget", "small")) + int(table.get("final_seeds", tuning.MIN_SEEDS))
            return Plan(datasets, rules, len(rules) * batch_sizes * per_rule)
        grids = config.get("hyperparameters", {})
        settings = sum(math.prod(len(values) for values in grids.get(rule, {}).values()) for rule in rules)
        n_runs = batch_sizes * len(config.get("learning_rates", [])) * len(config.get("seeds", [])) * settings
        return Plan(datasets, rules, n_runs)
    except (TypeError, ValueError, AttributeError):
        return None


def completeness(runs, sweeps):
    """One line saying how incomplete the store of ``runs`` is against its last sweep's plan; None when every planned
    run is stored (or the plan cannot be read). ``runs``, ``sweeps``: a store's frames, every phase."""
    if not len(sweeps):
        return None
    plan = planned_runs(sweeps["config"].iloc[-1])
    if plan is None:
        return None
    missing_datasets = [name for name in plan.datasets if name not in set(runs["dataset"])]
    missing_rules = [rule for rule in plan.rules or () if rule not in set(runs["rule"])]
    stored = runs[runs["dataset"].isin(plan.datasets) & (runs["rule"].isin(plan.rules) if plan.rules else True)]
    parts = []
    if plan.n_runs is not None and len(stored) < plan.n_runs:
        parts.append(f"{len(stored)} of the {plan.n_runs} runs it planned are stored")
    if missing_rules:
        parts.append(f"{len(plan.rules) - len(missing_rules)} of its {len(plan.rules)} rules have runs (none of "
                     f"{', '.join(missing_rules)})")
    if missing_datasets:
        parts.append(f"{len(plan.datasets) - len(missing_datasets)} of its {len(plan.datasets)} data sets have runs "
                     f"(none on {', '.join(missing_datasets)})")
    if not parts:
        return None
    return (f"the sweep '{sweeps['name'].iloc[-1]}' is incomplete: {'; '.join(parts)}. Every winner, rank and "
            "profile below is among the runs stored only; run the same sweep again to finish it")
