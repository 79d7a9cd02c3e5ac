"""Assemble the comparison report: figures, tables and a summary in one HTML page that opens offline.

:func:`build_report` reads a store, draws every figure into ``out_dir`` (PNG,
SVG and the CSV behind each) and writes ``out_dir/index.html`` from an
autoescaping Jinja2 template. It trains, times and describes nothing: a store
copied to another machine gives the same report there. Nothing in the page is
fetched from the network.

This module draws the runs (convergence, learning rates, time to target,
intervals, ranks, profiles, tuning; the runtime overhead against SGD and the
learning-rate ranges through :mod:`fastgd.report.overhead` and
:mod:`fastgd.report.sensitivity`) and writes the summary; what ``fastgd
compare`` measured besides the runs and stored in the store's ``artefacts``
table (throughput, trajectories, landscapes, gradient checks, the machine, the
asv history, the data sets) is drawn by the sections declared in
:mod:`fastgd.report.sections`, each of which says so, and how to make it, where
the store lacks it (a store of ``fastgd sweep`` alone, or of an older fastgd).
"""

import json
import math
from pathlib import Path

import numpy as np

from fastgd import optim
from fastgd.report import sections as stored_sections
from fastgd.report.sections import HISTORY, THROUGHPUT, Page, check_artefacts
from fastgd.report.text import missing_line, plural, positive_number, table_of, throughput_lines

__all__ = ["build_report", "save_throughput", "load_throughput", "summary_lines", "check_reportable",
           "check_artefacts", "unknown_rule_notes", "render_report", "split_phases", "rank_sentence", "pairs_line",
           "is_fastgd_report", "measured_apart", "failed_rule_lines"]


def save_throughput(throughput, out_dir):
    """Write :func:`fastgd.baselines.throughput.measure`'s dict into ``out_dir`` as ``fastgd compare`` leaves it beside
    its report: ``throughput_training.csv``, ``throughput_steps.csv``, ``throughput_training_repeats.csv`` (where
    the repeats were kept) and ``throughput_machine.json``; :func:`load_throughput` reads them back."""
    out_dir = Path(out_dir)
    throughput["training"].to_csv(out_dir / "throughput_training.csv", index=False)
    throughput["steps"].to_csv(out_dir / "throughput_steps.csv", index=False)
    if throughput.get("training_repeats") is not None:
        throughput["training_repeats"].to_csv(out_dir / "throughput_training_repeats.csv", index=False)
    (out_dir / "throughput_machine.json").write_text(json.dumps(throughput["machine"], indent=2))


_THROUGHPUT_COLUMNS = {
    "training": {"dataset", "implementation", "dtype", "seconds_per_epoch", "samples_per_second"},
    "steps": {"rule", "implementation", "parameters", "seconds", "bytes_per_second"},
    "training_repeats": {"dataset", "implementation", "repeat", "seconds_per_epoch"},
}


