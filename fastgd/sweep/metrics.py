"""What a sweep's runs say: seed statistics, each rule's best setting, performance profiles.

All functions take the DataFrame of :func:`fastgd.sweep.load_runs` (one row per run).

* :func:`summarize`: per configuration (every field that defines a run but
  the seed: data set, rule, learning rate, batch size, other hyperparameters,
  epochs, network, penalty, dtype and target loss), mean and standard
  deviation over seeds of the final and best training loss, the test metric,
  epochs and seconds to the target loss; the share of seeds that reached the
  target and that diverged.
* :func:`best_runs`: per (data set, rule), the configuration that reaches the
  target in the fewest epochs on average over its seeds, then the fastest
  (only configurations where every seed reached it), else the one with the
  lowest mean final loss: the choice of
  :func:`fastgd.sweep.stats.best_configuration_runs`.
* :func:`mixed_settings`: where a store holds runs of different epoch
  counts, networks, penalties, dtypes or targets for one data set, whose
  rules are then not compared on equal terms.
* :func:`performance_profile`: Dolan and Moré (2002), "Benchmarking
  optimization software with performance profiles": for each rule and factor
  τ ≥ 1, the share of data sets on which its best configuration reaches the
  target within τ times the time of the fastest rule there.
"""

import json

import numpy as np

__all__ = ["summarize", "best_configurations", "best_runs", "performance_profile", "mixed_settings",
           "mixed_provenance", "config_columns", "CONFIG_COLUMNS", "SETUP_COLUMNS"]

# what every rule on one data set should share for a fair comparison
SETUP_COLUMNS = ["n_epochs", "hidden_layer_sizes", "activation", "alpha", "model", "dtype", "target_loss",
                 "schedule"]
# what defines a run, the seed aside (fastgd.sweep.RunSpec): runs equal in all of these are seeds of one
# configuration; the rule's definition hash too, so that runs of an edited rule are never averaged with the old
CONFIG_COLUMNS = ["dataset", "data_hash", "rule", "rule_hash", "learning_rate", "batch_size", "hyperparameters",
                  *SETUP_COLUMNS]
_MEASURES = ["final_loss", "best_loss", "test_metric", "epochs_to_target", "seconds_to_target"]


def _keyed(runs):
    runs = runs.copy()
    for column in ("hyperparameters", "hidden_layer_sizes"):
        if column in runs:
            runs[column] = runs[column].map(lambda h: h if isinstance(h, str) else json.dumps(h, sort_keys=True))
    if "model" in runs:  # an MLP's run has none (None, or NaN in a frame of MLPs alone): text, as a declared one's
        runs["model"] = runs["model"].map(lambda model: model if isinstance(model, str) else "")
    return runs


def config_columns(runs):
    """The CONFIG_COLUMNS that ``runs`` has (a hand-made frame may leave out what it does not vary)."""
    return [column for column in CONFIG_COLUMNS if column in runs]


def _short_hashes(hashes):
    return sorted(hashes.map(lambda h: h[:12] if isinstance(h, str) and h else "unrecorded").unique())


def mixed_settings(runs):
    """One line per data set whose runs differ in a SETUP_COLUMNS field, in the data set's content or in a rule's
    definition; empty if none."""
    runs = _keyed(runs)
    lines = []
    for dataset, group in runs.groupby("dataset", sort=True):
        differing = []
        if "data_hash" in group:
            contents = _short_hashes(group["data_hash"])
            if len(contents) > 1:
                differing.append(f"its content in {len(contents)} versions ({', '.join(contents)})")
        for column in SETUP_COLUMNS:
            if column in group and group[column].nunique(dropna=False) > 1:
                values = sorted(group[column].astype(str).unique())
                differing.append(f"{column} {', '.join(values)}")
        if "rule_hash" in group:
            for rule, of_rule in group.groupby("rule", sort=True):
                definitions = _short_hashes(of_rule["rule_hash"])
                if len(definitions) > 1:
                    differing.append(f"rule {rule} in {len(definitions)} definitions ({', '.join(definitions)})")
        if differing:
            lines.append(f"{dataset}: the store mixes runs of different settings ({'; '.join(differing)}); they are "
                         "summarised apart, but rules trained with different settings are compared side by side")
    return lines


