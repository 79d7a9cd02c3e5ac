"""The report's suboptimality figure (benchopt's plot): f − f* against epochs on a log axis, where f* is known.

A data set's f* is what its stored configuration says: ``f_star`` in its ``[datasets.NAME]`` table
(``sweeps.config`` JSON, ``config["datasets"][NAME]["f_star"]``; :func:`fastgd.optimum.optimal_training_loss`
computes it for a convex problem). f is the full training objective after each epoch, the store's
``curves.objective`` (runs whose spec has ``track_objective``), not the epoch's mean of batch losses: those are
taken before each update and can dip below f*. Drawn like the convergence figure
(:func:`fastgd.report.figures.draw_convergence`): each rule's best configuration among the runs that recorded the
objective, the median over its seeds with a band spanning them; a rule with no such run on the data set is left
out and named in the section's note.
"""

import math

import numpy as np

from fastgd.report.figures import _best_curves, _plotting, _rule_legend, _save, _seaborn_styles, palette, rules_in

__all__ = ["known_optima", "suboptimality_curves", "draw_suboptimality", "add_suboptimality"]

# f − f* at or below this (relative to max(1, |f*|)) is drawn at it: a log axis has no zero, and float64 objectives
# agree with f* to about this
FLOOR = 1e-15


def known_optima(sweeps):
    """{data set: f*} from the stored configurations (``sweeps``: :meth:`Store.sweeps_frame`, its ``config`` parsed).

    The lowest where sweeps disagree (f − f* then never reads below zero); a value that is not a finite number is
    ignored.
    """
    optima = {}
    for config in sweeps["config"] if "config" in sweeps else ():
        tables = config.get("datasets") if isinstance(config, dict) else None
        if not isinstance(tables, dict):
            continue  # a list of names: no tables, no f*
        for name, table in tables.items():
            value = table.get("f_star") if isinstance(table, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                optima[name] = min(float(value), optima.get(name, math.inf))
    return optima


def suboptimality_curves(runs, curves, optima):
    """(curves drawn, {data set: [rules left out]}): for each data set of ``optima``, each rule's best configuration
    (:func:`fastgd.sweep.metrics.best_runs`) among its runs that recorded the objective, every seed's
    ``suboptimality`` (f − f*, floored at :data:`FLOOR` · max(1, |f*|)) per epoch."""
    import pandas as pd

    left_out = {}
    frames = []
    if "objective" not in curves:
        curves = curves.assign(objective=np.nan)
    tracked_ids = set(curves.loc[curves["objective"].notna(), "run_id"])
    for name, f_star in sorted(optima.items()):
        on_set = runs[runs["dataset"] == name]
        if on_set.empty:
            continue
        tracked = on_set[on_set["run_id"].isin(tracked_ids)]
        left_out[name] = [rule for rule in rules_in(on_set["rule"]) if rule not in set(tracked["rule"])]
        if tracked.empty:
            continue
        data = _best_curves(tracked, curves[curves["run_id"].isin(set(tracked["run_id"]))])
        data = data[data["objective"].notna()].copy()
        data["f_star"] = f_star
        data["suboptimality"] = np.maximum(data["objective"] - f_star, FLOOR * max(1.0, abs(f_star)))
        frames.append(data)
    columns = ["dataset", "rule", "run_id", "seed", "epoch", "objective", "f_star", "suboptimality"]
    drawn = pd.concat(frames)[columns] if frames else pd.DataFrame(columns=columns)
    return drawn.sort_values(["dataset", "rule", "seed", "epoch"]).reset_index(drop=True), left_out


def draw_suboptimality(data, out_dir):
    """The figure of :func:`suboptimality_curves`' curves: one panel per data set, f − f* on a log axis against
    epochs, one line per rule (the median over seeds), the band spanning the seeds."""
    plt, sns = _plotting()
    names = sorted(data["dataset"].unique())
    n_columns = min(2, len(names))
    n_rows = math.ceil((len(names) + 1) / n_columns) if len(names) > 1 else 1
    fig, axes = plt.subplots(n_rows, n_columns + (1 if len(names) == 1 else 0),
                             figsize=(6 * (n_columns + (1 if len(names) == 1 else 0)), 3.4 * n_rows), squeeze=False)
    rules = rules_in(data["rule"])
    for ax, name in zip(axes.flat, names):
        subset = data[data["dataset"] == name]
        n_epochs = int(subset["epoch"].max())
        sns.lineplot(subset, x="epoch", y="suboptimality", **_seaborn_styles(rules), estimator="median",
                     errorbar=("pi", 100), ax=ax, legend=False, linewidth=1.2, markersize=5,
                     markevery=max(1, n_epochs // 8))
        ax.set_yscale("log")
        ax.set_title(f"{name}: f − f* (f* = {subset['f_star'].iloc[0]:.10g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training objective − f*")
    _rule_legend(fig, list(axes.flat), palette(rules), rules, n_used=len(names))
    return _save(fig, out_dir, "suboptimality", data, "Suboptimality",
                 "The full training objective (every training row, penalty included) after each epoch minus its "
                 "minimum f*, for each rule's best configuration among the runs that recorded it; the line is the "
                 f"median over the seeds, the band spans them. Gaps below {FLOOR:g}·max(1, |f*|) are drawn at it.",
                 "Lower is better, on a log scale: a line that falls steadily converges linearly; one that flattens "
                 "has stalled at that distance from the optimum.")


def add_suboptimality(page, runs, curves, sweeps):
    """Add the suboptimality section to ``page`` (:class:`fastgd.report.sections.Page`) where a data set of
    ``runs`` has a known f* (:func:`known_optima`); nothing where none has. Rules left out (no run recorded the
    objective) are named in the section's note; where no rule recorded it, the section says how to."""
    optima = {name: value for name, value in known_optima(sweeps).items() if name in set(runs["dataset"])}
    if not optima:
        return
    data, left_out = suboptimality_curves(runs, curves, optima)
    lines = [f"{name}: {', '.join(rules)} left out (no run recorded the training objective)"
             for name, rules in left_out.items() if rules and name in set(data["dataset"])]
    missing = [name for name in optima if name not in set(data["dataset"])]
    if missing:
        lines.append(f"{', '.join(missing)}: f* is known but no run recorded the training objective "
                     "(a run records it when its spec has track_objective)")
    note = "; ".join(lines) + "." if lines else None
    if data.empty:
        page.add_text("suboptimality", "Suboptimality", note=note)
        return
    page.draw(draw_suboptimality, data, page.out_dir, note=note)