def load_throughput(directory):
    """Throughput saved by :func:`save_throughput`, or None where it is missing; ValueError (one line) if unreadable."""
    import pandas as pd

    directory = Path(directory)
    paths = [directory / name for name in ("throughput_training.csv", "throughput_steps.csv",
                                           "throughput_machine.json")]
    if not all(path.is_file() for path in paths):
        return None
    try:
        throughput = {"training": pd.read_csv(paths[0]), "steps": pd.read_csv(paths[1]),
                      "machine": json.loads(paths[2].read_text(encoding="utf-8"))}
    except (OSError, ValueError) as error:  # pandas' parser errors and UnicodeDecodeError are ValueErrors
        raise ValueError(f"the throughput files in {directory} cannot be read: {' '.join(str(error).split())}") \
            from None
    repeats = directory / "throughput_training_repeats.csv"
    if repeats.is_file():  # written since the repeats were kept: optional
        try:
            throughput["training_repeats"] = pd.read_csv(repeats)
        except (OSError, ValueError) as error:
            raise ValueError(f"{repeats} cannot be read: {' '.join(str(error).split())}") from None
    for key, columns in _THROUGHPUT_COLUMNS.items():
        if key not in throughput:
            continue
        missing = sorted(columns - set(throughput[key].columns))
        if missing:
            raise ValueError(f"throughput_{key}.csv in {directory} lacks the columns {missing}")
    machine = throughput["machine"]
    if not isinstance(machine, dict) or not positive_number(machine.get("triad_bytes_per_second")):
        raise ValueError(f"throughput_machine.json in {directory} has no positive triad_bytes_per_second")
    # the steps' ceilings, measured since files of earlier versions: optional, but well-formed when present
    ceilings = machine.get("in_place_bytes_per_second", {})
    if not (isinstance(ceilings, dict) and all(key.isdigit() and positive_number(value)
                                               for key, value in ceilings.items())):
        raise ValueError(f"throughput_machine.json in {directory}: in_place_bytes_per_second must map numbers of "
                         "arrays to positive rates")
    if ceilings and not positive_number(machine.get("in_place_parameters")):
        raise ValueError(f"throughput_machine.json in {directory}: in_place_parameters must be a positive number")
    return throughput


def unknown_rule_notes(runs):
    """A line naming the store's rules this process does not have (a plugin not loaded): drawn from the
    store alone, without trajectories."""
    from fastgd.sweep.solvers import SOLVERS

    unknown = sorted(set(runs["rule"]) - set(optim.OPTIMIZERS) - set(SOLVERS))
    if not unknown:
        return []
    return [f"rules not registered here: {', '.join(unknown)}; they are drawn from the store, after the registered "
            "rules (give their plugin with --plugin to order and colour them as registered)"]


def split_phases(runs):
    """``(compared, tuning)``: the runs the comparison is made of and the tuning trials (``phase`` "tune").

    Tuning trials are scored on a validation split and only choose the
    settings; best runs, intervals, ranks, winners and profiles are computed
    from the other runs alone. A store without a ``phase`` column (before
    tuning was stored) has no tuning trials.
    """
    if "phase" not in runs:
        return runs, runs.iloc[0:0]
    tune = (runs["phase"] == "tune").to_numpy()
    return runs[~tune], runs[tune]


# the fewest seeds a side with which Mann-Whitney's two-sided test can reach p < 0.05 (2 / C(8, 4) = 0.029)
MIN_SEEDS_TO_SEPARATE = 4


def _milliseconds(low, high):
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    return f"95% interval [{low * 1e3:.3g}, {high * 1e3:.3g}] ms"


def rank_sentence(rank):
    """:meth:`RankTest.summary` and which pairs of rules the Nemenyi test separates (a significant Friedman test
    with a critical difference wider than every gap separates none)."""
    if rank.note:
        return rank.summary()
    rules = list(rank.mean_ranks.index)
    pairs = [(first, second) for index, first in enumerate(rules) for second in rules[index + 1:]]
    apart = [f"{first} ahead of {second}" for first, second in pairs if rank.different(first, second)]
    if not apart:
        return f"{rank.summary()}; no two rules' mean ranks lie the critical difference apart"
    shown = "; ".join(apart[:8]) + ("; …" if len(apart) > 8 else "")
    return f"{rank.summary()}; {len(apart)} of {len(pairs)} pairs lie the critical difference apart ({shown})"


