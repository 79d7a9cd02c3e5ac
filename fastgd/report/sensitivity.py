"""How much each rule's result depends on its learning rate, per data set: the points, a measure of width, the
section.

* :func:`sensitivity_points`: the (learning rate, loss) points of each rule on each data set: under the tuning
  protocol its trials (phase "tune": validation loss), else the grid's learning rates (at each, the lowest mean
  final training loss over seeds among the configurations run there); diverged and failed ones kept and marked;
* :func:`learning_rate_ranges`: per data set and rule, the best point and the span in decades of learning rates
  whose loss is within :data:`WITHIN` of the best, bounded from below by the good points and from above by the
  nearest points that are not good (the trials show no more);
* :func:`draw_sensitivity`: the report's section (a figure of the tuning trials, a table of the ranges, the text
  defining them).
"""

import math

import numpy as np

__all__ = ["WITHIN", "PANEL_COLUMNS", "sensitivity_points", "learning_rate_ranges", "ranges_table",
           "draw_sensitivity"]

# a point is good when its loss is at most (1 + WITHIN) times the best of its rule on its data set
WITHIN = 0.2
# what is tuned (or gridded) apart: each rule's points are compared within one of these
PANEL_COLUMNS = ["dataset", "budget", "batch_size", "schedule"]


def _panel_frame(frame):
    columns = [column for column in PANEL_COLUMNS if column in frame]
    panel = frame[columns].copy()
    for column in columns:
        panel[column] = panel[column].map(lambda value: "–" if value is None or value != value else str(value))
    for column in set(PANEL_COLUMNS) - set(columns):
        panel[column] = "–"
    return panel[PANEL_COLUMNS]


def sensitivity_points(compared, tune):
    """``(points, source)``: one row per point (PANEL_COLUMNS as text, ``rule``, ``learning_rate``, ``loss``,
    ``status``: "ok", "diverged" (no finite loss) or "failed"), and "tuning" or "grid".

    ``tune``: the tuning trials (phase "tune"), whose ``validation_loss`` is drawn where there are any; else
    ``compared`` (the runs compared, failed included): at each learning rate of a (data set, rule), the lowest
    mean final training loss over seeds among the configurations (other hyperparameters, epochs) run there, a
    configuration with a diverged seed counted diverged; "diverged" where every one is, "failed" where every run
    failed.
    """
    import pandas as pd

    if len(tune):
        points = _panel_frame(tune).assign(rule=tune["rule"].to_numpy(),
                                           learning_rate=tune["learning_rate"].astype(float).to_numpy())
        loss = tune["validation_loss"].astype(float).to_numpy()
        status = np.where(tune["status"] == "failed", "failed",
                          np.where((tune["status"] == "ok") & np.isfinite(loss), "ok", "diverged"))
        return points.assign(loss=np.where(status == "ok", loss, np.nan), status=status).reset_index(drop=True), \
            "tuning"
    from fastgd.sweep.metrics import summarize

    records = []
    keys = PANEL_COLUMNS + ["rule", "learning_rate"]
    finished = compared[compared["status"] != "failed"]
    summary = summarize(finished) if len(finished) else finished.iloc[0:0]
    if len(summary):
        summary = pd.concat([_panel_frame(summary), summary[["rule", "learning_rate", "final_loss_mean",
                                                             "diverged_share"]]], axis=1)
        for key, group in summary.groupby(keys, sort=True):
            clean = group[(group["diverged_share"] == 0) & group["final_loss_mean"].notna()]
            loss = float(clean["final_loss_mean"].min()) if len(clean) else math.nan
            records.append((*key, loss, "ok" if len(clean) else "diverged"))
    failed = pd.concat([_panel_frame(compared), compared[["rule", "learning_rate"]]], axis=1)
    failed = failed[compared["status"] == "failed"].drop_duplicates()
    seen = {tuple(record[:len(keys)]) for record in records}
    records += [(*key, math.nan, "failed") for key in failed.itertuples(index=False, name=None) if key not in seen]
    return pd.DataFrame(records, columns=[*keys, "loss", "status"]), "grid"


