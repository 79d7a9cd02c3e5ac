"""The report's figures, drawn with seaborn. The only module of fastgd that imports plotting.

Each ``draw_*`` function takes its data, writes ``<stem>.png``, ``<stem>.svg``
and the data behind it as ``<stem>.csv`` into ``out_dir``, and returns a
:class:`Figure` describing them. Every rule keeps one look (colour, marker, dashes: :func:`rule_styles`) in
every figure.
"""

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

__all__ = ["Figure", "RuleStyle", "rule_styles", "palette", "rule_order", "drawing_pool", "drawing_workers",
           "draw_convergence",
           "draw_learning_rate_sensitivity", "draw_learning_rate_trials", "draw_time_to_target",
           "draw_runtime_overhead",
           "draw_performance_profile", "draw_throughput", "draw_trajectories", "draw_parameter_paths",
           "draw_landscapes", "draw_history", "draw_intervals", "draw_tuning",
           "tuning_progress"]

@dataclass
class Figure:
    """A drawn figure: its files' stem, its title, a caption (what it shows) and ``how_to_read`` (one line: what
    to look at, which way is better)."""

    stem: str
    title: str
    caption: str
    how_to_read: str

    @property
    def png(self):
        """The PNG's file name, beside the page."""
        return f"{self.stem}.png"

    @property
    def svg(self):
        """The SVG's file name, beside the page."""
        return f"{self.stem}.svg"

    @property
    def csv(self):
        """The file name of the CSV of the data drawn, beside the page."""
        return f"{self.stem}.csv"


def _plotting():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    import seaborn as sns

    # a title set at the top of its axes: matplotlib would otherwise place it anew on every draw, laying out
    # every tick label of the axes to see whether one reaches up to it (none does here: the x tick labels are below)
    sns.set_theme(context="notebook", style="whitegrid", rc={"axes.titley": 1.0})
    return plt, sns


# the rules known to the process that makes the report, in order, as its drawing pool's workers are given them
# (:func:`drawing_pool`): a worker has not loaded the user's plugins, and a rule's look is its place in this order
_KNOWN_RULES = None


def rule_order(names=()):
    """The order of rules in every figure: the registry's (built-ins, then users' rules), the whole-batch solvers
    (:mod:`fastgd.sweep.solvers`), then rules known only from the data (a plugin not loaded here), by name."""
    if _KNOWN_RULES is not None:
        known = list(_KNOWN_RULES)
    else:
        from fastgd import optim
        from fastgd.sweep.solvers import SOLVERS

        known = list(optim.OPTIMIZERS) + list(SOLVERS)
    return known + sorted(set(names) - set(known))


def _start_drawing(known_rules):
    global _KNOWN_RULES
    _KNOWN_RULES = tuple(known_rules)
    _plotting()  # matplotlib and seaborn imported while the report computes its first figure's data


def drawing_workers(idle=None):
    """How many processes should draw a report's figures here and now: two where a core is idle beside this
    process's (``idle``: :func:`fastgd.machine.idle_cores`), else one. On the 2-core AMD EPYC, quiet, a pool of two
    drew the lecture report in 0.64× the time of one process (22.2 against 34.5 s); at load 2–3 it took 1.17×
    (43.7 against 37.2 s), the workers waiting for cores (reports/report_speed.md)."""
    if idle is None:
        from fastgd.machine import idle_cores

        idle = idle_cores()
    return 2 if idle >= 1 else 1


@contextmanager
def drawing_pool(workers):
    """A pool of ``workers`` processes that draw figures (``pool.submit(draw_x, ...)``) while the report goes on,
    each drawing every rule in the look it has here (:func:`rule_styles`, with this process's plugins), or None for
    ``workers`` ≤ 1. The processes are spawned, not forked (a fork would copy Numba's threads' locks), so a script
    that makes a report this way keeps its work under ``if __name__ == "__main__":``."""
    if workers <= 1:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_drawing,
                               initargs=(rule_order(),))
    failed = True
    try:
        yield pool
        failed = False
    finally:  # after an error nothing more is drawn
        pool.shutdown(wait=True, cancel_futures=failed)