def _alongside(pairwise, dataset, winner, shown=6):
    """What the pairwise tests say of ``winner`` against every other rule on ``dataset``, as a sentence ('' without
    pairwise tests: one rule): the rules it cannot be told from, any the test puts ahead of it (pairwise tests need
    not be transitive), or that every other rule is behind."""
    if pairwise is None:
        return ""
    pairs = pairwise[(pairwise["dataset"] == dataset) & ((pairwise["rule_a"] == winner)
                                                         | (pairwise["rule_b"] == winner))]

    def others(rows):
        names = sorted((set(rows["rule_a"]) | set(rows["rule_b"])) - {winner})
        return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")

    ahead = pairs[pairs["significant"] & (pairs["better"] != winner)]
    level = pairs[~pairs["significant"]]
    text = ""
    if len(ahead):
        text += f" Significantly ahead of {winner} on epochs to target all the same: {others(ahead)}."
    if len(level):
        text += f" Not significantly different from {winner} on epochs to target: {others(level)}."
    return text or f" Every other rule is significantly behind {winner}."


def pairs_line(pairwise, dataset, shown=8):
    """One line on which pairs of rules differ on ``dataset`` (:func:`fastgd.sweep.stats.pairwise_tests`): the
    significant pairs where there are at most ``shown``, else the others where there are at most ``shown``, else
    the counts alone (every pair is in the report's pairwise.csv). Pairs of rules that both missed the target on
    every seed have nothing to compare and are counted apart."""
    from fastgd.sweep.stats import p_text

    group = pairwise[pairwise["dataset"] == dataset]
    held = group[group["significant"]]
    incomparable = group[group["pvalue"].isna()]
    level = group.drop(held.index).drop(incomparable.index)
    n_pairs = len(group)
    head = f"{dataset}, epochs to target (Mann-Whitney U over seeds, Holm-corrected): "
    if len(incomparable) == n_pairs:
        return head + "nothing to compare: no rule reached the target on any seed."
    tail = (f" {plural(len(incomparable), 'pair')} of rules that both missed the target on every seed: nothing to "
            "compare." if len(incomparable) else "")
    if held.empty:
        return head + f"no significant difference between any of the {len(level)} comparable pairs of rules." + tail

    def listed(rows, words):
        return "; ".join(words(row) + f" (p = {p_text(row.pvalue_holm)})" for row in rows.itertuples())

    if len(held) <= shown:
        return head + "significant: " + listed(held, lambda row: f"{row.better} better than "
                                               f"{row.rule_b if row.better == row.rule_a else row.rule_a}") \
            + f"; {len(level)} of {n_pairs} pairs not significantly different." + tail
    if len(level) <= shown:
        text = listed(level, lambda row: f"{row.rule_a} and {row.rule_b}") if len(level) else "none"
        return head + f"{len(held)} of {n_pairs} pairs differ significantly; not significantly different: {text}." \
            + tail
    return head + f"{len(held)} of {n_pairs} pairs differ significantly, {len(level)} do not (every pair in " \
                  "pairwise.csv)." + tail


def measured_apart(best):
    """{data set: the line saying why no winner is named} for each data set whose best runs were measured against
    different target losses, or different epoch budgets where a run missed the target within a budget shorter than
    another's (a store shared by sweeps of different settings): epochs to one target say nothing of epochs to
    another, and a budget of 5 epochs misses what one of 50 reaches at epoch 8. Runs that all reached the target
    within their budgets are compared whatever the budgets: their epochs to it are what a longer budget gives."""
    apart = {}

    def values(group, column):
        return " and ".join(f"{value:g}" for value in sorted(group[column].dropna().unique()))

    for dataset, group in best.groupby("dataset", sort=True):
        differing = []
        if "target_loss" in group and group["target_loss"].nunique() > 1:
            differing.append(f"target losses {values(group, 'target_loss')}")
        if "n_epochs" in group and group["n_epochs"].nunique() > 1:
            missed = group["epochs_to_target"].isna()
            if (group.loc[missed, "n_epochs"] < group["n_epochs"].max()).any():
                differing.append(f"epoch budgets {values(group, 'n_epochs')} (and a run missed the target within "
                                 "a budget shorter than another's)")
        if differing:
            apart[dataset] = (f"{dataset}: no winner is named: the rules' best runs were measured against different "
                              f"{'; '.join(differing)}, and the times to them cannot be compared; sweep every rule "
                              "with the same [targets] and epochs (or keep each sweep in a store of its own).")
    return apart