def _decades(high, low):
    return math.log10(high / low)


def learning_rate_ranges(points, within=WITHIN):
    """Per panel (PANEL_COLUMNS) and rule of :func:`sensitivity_points`' frame: ``points`` (failed ones not
    counted), ``diverged``, ``lowest`` and ``highest`` learning rate tried, ``best_learning_rate``, ``best_loss``,
    ``good``: how many points have a loss at most (1 + ``within``) × the best (diverged ones never), and the span of
    the good range in decades (log10 of a ratio of learning rates): ``at_least``, from the smallest to the largest
    learning rate of the unbroken run of good points around the best in order of learning rate; ``at_most``, between
    the nearest points on either side of that run that are not good (inf where the run reaches the lowest or highest
    learning rate tried: ``open_below``, ``open_above``); ``spacing``: the median gap in decades between neighbouring
    learning rates tried. A panel where no point has a finite loss has NaN for all of these."""
    import pandas as pd

    records = []
    for key, group in points[points["status"] != "failed"].groupby([*PANEL_COLUMNS, "rule"], sort=True):
        group = group.sort_values("learning_rate", kind="stable")
        rates = group["learning_rate"].to_numpy(dtype=float)
        losses = group["loss"].to_numpy(dtype=float)
        finite = (group["status"] == "ok").to_numpy() & np.isfinite(losses)
        record = dict(zip([*PANEL_COLUMNS, "rule"], key), points=len(group),
                      diverged=int((group["status"] == "diverged").sum()), lowest=float(rates[0]),
                      highest=float(rates[-1]),
                      spacing=float(np.median(np.diff(np.log10(rates)))) if len(rates) > 1 else math.nan)
        if not finite.any():
            records.append(dict(record, best_learning_rate=math.nan, best_loss=math.nan, good=0, at_least=math.nan,
                                at_most=math.nan, open_below=False, open_above=False))
            continue
        best = int(np.flatnonzero(finite)[np.argmin(losses[finite])])
        good = finite & (losses <= losses[best] * (1 + within))
        first = last = best
        while first > 0 and good[first - 1]:
            first -= 1
        while last < len(good) - 1 and good[last + 1]:
            last += 1
        open_below, open_above = first == 0, last == len(good) - 1
        at_most = math.inf if open_below or open_above else _decades(rates[last + 1], rates[first - 1])
        records.append(dict(record, best_learning_rate=float(rates[best]), best_loss=float(losses[best]),
                            good=int(good.sum()), at_least=_decades(rates[last], rates[first]), at_most=at_most,
                            open_below=open_below, open_above=open_above))
    columns = [*PANEL_COLUMNS, "rule", "points", "diverged", "lowest", "highest", "spacing", "best_learning_rate",
               "best_loss", "good", "at_least", "at_most", "open_below", "open_above"]
    return pd.DataFrame(records, columns=columns)


def panel_labels(frame):
    """Each row's panel in words: its data set, with its budget, batch size and schedule where the data set has
    several."""
    words = {"budget": "{} budget", "batch_size": "batch {}", "schedule": "{}"}
    varying = [column for column in words if (frame.groupby("dataset")[column].nunique() > 1).any()]

    def label(row):
        parts = [words[column].format(row[column]) for column in varying]
        return row["dataset"] + (f" ({', '.join(parts)})" if parts else "")

    return frame.apply(label, axis=1) if len(frame) else frame["dataset"]


def _open(row):
    sides = [side for side, is_open in (("below", row.open_below), ("above", row.open_above)) if is_open]
    return f"open {' and '.join(sides)}"