@dataclass(frozen=True)
class RuleStyle:
    """How one rule is drawn in every figure: a colour, a marker and a dash pattern (seaborn's: on, off, ...
    lengths; empty for a solid line)."""

    colour: tuple
    marker: str
    dashes: tuple

    @property
    def linestyle(self):
        """The dash pattern as matplotlib's ``linestyle``."""
        return (0, self.dashes) if self.dashes else "-"

    def line(self, n_points=None):
        """Keyword arguments for ``ax.plot`` or ``ax.step``: colour, dashes and the marker, on about eight of
        ``n_points`` points (every point where not given)."""
        markevery = max(1, n_points // 8) if n_points else None
        return dict(color=self.colour, linestyle=self.linestyle, marker=self.marker, markersize=5,
                    markevery=markevery)


# Markers and dashes carry a rule where colour cannot: for colour-blind readers and in grey print. Their counts
# are coprime with each other and with the ten colours, so that two rules share colour, marker and dashes only
# 180 rules apart, and marker and dashes together only 36 apart (colour may then be all that is left).
RULE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h")
RULE_DASHES = ((), (5, 2), (1, 1.5), (6, 2, 1, 2))


def rule_styles(names=()):
    """Each rule's :class:`RuleStyle`, the same in every figure, for any number of rules (in :func:`rule_order`):
    seaborn's colour-blind palette, each colour with its own marker and dash pattern. Defined here only: every
    figure takes its rules' look from this function."""
    import seaborn as sns

    colours = sns.color_palette("colorblind", 10)
    return {rule: RuleStyle(tuple(colours[index % len(colours)]), RULE_MARKERS[index % len(RULE_MARKERS)],
                            RULE_DASHES[index % len(RULE_DASHES)])
            for index, rule in enumerate(rule_order(names))}


def palette(names=()):
    """Each rule's colour (see :func:`rule_styles`, which gives its marker and dashes too)."""
    return {rule: style.colour for rule, style in rule_styles(names).items()}


def _seaborn_styles(rules):
    """``hue``, ``style`` keyword arguments for seaborn's lineplot drawing ``rules`` as :func:`rule_styles` does."""
    styles = rule_styles(rules)
    return dict(hue="rule", hue_order=rules, palette={rule: styles[rule].colour for rule in rules},
                style="rule", style_order=rules, dashes={rule: styles[rule].dashes for rule in rules},
                markers={rule: styles[rule].marker for rule in rules})


def rules_in(names):
    """The distinct rules of ``names`` (e.g. a frame's ``rule`` column) in figure order."""
    present = set(names)
    return [rule for rule in rule_order(present) if rule in present]


def _rule_legend(fig, axes, colours, rules, n_used=None):
    """One legend for the figure: in a spare panel if there is one, else right of the panels.

    ``n_used``: the panels drawn on, the first of ``axes``; the others are hidden first, and the
    figure laid out.
    """
    from matplotlib.lines import Line2D

    if n_used is not None:
        for ax in axes[n_used:]:
            ax.set_visible(False)
        fig.tight_layout()
    styles = rule_styles(rules)
    handles = [Line2D([], [], label=rule, linewidth=1.6, **dict(styles[rule].line(), color=colours[rule]))
               for rule in rules]
    spare = [ax for ax in axes if not ax.get_visible()]
    if spare:
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles=handles, loc="center", ncol=2, title="rule", frameon=False)
    else:
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="rule")


IMPLEMENTATION_COLOURS = {"fastgd": "#d62728", "numpy": "#1f77b4", "sklearn": "#ff7f0e", "torch": "#2ca02c",
                          "jax": "#9467bd"}


def _save(fig, out_dir, stem, data, title, caption, how_to_read):
    import matplotlib
    import matplotlib.pyplot as plt

    # The tight box, laid out once for both files: bbox_inches="tight" lays the figure out twice more in every
    # savefig (a draw that renders nothing, then the artists' extents) before drawing it, and text layout is most
    # of a report's drawing time. The box is in inches, so the PNG's dpi does not change it.
    fig.draw_without_rendering()
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(matplotlib.rcParams["savefig.pad_inches"])
    fig.savefig(out_dir / f"{stem}.png", dpi=110, bbox_inches=box)
    fig.savefig(out_dir / f"{stem}.svg", bbox_inches=box)
    plt.close(fig)
    data.to_csv(out_dir / f"{stem}.csv", index=False)
    return Figure(stem, title, caption, how_to_read)


def _best_curves(runs, curves):
    """Curves of each (data set, rule)'s best configuration, every seed, with the seeds' mean seconds per epoch."""
    from fastgd.sweep.metrics import _keyed, best_runs, config_columns

    # every field that defines a run: a store of mixed settings does not pool unlike runs as seeds
    columns = config_columns(runs)
    best = best_runs(runs)[columns]
    chosen = _keyed(runs).merge(best, on=columns)[["run_id", "dataset", "rule", "learning_rate"]]
    data = curves.drop(columns=["dataset", "rule", "learning_rate"]).merge(chosen, on="run_id")
    data["mean_seconds"] = data.groupby(["dataset", "rule", "epoch"])["seconds"].transform("mean")
    return data


def _seconds_axis(axis):
    """Few ticks, in engineering units ("500 µs", "1.5 ms"): plain seconds of a fast epoch ("0.00125") ran into one
    another."""
    from matplotlib.ticker import EngFormatter, MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=5, min_n_ticks=2))
    axis.set_major_formatter(EngFormatter(unit="s", places=None, sep=" "))