def failed_rule_lines(compared, finished):
    """One line per data set naming the rules left out of it because every one of their runs failed."""
    lines = []
    failed = compared[compared["status"] == "failed"]
    for dataset, group in failed.groupby("dataset", sort=True):
        finished_rules = set(finished.loc[finished["dataset"] == dataset, "rule"])
        left_out = [f"{rule} ({plural(len(of_rule), 'run')})" for rule, of_rule in group.groupby("rule", sort=True)
                    if rule not in finished_rules]
        if left_out:
            lines.append(f"{dataset}: left out of the comparison, every run failed: {', '.join(left_out)} (see the "
                         "runs' errors in runs.csv).")
    return lines


def summary_lines(runs, throughput, pairwise=None):
    """The text on top: per data set the winner (:func:`fastgd.sweep.stats.winners`: epochs to target first,
    wall-clock second with its interval) and which differences are significant (:func:`pairs_line`); the rank test
    across data sets; the measured speed-ups. ``runs``: the finished runs compared (no tuning trials);
    ``pairwise``: their :func:`fastgd.sweep.stats.pairwise_tests`, where computed already."""
    from fastgd.sweep import stats

    lines = []
    best = stats.best_configuration_runs(runs)
    apart = measured_apart(best)
    if pairwise is None and best["rule"].nunique() > 1:
        pairwise = stats.pairwise_tests(runs)
    seeds = best.groupby(["dataset", "rule"]).size()
    if len(seeds) and seeds.max() < MIN_SEEDS_TO_SEPARATE:
        lines.append(f"With {plural(int(seeds.max()), 'seed')} per configuration at most, no difference over seeds "
                     f"can be significant (Mann-Whitney U needs {MIN_SEEDS_TO_SEPARATE} or more a side at α = 0.05): "
                     "read the winners below as unconfirmed (the tuning protocol's final runs take ten seeds or "
                     "more).")
    for row in stats.winners(runs).itertuples():
        if row.dataset in apart:
            lines.append(apart[row.dataset])
            continue
        of_dataset = best[best["dataset"] == row.dataset]
        reaching = of_dataset.groupby("rule")["epochs_to_target"].apply(lambda s: bool(s.notna().all()))
        n_rules = len(reaching)
        target = of_dataset["target_loss"].iloc[0] if "target_loss" in of_dataset else math.nan
        if row.winner is None:
            budget = (f" within {int(of_dataset['n_epochs'].iloc[0])} epochs" if "n_epochs" in of_dataset else "")
            lines.append(f"{row.dataset}: no rule reached the target loss {target:g} on any seed{budget}: nothing to "
                         "compare on time to the target (the final losses are under Best settings); a lower target "
                         "is reached by none, a higher one may be: see how the target was chosen.")
        else:
            winner = of_dataset[of_dataset["rule"] == row.winner]
            over = (f"mean over {plural(row.n_seeds, 'seed')}" if row.reached == row.n_seeds else
                    f"mean over the {row.reached} of {row.n_seeds} seeds that reached it")
            lines.append(
                f"{row.verdict}. {row.winner} at learning rate {winner['learning_rate'].iloc[0]:.3g}: "
                f"{row.epochs:.3g} epoch{'' if row.epochs == 1 else 's'} and {row.seconds * 1e3:.3g} ms to the "
                f"target loss {target:g} ({_milliseconds(row.seconds_low, row.seconds_high)}; {over}); "
                f"{int(reaching.sum())} of {plural(n_rules, 'rule')} reach it on every seed."
                + _alongside(pairwise, row.dataset, row.winner))
        if pairwise is not None and (pairwise["dataset"] == row.dataset).any():
            lines.append(pairs_line(pairwise, row.dataset))
    comparable = runs[~runs["dataset"].isin(list(apart))]
    scores = stats.score_matrix(comparable) if len(best[~best["dataset"].isin(list(apart))]) else None
    if scores is not None and scores.shape[1] >= 2:
        lines.append(f"Across data sets, ranks on epochs to target: {rank_sentence(stats.rank_test(scores))}.")
    if throughput is not None:
        lines.extend(throughput_lines(throughput))
    return lines


