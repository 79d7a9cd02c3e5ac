"""What a sweep's runs say: seed statistics, each rule's best setting, performance profiles.

All functions take the DataFrame of :func:`fastgd.sweep.load_runs` (one row per run).

* :func:`summarize`: per configuration (data set, rule, learning rate, batch
  size, other hyperparameters), mean and standard deviation over seeds of the
  final and best training loss, the test metric, epochs and seconds to the
  target loss; the share of seeds that reached the target and that diverged.
* :func:`best_runs`: per (data set, rule), the configuration that reaches the
  target fastest on average over its seeds (only configurations where every
  seed reached it), else the one with the lowest mean final loss.
* :func:`performance_profile`: Dolan and Moré (2002), "Benchmarking
  optimization software with performance profiles": for each rule and factor
  τ ≥ 1, the share of data sets on which its best configuration reaches the
  target within τ times the time of the fastest rule there.
"""

import json

import numpy as np

__all__ = ["summarize", "best_runs", "performance_profile", "CONFIG_COLUMNS"]

CONFIG_COLUMNS = ["dataset", "rule", "learning_rate", "batch_size", "hyperparameters"]
_MEASURES = ["final_loss", "best_loss", "test_metric", "epochs_to_target", "seconds_to_target"]


def _keyed(runs):
    runs = runs.copy()
    runs["hyperparameters"] = runs["hyperparameters"].map(
        lambda h: h if isinstance(h, str) else json.dumps(h, sort_keys=True))
    return runs


def summarize(runs):
    """One row per configuration: ``<measure>_mean``, ``<measure>_std`` over seeds, shares and counts."""
    runs = _keyed(runs[runs["status"] != "failed"])
    grouped = runs.groupby(CONFIG_COLUMNS, sort=True)
    summary = grouped[_MEASURES].agg(["mean", "std"])
    summary.columns = [f"{measure}_{statistic}" for measure, statistic in summary.columns]
    summary["n_seeds"] = grouped.size()
    summary["reached_share"] = grouped["epochs_to_target"].apply(lambda s: s.notna().mean())
    summary["diverged_share"] = grouped["status"].apply(lambda s: (s == "diverged").mean())
    return summary.reset_index()


def best_runs(runs):
    """Per (data set, rule): the best configuration's summary row (see the module docstring)."""
    summary = summarize(runs)
    rows = []
    for _, group in summary.groupby(["dataset", "rule"], sort=True):
        reached = group[group["reached_share"] == 1.0]
        if len(reached):
            rows.append(reached.loc[reached["seconds_to_target_mean"].idxmin()])
        elif group["final_loss_mean"].notna().any():
            rows.append(group.loc[group["final_loss_mean"].idxmin()])
        else:
            rows.append(group.iloc[0])
    frame = summary.iloc[0:0].copy() if not rows else type(summary)(rows).reset_index(drop=True)
    frame["reached"] = frame["reached_share"] == 1.0
    return frame


def performance_profile(runs, metric="seconds_to_target", taus=None):
    """Long DataFrame (rule, tau, share): ρ_rule(τ) over the data sets (unsolved counts as never)."""
    import pandas as pd

    best = best_runs(runs)
    cost = best.pivot(index="dataset", columns="rule", values=f"{metric}_mean")
    cost = cost.where(best.pivot(index="dataset", columns="rule", values="reached"), np.inf).astype(float)
    fastest = cost.min(axis=1).replace(np.inf, np.nan)
    ratios = cost.div(fastest, axis=0)  # NaN where no rule solved the data set: it counts for nobody
    if taus is None:
        finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
        upper = max(2.0, float(finite.max()) * 1.05) if finite.size else 2.0
        taus = np.unique(np.concatenate([[1.0], np.geomspace(1.0, upper, 60), finite]))
    n_problems = len(ratios.index)
    records = []
    for rule in ratios.columns:
        values = ratios[rule].to_numpy()
        for tau in taus:
            records.append((rule, float(tau), float(np.sum(values <= tau) / n_problems) if n_problems else 0.0))
    return pd.DataFrame(records, columns=["rule", "tau", "share"])