def draw_convergence(runs, curves, out_dir):
    """Training loss of each rule's best configuration (:func:`fastgd.sweep.metrics.best_runs`) against epochs and
    against seconds, one row of panels per data set, the band over the seeds; ``curves``: the store's curves frame
    of ``runs`` (the finished runs compared)."""
    plt, sns = _plotting()
    data = _best_curves(runs, curves)
    names = sorted(data["dataset"].unique())
    fig, axes = plt.subplots(len(names), 2, figsize=(12, 3.2 * len(names)), squeeze=False)
    rules = rules_in(data["rule"])
    colours = palette(rules)
    for row, name in enumerate(names):
        subset = data[data["dataset"] == name]
        for column, x in enumerate(["epoch", "mean_seconds"]):
            ax = axes[row, column]
            n_epochs = int(subset["epoch"].max()) if len(subset) else 1
            sns.lineplot(subset, x=x, y="loss", **_seaborn_styles(rules), errorbar=("pi", 100), ax=ax, legend=False,
                         linewidth=1.2, markersize=5, markevery=max(1, n_epochs // 8))
            ax.set_yscale("log")
            ax.set_title(f"{name}: loss against {'epoch' if column == 0 else 'seconds'}")
            ax.set_xlabel("epoch" if column == 0 else "time (mean over seeds)")
            if column == 1:
                _seconds_axis(ax.xaxis)
            ax.set_ylabel("training loss")
    fig.tight_layout()
    _rule_legend(fig, list(axes.flat), colours, rules)
    return _save(fig, out_dir, "convergence", data, "Convergence",
                 "Training loss of each rule in its best configuration (fewest epochs to the target, then fewest "
                 "seconds), against epochs "
                 "and against seconds; the band spans the seeds.",
                 "Lower is better: the line that falls furthest left reaches a low loss in the fewest epochs (left) or "
                 "seconds (right); a wide band means the seeds disagree.")


def draw_learning_rate_sensitivity(runs, out_dir):
    """Final training loss (mean over seeds) against learning rate, one panel per data set and a line per rule
    (:func:`fastgd.sweep.metrics.summarize`), diverged settings marked ×, losses above the panel's ceiling ▲."""
    plt, sns = _plotting()
    from fastgd.sweep.metrics import summarize

    summary = summarize(runs)
    names = sorted(summary["dataset"].unique())
    columns = min(3, len(names)) or 1
    rows = int(np.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False)
    rules = rules_in(summary["rule"])
    colours = palette(rules)
    for index, name in enumerate(names):
        ax = axes.flat[index]
        subset = summary[summary["dataset"] == name]
        finite = subset[subset["final_loss_mean"].notna()].copy()
        # losses that grew without overflowing would squash the panel: draw them at a ceiling, marked ▲
        ceiling = max(10.0, 10.0 * float(finite["final_loss_mean"].median())) if len(finite) else 10.0
        above = finite[finite["final_loss_mean"] > ceiling]
        finite["final_loss_mean"] = finite["final_loss_mean"].clip(upper=ceiling)
        sns.lineplot(finite, x="learning_rate", y="final_loss_mean", **_seaborn_styles(rules), markersize=5,
                     ax=ax, legend=False, linewidth=1.0, errorbar=None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        top = ceiling * 1.6
        ax.set_ylim(top=top)
        for marker, rows in (("^", above), ("x", subset[subset["diverged_share"] > 0])):
            for rule, group in rows.groupby("rule"):
                height = ceiling if marker == "^" else top
                ax.scatter(group["learning_rate"], np.full(len(group), height), marker=marker, color=colours[rule],
                           s=40, clip_on=False, zorder=5)
        ax.set_title(name)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("final training loss (mean over seeds)")
    _rule_legend(fig, list(axes.flat), colours, rules, n_used=len(names))
    return _save(fig, out_dir, "learning_rate_sensitivity", summary, "Learning-rate sensitivity",
                 "Final training loss against learning rate: too small (slow), good, too large, and diverging "
                 "(× at the top of the panel: at least one seed diverged, its loss NaN, infinite or 10⁴ times its "
                 "first epoch's; ▲: a finite loss "
                 "above the panel).",
                 "One line per rule: a wide, low valley means the rule forgives a poorly chosen learning rate, a "
                 "narrow one that it must be tuned.")


def draw_learning_rate_trials(points, out_dir):
    """Each rule's tuning trials, validation loss against learning rate on log axes, one panel per ``panel`` of
    ``points`` (:func:`fastgd.report.sensitivity.sensitivity_points`' frame with each row's panel in words): a line
    through the finite trials in order of learning rate, × at the top for a diverged trial, ▲ for a finite loss
    above the panel's ceiling."""
    plt, sns = _plotting()
    names = sorted(points["panel"].unique())
    columns = min(3, len(names))
    rows = int(np.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False)
    rules = rules_in(points["rule"])
    colours, styles = palette(rules), rule_styles(rules)
    for ax, name in zip(axes.flat, names):
        panel = points[(points["panel"] == name) & (points["status"] != "failed")]
        finite = panel[panel["status"] == "ok"]
        losses = finite["loss"].astype(float)
        # a loss that grew without overflowing would squash the panel: drawn at a ceiling, marked ▲
        ceiling = 10.0 * float(losses.median()) if len(losses) and losses.median() > 0 else 10.0
        top = min(ceiling, float(losses.max()) if len(losses) else ceiling) * 1.6
        for rule in rules:
            trials = finite[finite["rule"] == rule].sort_values("learning_rate")
            if len(trials):
                ax.plot(trials["learning_rate"], trials["loss"].clip(upper=ceiling), linewidth=1.2,
                        **styles[rule].line())
            above = trials[trials["loss"] > ceiling]
            diverged = panel[(panel["rule"] == rule) & (panel["status"] == "diverged")]
            for marker, height, chosen in (("^", ceiling, above), ("x", top, diverged)):
                if len(chosen):
                    ax.scatter(chosen["learning_rate"], np.full(len(chosen), height), marker=marker,
                               color=colours[rule], s=40, clip_on=False, zorder=5)
        ax.set_xscale("log")
        if len(losses) and (losses > 0).all():
            ax.set_yscale("log")
        ax.set_ylim(top=top)
        ax.set_title(name)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("validation loss of the trial")
    _rule_legend(fig, list(axes.flat), colours, rules, n_used=len(names))
    return _save(fig, out_dir, "learning_rate_trials", points, "Learning rates of the tuning trials",
                 "Each tuning trial's validation loss against its learning rate (each trial also draws the rule's "
                 "other hyperparameters); × at the top of a panel: the trial diverged; ▲: a finite loss above the "
                 "panel. The table below measures each rule's range of good learning rates.",
                 "One line per rule: a wide, low valley means many learning rates work, a narrow dip that the rule "
                 "must be tuned; × marks the learning rates where it diverged.")


def draw_time_to_target(runs, out_dir):
    """A heat map of milliseconds to the target loss, rule × data set, of each rule's best configuration (– where it
    never reached the target on every seed); its data is the best configurations' table."""
    plt, sns = _plotting()
    from fastgd.sweep.metrics import best_runs

    best = best_runs(runs)
    table = best.pivot(index="rule", columns="dataset", values="seconds_to_target_mean") * 1e3
    table = table.where(best.pivot(index="rule", columns="dataset", values="reached"))
    table = table.reindex(rules_in(table.index))
    fig, ax = plt.subplots(figsize=(1.6 * max(3, table.shape[1]) + 2, 0.42 * table.shape[0] + 1.5))
    reached = table.notna().to_numpy().any()
    # with nothing reached there is no range of colours to take from the data (seaborn's would be NaN): give one
    scale = {} if reached else dict(vmin=0.0, vmax=1.0, cbar=False)
    sns.heatmap(np.log10(table), annot=table.map(lambda v: "–" if np.isnan(v) else f"{v:.2g}"), fmt="",
                cmap="viridis_r", cbar_kws={"label": "log10 milliseconds"} if reached else None, ax=ax,
                linewidths=0.5, **scale)
    ax.set_title("milliseconds to the target loss (best configuration; – not reached)" if reached else
                 "no rule reached the target loss on any data set")
    ax.set_xlabel("")
    ax.set_ylabel("")
    fig.tight_layout()
    return _save(fig, out_dir, "time_to_target", best, "Time to target",
                 "Training time until the loss first falls to the data set's target, for each rule in its best "
                 "configuration (fewest epochs to the target), mean over seeds.",
                 "Read a row for one rule across the data sets, a column for the rules on one set: darker is "
                 "faster, – never reached the target.")


# the ticks a ratio axis may take: few enough to read, each labelled as a factor ("1.5×")
RATIO_TICKS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def _ratio_axis(ax, values):
    """A log x axis around ``values`` (ratios) and 1, ticked with those of :data:`RATIO_TICKS` in its range that lie
    apart, each labelled as a factor; no minor labels (they run into one another within a decade)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    finite = values[np.isfinite(values) & (values > 0)]
    low, high = min(1.0, float(finite.min())) / 1.15, max(1.0, float(finite.max())) * 1.15
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    # 1 first, then each tick at least a sixth of the axis's span (in log) from every one kept: labels never meet
    gap = math.log(high / low) / 6
    ticks = [1.0]
    for tick in sorted((tick for tick in RATIO_TICKS if low <= tick <= high and tick != 1.0),
                       key=lambda tick: abs(math.log(tick))):
        if all(abs(math.log(tick / kept)) >= gap for kept in ticks):
            ticks.append(tick)
    ticks.sort()
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda tick, _: f"{tick:g}×"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def draw_runtime_overhead(table, out_dir, reference="sgd"):
    """Each rule's seconds per epoch over ``reference``'s, one panel per setting (``table``: the frame of
    :func:`fastgd.report.overhead.overhead_table` with each row's setting in words, ``column``): the ratio with its
    interval on a log axis, 1 at the line, the same range in every panel. Settings without ``reference`` runs
    (seconds alone) are left to the section's table unless no setting has a ratio: then each shows seconds per epoch
    with the runs' quartiles. The CSV holds all of ``table``."""
    plt, sns = _plotting()
    with_ratio = table.groupby("column")["ratio"].transform(lambda ratios: ratios.notna().any()).astype(bool)
    names = sorted(table.loc[with_ratio if with_ratio.any() else table.index, "column"].unique())
    shown = table[table["column"].isin(names)]
    rules = rules_in(table["rule"])
    colours, styles = palette(rules), rule_styles(rules)
    columns = min(3, len(names))
    rows = int(np.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, (0.28 * len(rules) + 1.4) * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        panel = table[table["column"] == name].set_index("rule")
        present = [rule for rule in rules if rule in panel.index]
        as_ratio = bool(np.isfinite(panel["ratio"].astype(float)).any())
        value, low, high = ("ratio", "ratio_low", "ratio_high") if as_ratio else \
            ("seconds", "seconds_low", "seconds_high")
        for position, rule in enumerate(present):
            centre, below, above = (float(panel.loc[rule, key]) for key in (value, low, high))
            error = [[centre - below], [above - centre]] if np.isfinite(below) and np.isfinite(above) else None
            ax.errorbar([centre], [position], xerr=error, fmt=styles[rule].marker, color=colours[rule], capsize=3,
                        markersize=5)
        ax.set_yticks(range(len(present)))
        ax.set_yticklabels(present, fontsize="small")
        ax.set_ylim(len(present) - 0.5, -0.5)
        if as_ratio:
            ax.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
            _ratio_axis(ax, shown[["ratio", "ratio_low", "ratio_high"]].to_numpy(dtype=float))  # one range
            ax.set_xlabel(f"seconds per epoch / {reference}'s")
        else:
            _seconds_axis(ax.xaxis)
            ax.set_xlabel(f"seconds per epoch (no {reference} runs)")
        ax.set_title(name, fontsize="medium")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, out_dir, "runtime_overhead", table, "Runtime overhead per epoch",
                 f"Each rule's seconds per epoch over {reference}'s on the same data set, batch size and model "
                 "(DeepOBS's runtime overhead): the median over runs, the bar its 95% bootstrap interval; where "
                 f"{reference} has no runs, seconds per epoch with the runs' quartiles.",
                 f"Left of the dashed line (1×) a rule's epoch is faster than {reference}'s, right of it slower: "
                 "2 means an epoch takes twice as long; bars that straddle 1 cannot be told from it.")


def draw_performance_profile(runs, out_dir):
    """Dolan and Moré's performance profiles of seconds to target (:func:`fastgd.sweep.metrics.performance_profile`):
    for each rule, the share of data sets it reaches the target on within τ times the fastest rule's time."""
    plt, sns = _plotting()
    from fastgd.sweep.metrics import performance_profile

    profile = performance_profile(runs)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    rules = rules_in(profile["rule"])
    styles = rule_styles(rules)
    for rule in rules:
        group = profile[profile["rule"] == rule]
        if len(group):
            ax.step(group["tau"], group["share"], where="post", label=rule, linewidth=1.4, **styles[rule].line())
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ: within this factor of the fastest rule")
    ax.set_ylabel("share of data sets")
    ax.set_title("Performance profiles of time to target (Dolan & Moré)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="rule")
    fig.tight_layout()
    return _save(fig, out_dir, "performance_profile", profile, "Performance profiles",
                 "For each rule, the share of data sets on which it reaches the target within τ times the time of "
                 "the fastest rule there; higher and further left is better. The table under it gives AlgoPerf's "
                 "score, this profile integrated up to τ = 4.",
                 "The line that climbs to 1 soonest (top left) is most often fastest or close to it; its height at "
                 "τ = 1 is the share of data sets it won outright.")


def draw_throughput(throughput, out_dir):
    """:func:`fastgd.baselines.throughput.measure`'s dict (as measured, as stored, or as read from its files): training
    samples per second of every implementation on each data set (the median of the repeats, whiskers to the
    slowest and fastest), and each update step's bytes per second against parameters beside Adam's in-place
    ceiling and main memory's triad; its data is the steps' table."""
    plt, sns = _plotting()
    training, steps, machine = throughput["training"], throughput["steps"], throughput["machine"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8))
    timings = throughput.get("training_repeats")
    if timings is not None and len(timings):
        # every repeat a point of the bar's spread: the bar's whisker runs from the slowest repeat to the fastest
        rows = training.assign(n_samples=training["samples_per_second"] * training["seconds_per_epoch"])
        rates = timings.merge(rows[["dataset", "implementation", "n_samples"]], on=["dataset", "implementation"])
        rates["samples_per_second"] = rates["n_samples"] / rates["seconds_per_epoch"]
        sns.barplot(rates, x="dataset", y="samples_per_second", hue="implementation",
                    palette=IMPLEMENTATION_COLOURS, estimator="median", errorbar=("pi", 100), ax=left)
    else:
        sns.barplot(training, x="dataset", y="samples_per_second", hue="implementation",
                    palette=IMPLEMENTATION_COLOURS, ax=left)
    left.set_yscale("log")
    left.set_ylabel("training samples per second")
    left.set_title("One epoch: MLP 32 ReLU units, Adam, batch 32")
    bandwidth = steps.copy()
    bandwidth["GB_per_second"] = bandwidth["bytes_per_second"] / 1e9
    others = bandwidth[bandwidth["rule"] != "adam"]
    for implementation, group in others.groupby("implementation"):
        for _, rule_group in group.groupby("rule"):
            right.plot(rule_group["parameters"], rule_group["GB_per_second"], color=IMPLEMENTATION_COLOURS[
                implementation], alpha=0.18, linewidth=0.8)
    adam = bandwidth[bandwidth["rule"] == "adam"]
    sns.lineplot(adam, x="parameters", y="GB_per_second", hue="implementation", palette=IMPLEMENTATION_COLOURS,
                 marker="o", ax=right, errorbar=None)
    triad = machine["triad_bytes_per_second"] / 1e9
    right.axhline(triad, color="black", linestyle=":", linewidth=1)
    right.annotate(f"main memory (STREAM triad) {triad:.0f} GB/s", (bandwidth["parameters"].min(), triad),
                   xytext=(0, 4), textcoords="offset points", fontsize="small")
    ceilings = machine.get("in_place_bytes_per_second", {})
    adam_arrays = str(adam["arrays_written"].iloc[0]) if "arrays_written" in adam and len(adam) else None
    if adam_arrays in ceilings:
        # measured at one size only: a mark there, not a line across sizes whose working sets differ
        size, ceiling = machine["in_place_parameters"], ceilings[adam_arrays] / 1e9
        right.plot([size], [ceiling], marker="_", markersize=28, markeredgewidth=2, color="black")
        right.annotate(f"Adam's ceiling at {size:,}: {ceiling:.0f} GB/s", (size, ceiling), xytext=(-8, 6),
                       textcoords="offset points", ha="right", fontsize="small")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("parameters (float32)")
    right.set_ylabel("effective bandwidth, GB/s")
    right.set_title("One update step: Adam bold, the other rules faint")
    fig.tight_layout()
    data = bandwidth.assign(kind="step")
    alone = sorted(set(steps["rule"]) - set(steps.loc[steps["implementation"] == "numpy", "rule"]))
    alone_note = (f" {', '.join(alone)} declare{'s' if len(alone) == 1 else ''} no NumPy reference: timed in fastgd "
                  "alone." if alone else "")
    return _save(fig, out_dir, "throughput", data, "Throughput",
                 "Left: samples per second of one training epoch (fastgd and NumPy in float64, scikit-learn in "
                 "float64, PyTorch in float32), the median of the repeats with a whisker from the slowest to the "
                 "fastest. Right: bytes moved per second by one update step (θ, g and the "
                 "state arrays read, θ and the state written), against Adam's ceiling at the largest size (the bar: "
                 "its memory traffic alone, three arrays updated in place from a fourth over as many elements) "
                 "and main memory's STREAM triad." + alone_note,
                 "Left: taller bars train faster (log axis). Right: higher is faster; a bold Adam line at its "
                 "ceiling's bar means the step runs as fast as its memory traffic allows.")


def draw_trajectories(data, out_dir, stem="trajectories", texts=None, axis_labels=None):
    """The paths of :func:`fastgd.sweep.measure.trajectory_data` (as measured, or as stored) over each function's
    contours; ``stem``, ``texts`` (title, caption, how to read it) and ``axis_labels`` (x, y) for other surfaces
    of that shape (:func:`draw_parameter_paths`)."""
    import pandas as pd

    plt, sns = _plotting()
    from matplotlib.colors import LogNorm, SymLogNorm

    surfaces = data["functions"]
    rules = rules_in(path["rule"] for path in data["paths"])
    fig, axes = plt.subplots(1, len(surfaces), figsize=(6 * len(surfaces), 5.4), squeeze=False)
    styles = rule_styles(rules)
    records = []
    for ax, surface in zip(axes[0], surfaces):
        name = surface["name"]
        xs, ys, values = (np.asarray(surface[key], dtype=np.float64) for key in ("xs", "ys", "values"))
        if values.min() > 0:
            norm = LogNorm(vmin=max(values.min(), 1e-3), vmax=values.max())
            levels = np.geomspace(max(values.min(), 1e-3), values.max(), 30)
        else:
            norm, levels = SymLogNorm(linthresh=0.1, vmin=values.min(), vmax=values.max()), 30
        ax.contourf(xs, ys, values, levels=levels, norm=norm, cmap="Greys", alpha=0.55)
        ax.contour(xs, ys, values, levels=levels, norm=norm, colors="grey", linewidths=0.3)
        paths = sorted((path for path in data["paths"] if path["function"] == name),
                       key=lambda path: rules.index(path["rule"]))
        for path in paths:
            x, y = np.asarray(path["x"], dtype=np.float64), np.asarray(path["y"], dtype=np.float64)
            ax.plot(x, y, linewidth=1.3, label=f"{path['rule']} ({path['lr']:g})", **styles[path["rule"]].line(len(x)))
            records += [dict(function=name, rule=path["rule"], lr=path["lr"], step=step, x=a, y=b)
                        for step, a, b in zip(path["step"], x, y)]
        ax.plot(*surface["start"], "ko", markersize=5)
        ax.plot(*surface["minimum"], "k*", markersize=12)
        x_min, x_max, y_min, y_max = surface["bounds"]
        ax.set_xlim(x_min, x_max)
        ax.set_ylim(y_min, y_max)
        ax.set_title(f"{name}: {surface['n_steps']} steps")
        if axis_labels:
            ax.set_xlabel(axis_labels[0])
            ax.set_ylabel(axis_labels[1])
        ax.legend(fontsize="x-small", loc="lower right", ncol=2)
    fig.tight_layout()
    texts = texts or ("Trajectories on test functions",
                      "Every rule from the same start (●) on Rosenbrock, Beale and a saddle (★ a minimum), each at "
                      "the learning rate in the legend; the compiled trajectory helper records every step.",
                      "Follow each colour from ● to ★: a short, direct path is efficient; loops and overshoots are "
                      "momentum or too large a step, a path that stops short ran out of steps.")
    return _save(fig, out_dir, stem, pd.DataFrame(records), *texts)


def draw_parameter_paths(paths, out_dir, columns=6):
    """Each rule's path through (θ₀, θ₁) over the cost surface of every data set of ``paths`` ({data set:
    :func:`fastgd.sweep.measure.parameter_paths`'s dict}): the lecture's contour picture of linear regression, one
    small panel per rule (a data set's panels share its surface and axes, drawn to equal scale)."""
    import pandas as pd

    plt, sns = _plotting()
    from matplotlib.colors import LogNorm

    rules = rules_in(path["rule"] for content in paths.values() for path in content["paths"])
    styles = rule_styles(rules)
    panels = [(surface, path) for content in paths.values() for surface in content["functions"]
              for path in sorted(content["paths"], key=lambda path: rules.index(path["rule"]))
              if path["function"] == surface["name"]]
    n_rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(2.6 * columns, 2.6 * n_rows), squeeze=False)
    records = []
    for ax, (surface, path) in zip(axes.flat, panels):
        xs, ys, values = (np.asarray(surface[key], dtype=np.float64) for key in ("xs", "ys", "values"))
        floor = max(values.min(), values.max() * 1e-6, 1e-12)
        levels = np.geomspace(floor, values.max(), 16)
        norm = LogNorm(vmin=floor, vmax=values.max())
        ax.contourf(xs, ys, np.maximum(values, floor), levels=levels, norm=norm, cmap="Greys", alpha=0.5)
        ax.contour(xs, ys, np.maximum(values, floor), levels=levels, norm=norm, colors="grey", linewidths=0.3)
        x, y = np.asarray(path["x"], dtype=np.float64), np.asarray(path["y"], dtype=np.float64)
        ax.plot(x, y, linewidth=1.2, **styles[path["rule"]].line(len(x)))
        ax.plot(x[:1], y[:1], "ko", markersize=4)
        ax.plot(*surface["minimum"], "k*", markersize=9)
        x_min, x_max, y_min, y_max = surface["bounds"]
        ax.set_xlim(x_min, x_max)
        ax.set_ylim(y_min, y_max)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(f"{path['rule']} ({path['lr']:.3g})" + ("" if len(paths) == 1 else f", {surface['name']}"),
                     fontsize="small")
        ax.tick_params(labelsize="x-small")
        records += [dict(dataset=surface["name"], rule=path["rule"], lr=path["lr"], step=step, theta0=a, theta1=b)
                    for step, a, b in zip(path["step"], x, y)]
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("θ₁ (slope)", fontsize="small")
    for ax in axes[-1, :]:
        ax.set_xlabel("θ₀ (intercept)", fontsize="small")
    fig.tight_layout()
    return _save(fig, out_dir, "parameter_paths", pd.DataFrame(records), "Paths over the cost surface J(θ₀, θ₁)",
                 "On each data set whose model has two parameters (h(x) = θ₀ + θ₁x: on raw x and y, as the "
                 "lecture's houses are, the contours are elongated, tilted ellipses; on standardised ones, a round "
                 "bowl centred near θ₀ = 0), each rule from its chosen setting's first seed (● its start, ★ the "
                 "minimum), one point per step over its batches, at the learning rate in its title; the axes are to "
                 "equal scale.",
                 "A path across the contours heads downhill; a zig-zag across the narrow valley is a step too large "
                 "for its steep direction, a path that crawls along the valley floor is gradient descent slowed by "
                 "the flat one, a path that ends short of ★ ran out of steps (its tuned learning rate was small).")


def draw_landscapes(landscapes, out_dir):
    """One row per data set of ``landscapes`` ({name: :func:`fastgd.landscape.trained_landscape`'s dict}): the
    1-D slice and the 2-D contour around the trained θ."""
    import pandas as pd

    plt, sns = _plotting()
    fig, axes = plt.subplots(len(landscapes), 2, figsize=(12, 4.8 * len(landscapes)), squeeze=False)
    records = []
    for (left, right), (name, landscape) in zip(axes, landscapes.items()):
        alphas, losses = (np.asarray(landscape[key], dtype=np.float64) for key in ("alphas", "line"))
        grid_alphas, grid_betas, grid = (np.asarray(landscape[key], dtype=np.float64)
                                         for key in ("grid_alphas", "grid_betas", "plane"))
        where = f"{name}: " if name else ""
        left.plot(alphas, losses, color="#d62728")
        left.axvline(0.0, color="grey", linewidth=0.8)
        left.set_yscale("log")
        left.set_xlabel("α along a filter-normalised random direction")
        left.set_ylabel("training loss")
        left.set_title(f"{where}1-D slice around the trained θ")
        contour = right.contourf(grid_alphas, grid_betas, np.log10(grid), levels=30, cmap="viridis")
        right.contour(grid_alphas, grid_betas, np.log10(grid), levels=15, colors="white", linewidths=0.4)
        right.plot(0, 0, "r*", markersize=12)
        fig.colorbar(contour, ax=right, label="log10 training loss")
        right.set_xlabel("α (direction 1)")
        right.set_ylabel("β (direction 2)")
        right.set_title(f"{where}2-D contour around the trained θ (★)")
        records += [dict(dataset=name, alpha=a, beta=b, loss=grid[j, i]) for j, b in enumerate(grid_betas)
                    for i, a in enumerate(grid_alphas)]
    fig.tight_layout()
    data = pd.DataFrame(records)
    if not any(landscapes):
        data = data.drop(columns="dataset")
    trained = "; ".join(f"{name}: {_landscape_model(landscape)}, "
                        f"{landscape['n_epochs']} epochs of {landscape['optimizer']} on {landscape['rows']:,} rows"
                        + (f" (a sample of {landscape['training_rows']:,})"
                           if landscape["rows"] < landscape["training_rows"] else "")
                        for name, landscape in landscapes.items() if "layer_sizes" in landscape or "model" in landscape)
    return _save(fig, out_dir, "landscape", data, "Loss landscape",
                 "Loss of the network trained on each data set along one and two filter-normalised random directions "
                 "(Li et al. 2018), the lecture's way of looking at a high-dimensional cost function"
                 + (f" ({trained})." if trained else "."),
                 "Left: a narrow dip at α = 0 is a sharp minimum, a wide one a flat minimum. Right: closed contours "
                 "around ★ are a basin; the colour is log10 of the loss.")


def _landscape_model(landscape):
    """The network a landscape was drawn around, in words: an MLP's sizes and activation, a declared network's
    name (:func:`fastgd.landscape.trained_landscape`'s ``model``)."""
    if "layer_sizes" in landscape:
        return f"{'-'.join(map(str, landscape['layer_sizes']))} {landscape['activation']}"
    return str(landscape["model"])


def draw_history(history, out_dir):
    """asv results over commits (:func:`fastgd.report.history.load_history`'s frame): one line per benchmark, each
    value relative to the oldest commit's."""
    plt, sns = _plotting()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    sns.lineplot(history, x="commit_order", y="relative", hue="benchmark", marker="o", ax=ax)
    ax.set_xticks(sorted(history["commit_order"].unique()))
    ax.set_xticklabels([c[:8] for c in history.drop_duplicates("commit_order").sort_values("commit_order")["commit"]],
                       rotation=45, ha="right", fontsize="small")
    ax.set_xlabel("commit (oldest first)")
    ax.set_ylabel("value / value at the first commit")
    ax.set_title("asv results over commits")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    fig.tight_layout()
    return _save(fig, out_dir, "history", history, "History over commits",
                 "Headline asv benchmarks (times and convergence tracks) at each commit with results, relative to the "
                 "oldest: below 1 is faster (or lower) than then.",
                 "One line per benchmark: points below 1 improved since the first commit, a step up is a "
                 "regression at that commit.")


# the measures of the intervals figure, side by side: the test metric beside the training loss
INTERVAL_MEASURES = ("final_loss", "test_metric", "epochs_to_target")
_INTERVAL_LABELS = {"final_loss": "final training loss", "test_metric": "test metric",
                    "epochs_to_target": "epochs to target"}


def draw_intervals(runs, out_dir, table=None):
    """Error bars of :func:`fastgd.sweep.stats.intervals`: per data set (a row) and rule, the mean over the seeds of
    its best configuration and the 95% bootstrap interval of final training loss, test metric and epochs to
    target (a column each). ``table``: those intervals of ``runs`` where they are computed already."""
    from matplotlib.ticker import NullFormatter

    from fastgd.sweep import stats

    plt, sns = _plotting()
    if table is None:
        table = stats.intervals(runs, measures=INTERVAL_MEASURES)
    table = table[table["measure"].isin(INTERVAL_MEASURES)].reset_index(drop=True)
    names = sorted(table["dataset"].unique())
    rules = rules_in(table["rule"])
    colours, styles = palette(rules), rule_styles(rules)
    metric_names = {}
    if "test_metric_name" in runs:
        metric_names = runs.dropna(subset=["test_metric_name"]).groupby("dataset")["test_metric_name"].first()
    fig, axes = plt.subplots(len(names), len(INTERVAL_MEASURES), figsize=(14, 0.3 * len(rules) * len(names)
                                                                              + 1.6 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        of_dataset = table[table["dataset"] == name]
        present = [rule for rule in rules if rule in set(of_dataset["rule"])]
        for column, measure in enumerate(INTERVAL_MEASURES):
            ax = axes[row, column]
            values = of_dataset[of_dataset["measure"] == measure].set_index("rule")
            for position, rule in enumerate(present):
                mean, low, high = (float(values.loc[rule, key]) for key in ("mean", "low", "high"))
                if not np.isfinite(mean):
                    ax.text(0.02, position, "not reached" if measure == "epochs_to_target" else "no value",
                            transform=ax.get_yaxis_transform(), va="center", fontsize="x-small",
                            color=colours[rule])
                    continue
                error = [[mean - low], [high - mean]] if np.isfinite(low) and np.isfinite(high) else None
                ax.errorbar([mean], [position], xerr=error, fmt=styles[rule].marker, color=colours[rule], capsize=3,
                            markersize=5)
            ax.set_yticks(range(len(present)))
            ax.set_yticklabels(present if column == 0 else [""] * len(present), fontsize="small")
            ax.set_ylim(len(present) - 0.5, -0.5)
            finite = values["mean"].astype(float)
            finite = finite[np.isfinite(finite)]
            if measure == "final_loss" and len(finite) and (finite > 0).all() and finite.max() > finite.min():
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap in a short decade
            label = _INTERVAL_LABELS[measure]
            if measure == "test_metric" and name in metric_names:
                label = f"test {metric_names[name]}"
            ax.set_xlabel(label + (" (higher is better)" if measure == "test_metric" else " (lower is better)"))
            ax.set_title(f"{name}: {label}", fontsize="medium")
    fig.tight_layout()
    return _save(fig, out_dir, "intervals", table, "Confidence intervals",
                 "Per data set and rule, the mean over the seeds of the rule's best configuration (chosen on epochs to "
                 "target) and its 95% bootstrap interval (BCa): final training loss, the test metric beside it, and "
                 "epochs to the target loss (over the seeds that reached it). One seed gives a dot without a bar.",
                 "A dot is the mean, its bar where the mean lies with 95% confidence: bars that do not overlap "
                 "differ, overlapping bars may not (the summary's tests decide); left is better for loss and "
                 "epochs, right for the test metric.")


def tuning_progress(tune_runs):
    """:func:`fastgd.sweep.tuning.best_so_far` of the tuning trials (phase "tune"), grouped by data set, budget,
    batch size and rule (budget "–" where none is recorded), with ``trials``: how many trials of the group have
    been run, 1, 2, … in trial order, whether the store counts ``trial`` from 0 or from 1."""
    from fastgd.sweep import tuning

    by = ["dataset", "budget", "batch_size", "rule"]
    frame = tune_runs.assign(budget=tune_runs["budget"].map(lambda b: b if isinstance(b, str) and b else "–"),
                             batch_size=tune_runs["batch_size"] if "batch_size" in tune_runs else "–",
                             trial=tune_runs["trial"].astype(float))
    data = tuning.best_so_far(frame, score="validation_loss", by=by)
    data["trials"] = data.groupby(by).cumcount() + 1
    return data


def draw_tuning(tune_runs, out_dir):
    """Best-so-far validation loss against the number of trials (:func:`tuning_progress`), one panel per data set
    (and budget, and batch size, where the store holds several), one line per rule."""
    plt, sns = _plotting()
    data = tuning_progress(tune_runs)
    varying = [column for column in ("budget", "batch_size") if data[column].nunique() > 1]
    panels = sorted(data[["dataset", *varying]].drop_duplicates().itertuples(index=False, name=None))
    columns = min(3, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False)
    rules = rules_in(data["rule"])
    colours, styles = palette(rules), rule_styles(rules)
    for ax, panel in zip(axes.flat, panels):
        chosen = np.ones(len(data), dtype=bool)
        for column, value in zip(["dataset", *varying], panel):
            chosen &= (data[column] == value).to_numpy()
        subset = data[chosen]
        lines = subset["best_so_far"].astype(float).dropna()
        # trials far worse than every best-so-far would squash the lines: drawn at a ceiling, marked ▲
        ceiling = 3 * float(lines.max()) if len(lines) and lines.max() > 0 else np.inf
        for rule in rules:
            line = subset[subset["rule"] == rule]
            if len(line):
                ax.step(line["trials"], line["best_so_far"], where="post", linewidth=1.3,
                        **styles[rule].line(len(line)))
                scores = line["score"].astype(float)
                scores = scores.where(np.isfinite(scores))
                ax.scatter(line["trials"], scores.where(scores <= ceiling), color=colours[rule], s=8, alpha=0.35)
                ax.scatter(line["trials"][scores > ceiling], np.full(int((scores > ceiling).sum()), ceiling),
                           color=colours[rule], s=14, alpha=0.5, marker="^", clip_on=False)
        if len(lines) and (lines > 0).all() and lines.max() > lines.min():
            ax.set_yscale("log")
        details = ", ".join(f"{'budget' if column == 'budget' else 'batch'} {value}"
                            for column, value in zip(varying, panel[1:]))
        ax.set_title(panel[0] + (f" ({details})" if details else ""))
        ax.set_xlabel("trials run")
        ax.set_ylabel("best validation loss so far")
    _rule_legend(fig, list(axes.flat), colours, rules, n_used=len(panels))
    return _save(fig, out_dir, "tuning", data, "Tuning budgets",
                 "Each rule's quasi-random search (scrambled Sobol points of its declared search space): the lowest "
                 "validation loss after 1, 2, … trials (the line) and each trial's own (the faint dots; ▲ at the "
                 "top: a trial's loss above three times the panel's highest line). Settings "
                 "are chosen on the validation split, never the test set.",
                 "A line that drops early and stays flat needs little tuning; one still falling at the last trial "
                 "would gain from a larger budget; compare heights at the same number of trials.")