def _run_provenances(runs, sweeps):
    """Each run's provenance: its sweep's (the ``sweep_id``'s row), with what the run's own columns say in place of
    the sweep's (a Dask worker may be another machine than the sweep's client); runs of neither are left out."""
    import pandas as pd

    from fastgd.sweep.store import RUN_PROVENANCE

    made_by = sweeps.set_index("sweep_id")["provenance"]
    own = {column: key for column, key in RUN_PROVENANCE.items() if column in runs}
    columns = [runs[column].tolist() for column in own]
    provenances = {}
    for position, (index, provenance) in enumerate(runs["sweep_id"].map(made_by).items()):
        facts = dict(provenance) if isinstance(provenance, dict) else {}
        for key, values in zip(own.values(), columns):
            value = values[position]
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # a count from a column pandas read as floats (some rows empty)
            if value is not None and value == value:  # NaN: not recorded
                facts[key] = value
        if facts:
            provenances[index] = facts
    return pd.Series(provenances, dtype=object)


def mixed_provenance(runs, sweeps):
    """Lines saying which commits (or fastgd versions) and which machines made the runs, where there are several.

    ``sweeps``: the store's sweeps (``Store.sweeps_frame``), whose provenance each run's ``sweep_id`` names;
    a run's own provenance columns (``Store.runs_frame``), where it has them, are taken before its sweep's.
    """
    provenances = _run_provenances(runs, sweeps)
    lines = []
    for what, key in (("commits", lambda p: p.get("git_commit") and p["git_commit"][:10] or
                       f"fastgd {p.get('fastgd', '?')} (no commit recorded)"),
                      ("machines", lambda p: f"{p.get('cpu', '?')} × {p.get('cpu_count', '?')} on "
                                             f"{p.get('host', '?')}")):
        counts = provenances.map(key).value_counts()
        if len(counts) > 1:
            made = "; ".join(f"{name}: {count} runs" for name, count in sorted(counts.items()))
            lines.append(f"the store mixes runs made by {len(counts)} {what} ({made}): timings and results may not "
                         "be comparable across them")
    return lines


def summarize(runs):
    """One row per configuration: ``<measure>_mean``, ``<measure>_std`` over seeds, shares and counts."""
    runs = _keyed(runs[runs["status"] != "failed"])
    grouped = runs.groupby(config_columns(runs), sort=True, dropna=False)
    summary = grouped[_MEASURES].agg(["mean", "std"])
    summary.columns = [f"{measure}_{statistic}" for measure, statistic in summary.columns]
    summary["n_seeds"] = grouped.size()
    summary["reached_share"] = grouped["epochs_to_target"].apply(lambda s: s.notna().mean())
    summary["diverged_share"] = grouped["status"].apply(lambda s: (s == "diverged").mean())
    return summary.reset_index()


def best_configurations(summary, measure="epochs_to_target"):
    """Per (data set, rule) of a :func:`summarize` frame, the summary row of its best configuration.

    Among configurations whose every seed reached the target, the lowest mean ``measure``, then the
    lowest mean seconds to target; where none did, the lowest mean final loss (the first row where
    no run finished). Epochs first by default: they do not move with the machine's load, so two
    sweeps with the same results choose the same configuration.
    """
    rows = []
    for _, group in summary.groupby(["dataset", "rule"], sort=True):
        reached = group[group["reached_share"] == 1.0]
        if len(reached):
            order = reached.sort_values([f"{measure}_mean", "seconds_to_target_mean"], kind="stable")
        else:
            order = group.sort_values("final_loss_mean", kind="stable", na_position="last")
        rows.append(order.iloc[0])
    return rows


def best_runs(runs):
    """Per (data set, rule): the best configuration's summary row (:func:`best_configurations`)."""
    summary = summarize(runs)
    rows = best_configurations(summary)
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