def build_report(out_dir, store, throughput=None, asv_results=None, title="fastgd: optimizer comparison",
                 progress=None, workers=1):
    """Write ``out_dir/index.html`` and its figures from ``store`` alone; returns the page's path.

    Draws the runs and the artefacts :func:`fastgd.report.sections.record_artefacts` stored, and
    computes nothing else. ``throughput`` (:func:`load_throughput`'s, from
    files) and ``asv_results`` (an asv results directory) are drawn instead of
    the store's, into this report only: the store is not changed. ``workers``: the processes drawing the figures
    (:func:`render_report`).
    """
    from fastgd.sweep.store import Store

    with Store(store, mode="r") as opened:  # a report reads the store and writes nothing into it
        runs, curves, sweeps = opened.runs_frame(), opened.curves_frame(), opened.sweeps_frame()
        artefacts = opened.artefacts()
    check_reportable(runs, store)
    check_artefacts(artefacts, store)
    return render_report(out_dir, runs, curves, sweeps, artefacts, throughput=throughput, asv_results=asv_results,
                         title=title, progress=progress, workers=workers)


# the page's mark: a folder whose index.html carries it holds a fastgd report, which a new one may replace
GENERATOR = '<meta name="generator" content="fastgd">'
# the footer of reports made before the mark
_OLDER_MARK = "Made by <code>fastgd</code> from the sweep store alone"


def is_fastgd_report(directory):
    """Whether ``directory`` holds a report fastgd wrote (its ``index.html`` says so)."""
    try:
        page = (Path(directory) / "index.html").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return GENERATOR in page or _OLDER_MARK in page


def check_reportable(runs, store):
    """ValueError in one line when the runs of a store cannot make a report."""
    if runs.empty:
        raise ValueError(f"the store {store} holds no runs: run a sweep first")
    compared = split_phases(runs)[0]
    if compared.empty:
        raise ValueError(f"the store {store} holds only tuning trials (phase 'tune'): train the chosen settings "
                         "before making a report")
    failed = compared["status"] == "failed"
    if failed.all():
        errors = compared["error"].dropna() if "error" in compared else ()
        first = f" (the first: {' '.join(str(errors.iloc[0]).split())})" if len(errors) else ""
        raise ValueError(f"every run in the store {store} failed, {len(compared)} of {len(compared)}{first}: "
                         "nothing to report")


def _interval_text(row, scale=1.0):
    if not math.isfinite(row["mean"]):
        return "–" if row["n"] == 0 else f"{row['mean']:.4g}"
    if math.isfinite(row["low"]) and math.isfinite(row["high"]):
        return f"{row['mean'] * scale:.4g} [{row['low'] * scale:.4g}, {row['high'] * scale:.4g}]"
    return f"{row['mean'] * scale:.4g}"


def _interval_table(table):
    """Per data set and rule: mean [low, high] of each measure, the seeds of the best configuration and how many
    reached the target."""
    rows = []
    for (dataset, rule), group in table.groupby(["dataset", "rule"], sort=True):
        measured = group.set_index("measure")
        rows.append([dataset, rule, _interval_text(measured.loc["final_loss"]),
                     _interval_text(measured.loc["test_metric"]), _interval_text(measured.loc["epochs_to_target"]),
                     _interval_text(measured.loc["seconds_to_target"], 1e3),
                     str(int(measured.loc["epochs_to_target", "n"])), str(int(measured.loc["final_loss", "n_seeds"]))])
    return {"columns": ["dataset", "rule", "final training loss", "test metric", "epochs to target",
                        "ms to target", "seeds reaching", "seeds"], "rows": rows, "text": 2}