def ranges_table(ranges, source):
    """:func:`learning_rate_ranges` as the page's table, one row per panel and rule (figure order)."""
    from fastgd.report.figures import rule_order

    order = {rule: index for index, rule in enumerate(rule_order(ranges["rule"]))}
    labelled = ranges.assign(panel=panel_labels(ranges), position=ranges["rule"].map(order))
    what = "validation loss" if source == "tuning" else "final training loss"
    rows = []
    for row in labelled.sort_values(["panel", "position"], kind="stable").itertuples():
        tried = f"{row.lowest:.2g} to {row.highest:.2g}" if row.points > 1 else f"{row.lowest:.2g}"
        if not math.isfinite(row.best_loss):
            rows.append([row.panel, row.rule, f"{row.points} ({row.diverged})", tried, "– (none finite)", "0", "–",
                         "–"])
            continue
        at_most = _open(row) if math.isinf(row.at_most) else f"{row.at_most:.2f}"
        rows.append([row.panel, row.rule, f"{row.points} ({row.diverged})", tried,
                     f"{row.best_learning_rate:.3g} ({row.best_loss:.4g})", f"{row.good} of {row.points}",
                     f"{row.at_least:.2f}", at_most])
    return {"columns": ["data set", "rule", "points (diverged)", "learning rates tried",
                        f"best learning rate ({what})", f"within {WITHIN:.0%} of the best",
                        "good range, decades: at least", "at most"], "rows": rows, "text": 2}


def _note(ranges, source):
    from fastgd.report.text import plural

    counts = sorted(set(ranges["points"]))
    spacing = ranges["spacing"].dropna()
    if source == "tuning":
        text = ("From the tuning trials (phase 'tune'): each trial's learning rate and its validation loss, the "
                "figure above; a diverged trial (no finite loss) is drawn × at the top and is never good. ")
    else:
        text = ("From the grid's runs, the figure Learning-rate sensitivity: at each learning rate, the lowest mean "
                "final training loss over seeds among the configurations run there (a configuration with a "
                "diverged seed counts as diverged, and is never good). ")
    text += (f"A point is good when its loss is within {WITHIN:.0%} of the rule's best on that data set (at most "
             f"{1 + WITHIN:g} × the best). Good range, at least: the span in decades (log10 of the ratio of learning "
             "rates) from the smallest to the largest learning rate of the unbroken run of good points around the "
             "best, in order of learning rate: the points show every one of them good. At most: the span between the "
             "nearest points on either side of that run that are not good; 'open' where the run reaches the lowest "
             "or highest learning rate tried (the best may lie beyond what was searched). ")
    points = " or ".join(map(str, counts[:3])) + (" …" if len(counts) > 3 else "")
    budgets = sorted(set(ranges["budget"]) - {"–"}) if source == "tuning" else []
    text += (f"Each rule has {points} {'point' if counts == [1] else 'points'} on a data set here"
             + (f" ({' or '.join(budgets)} budget{'s' if len(budgets) > 1 else ''})" if budgets else ""))
    if len(spacing):
        text += (f", neighbouring learning rates about {float(spacing.median()):.2g} decades apart: neither bound is "
                 "finer than that")
    text += "."
    if source == "tuning":
        text += (" Each trial also draws the rule's other hyperparameters (momenta, ε, …) from its search space, so "
                 "a trial's loss is not its learning rate's alone: read the ranges as what these trials show, not as "
                 "the rule's curve.")
    none = ranges[~np.isfinite(ranges["best_loss"].astype(float))]
    if len(none):
        names = ", ".join(f"{row.rule} on {row.dataset}" for row in none.itertuples())
        text += f" No finite loss at any learning rate tried: {plural(len(none), 'rule')} ({names})."
    return text


def draw_sensitivity(page, compared, tune):
    """The report's section on learning-rate sensitivity (``compared``: the runs compared, failed included;
    ``tune``: the tuning trials): under tuning, a figure of each rule's trials' validation loss against the learning
    rate; always the table of :func:`learning_rate_ranges` with the text defining it."""
    from fastgd.report import figures

    points, source = sensitivity_points(compared, tune)
    if points.empty:
        return
    ranges = learning_rate_ranges(points)
    note, table = _note(ranges, source), ranges_table(ranges, source)
    if source == "tuning":
        page.say("figure: learning rates of the tuning trials")
        page.draw(figures.draw_learning_rate_trials, points.assign(panel=panel_labels(points)), page.out_dir,
                  note=note, table=table)
    else:
        page.add_text("learning_rate_ranges", "Learning-rate ranges", note=note, table=table)