def _algoperf_table(runs):
    from fastgd.sweep import stats

    epochs = stats.algoperf_scores(runs, "epochs_to_target")
    seconds = stats.algoperf_scores(runs, "seconds_to_target")
    return {"columns": ["rule", "AlgoPerf score, epochs to target", "AlgoPerf score, seconds to target"],
            "rows": [[rule, f"{epochs[rule]:.3f}", f"{seconds[rule]:.3f}"] for rule in epochs.index], "text": 1}


def _tuning_table(tune):
    """Per data set, budget, batch size and rule: the trials, the best validation loss and after how many trials
    it was reached."""
    from fastgd.report.figures import tuning_progress

    data = tuning_progress(tune)
    rows = []
    for (dataset, budget, batch_size, rule), group in data.groupby(["dataset", "budget", "batch_size", "rule"],
                                                                   sort=True):
        scores = group["score"].astype(float)
        finite = scores[np.isfinite(scores)]
        best = f"{finite.min():.4g}" if len(finite) else "–"
        after = str(int(group.loc[finite.idxmin(), "trials"])) if len(finite) else "–"
        rows.append([dataset, str(budget), str(batch_size), rule, str(len(group)), best, after])
    return {"columns": ["dataset", "budget", "batch size", "rule", "trials", "best validation loss",
                        "reached after (trials)"], "rows": rows, "text": 4}


def _draw_runs(page, curves, tune):
    """Draw the runs' figures and statistics into ``page`` (the stored artefacts' sections come after them);
    returns the pairwise tests (None with one rule)."""
    from fastgd.report import figures, overhead, rank_figure, sensitivity
    from fastgd.report.suboptimality import add_suboptimality
    from fastgd.sweep import stats

    say, draw, out_dir, compared, finished = page.say, page.draw, page.out_dir, page.compared, page.finished
    several_rules = finished["rule"].nunique() > 1
    say("figures: convergence, learning rates, time to target")
    draw(figures.draw_convergence, finished, curves, out_dir)
    add_suboptimality(page, finished, curves, page.sweeps)  # where a data set's configuration gives f*
    draw(figures.draw_learning_rate_sensitivity, finished, out_dir)
    sensitivity.draw_sensitivity(page, compared, tune)
    draw(figures.draw_time_to_target, finished, out_dir)
    overhead.draw_overhead(page, finished, curves)
    say("statistics: intervals, ranks, AlgoPerf scores")
    intervals = stats.intervals(finished)
    draw(figures.draw_intervals, finished, out_dir, intervals,
         note="The same intervals in numbers, mean [low, high] (95%, bootstrap over seeds); times in milliseconds, "
              "over the seeds that reached the target.",
         table=_interval_table(intervals))
    pairwise = None
    if several_rules:
        pairwise = stats.pairwise_tests(finished)
        pairwise.to_csv(out_dir / "pairwise.csv", index=False)
        rank = stats.rank_test(stats.score_matrix(finished))
        draw(rank_figure.draw_critical_difference, finished, out_dir,
             note=f"Friedman and Nemenyi tests on epochs to target: {rank_sentence(rank)}.")
        draw(figures.draw_performance_profile, finished, out_dir,
             note="AlgoPerf's benchmark score (Dahl et al. 2023) of each rule's best configuration: its performance "
                  "profile integrated from τ = 1 to 4 over the data sets and divided by 3, 1 when fastest everywhere, "
                  "0 when never within 4x of the fastest. On seconds it is the profile above; on epochs, the same "
                  "for the deterministic measure.",
             table=_algoperf_table(finished))
    else:
        draw(figures.draw_performance_profile, finished, out_dir)
        page.add_text("critical_difference", "Critical-difference diagram", note="One rule only: nothing to rank.")
    if not tune.empty:
        say("figure: tuning budgets")
        draw(figures.draw_tuning, tune, out_dir, table=_tuning_table(tune))
    else:
        page.add_text("tuning", "Tuning budgets",
                      note=missing_line("Tuning budgets", "a tuning sweep (runs of phase 'tune', scored on a "
                                        "validation split) stores the trials it draws"))
    return pairwise


def render_report(out_dir, runs, curves, sweeps, artefacts, throughput=None, asv_results=None,
                  title="fastgd: optimizer comparison", progress=None, workers=1):
    """Write ``out_dir/index.html`` from a store's frames (:meth:`Store.runs_frame`, ``curves_frame``,
    ``sweeps_frame``, ``artefacts``) as :func:`build_report` reads them; returns the page's path.

    Tuning trials (``phase`` "tune") are drawn in the tuning section only;
    everything else is computed from the other runs (:func:`split_phases`).
    The stored artefacts are drawn by :data:`fastgd.report.sections.SECTIONS`,
    in order, after the runs' figures; ``throughput`` and ``asv_results`` are
    drawn instead of the store's throughput and asv history. ``workers``: how many processes draw the figures while
    the statistics are computed (:func:`fastgd.report.figures.drawing_pool`; 1: each drawn here, in turn); the
    page and its files are the same either way.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    from fastgd.report import figures
    from fastgd.report.history import load_history
    from fastgd.sweep.metrics import best_runs, mixed_provenance, mixed_settings
    from fastgd.sweep.completeness import completeness

    say = progress or (lambda message: None)
    compared, tune = split_phases(runs)
    given = {}  # files given to fastgd report, drawn instead of what the store holds
    if throughput is not None:
        given[THROUGHPUT] = throughput
    if asv_results is not None:
        given[HISTORY] = (load_history(asv_results), asv_results)
    warnings = mixed_provenance(runs, sweeps) + mixed_settings(compared)
    notes = unknown_rule_notes(runs)
    incomplete = completeness(runs, sweeps)
    for line in warnings + notes + ([incomplete] if incomplete else []):
        say(f"warning: {line}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    finished = compared[compared["status"] != "failed"]
    with figures.drawing_pool(workers) as pool:
        page = Page(out_dir, compared, finished, sweeps, artefacts, frozenset(given), say, warnings=warnings, pool=pool)
        pairwise = _draw_runs(page, curves, tune)
        for section in stored_sections.SECTIONS:
            section.draw(page, given[section.name] if section.name in given else section.stored(artefacts))
        for line in page.missing:
            say(f"missing: {line}")
        # the summary's tests are computed while the figures are drawn
        summary = ([f"Incomplete: {incomplete}."] if incomplete else []) + summary_lines(finished, None, pairwise) \
            + failed_rule_lines(compared, finished) + page.summary
        page.finish()
    best = best_runs(finished)
    best_table = table_of(best.sort_values(["dataset", "rule"]),
                          ["dataset", "rule", "learning_rate", "final_loss_mean", "test_metric_mean",
                           "epochs_to_target_mean", "seconds_to_target_mean", "diverged_share"])
    counts = runs["status"].value_counts().to_dict()
    environment = Environment(loader=PackageLoader("fastgd.report", "templates"),
                              autoescape=select_autoescape(["html"]))
    html = environment.get_template("report.html").render(
        title=title, warnings=page.warnings, notes=notes, missing=page.missing, incomplete=incomplete,
        summary=summary,
        pairwise_csv=pairwise is not None, sections=page.sections, best=best_table,
        sweep_names=", ".join(sorted(set(sweeps["name"]))), n_runs=len(runs), n_tuning=len(tune), counts=counts,
        datasets=sorted(runs["dataset"].unique()), rules=figures.rules_in(runs["rule"]), **page.template)
    path = out_dir / "index.html"
    path.write_text(html, encoding="utf-8")
    runs.to_csv(out_dir / "runs.csv", index=False)
    return path
