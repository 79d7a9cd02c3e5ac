"""The critical-difference diagram of Demšar (2006): mean ranks over data sets, the CD bar, cliques joined by bars.

Drawn like the report's other figures (:mod:`fastgd.report.figures`): one
colour per rule, ``<stem>.png``, ``<stem>.svg`` and the data behind it as
``<stem>.csv`` in ``out_dir``, and a :class:`fastgd.report.figures.Figure`
returned.
"""

from fastgd.report.figures import _plotting, _save, palette, rules_in

__all__ = ["draw_critical_difference", "draw_rank_test"]

_MEASURE_WORDS = {"epochs_to_target": "epochs to target", "seconds_to_target": "seconds to target",
                  "final_loss": "final training loss", "test_metric": "test metric"}


def draw_critical_difference(runs, out_dir, measure="epochs_to_target", alpha=0.05):
    """The diagram of :func:`fastgd.sweep.stats.rank_test` on each rule's best configuration over the data sets."""
    from fastgd.sweep import stats

    if measure not in stats.MEASURES:
        raise ValueError(f"unknown measure {measure!r} (one of {list(stats.MEASURES)})")
    result = stats.rank_test(stats.score_matrix(runs, measure), lower_is_better=stats.MEASURES[measure] == "lower",
                             alpha=alpha)
    return draw_rank_test(result, out_dir, measure=measure)


def _table(result, measure):
    import pandas as pd

    member = {rule: [] for rule in result.mean_ranks.index}
    for number, group in enumerate(result.cliques, start=1):
        for rule in group:
            member[rule].append(str(number))
    return pd.DataFrame({
        "rule": list(result.mean_ranks.index),
        "mean_rank": list(result.mean_ranks.to_numpy()),
        "cliques": [";".join(member[rule]) for rule in result.mean_ranks.index],
        "measure": measure,
        "critical_difference": result.cd,
        "alpha": result.alpha,
        "friedman_statistic": result.statistic,
        "friedman_pvalue": result.pvalue,
        "n_datasets": result.n_datasets,
    })


def draw_rank_test(result, out_dir, measure="epochs_to_target", stem="critical_difference"):
    """Draw a :class:`fastgd.sweep.stats.RankTest`: rank 1 (best) on the left, half the rules labelled on each side."""
    plt, _ = _plotting()
    ranks = result.mean_ranks
    rules = list(ranks.index)
    k = len(rules)
    colours = palette(rules_in(rules))
    half = (k + 1) // 2
    depth = max(half, k - half)
    top = -0.45 - 0.22 * len(result.cliques)  # the first label row, under the clique bars
    bottom = top - 0.45 * (depth - 1) - 0.3
    fig, ax = plt.subplots(figsize=(8.5, 0.9 + 0.55 * (1.7 - bottom)))
    ax.set_xlim(0.35, k + 0.65)
    ax.set_ylim(bottom, 1.7)
    ax.axis("off")

    ax.hlines(0, 1, k, color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.vlines(tick, 0, 0.15, color="black", linewidth=1)
        ax.text(tick, 0.25, str(tick), ha="center", va="bottom", fontsize=9)
    if result.cd <= k - 1:
        ax.hlines(1.15, 1, 1 + result.cd, color="black", linewidth=2)
        ax.vlines([1, 1 + result.cd], 1.05, 1.25, color="black", linewidth=1)
        ax.text(1 + result.cd / 2, 1.3, f"CD = {result.cd:.2f}", ha="center", va="bottom", fontsize=9)
    else:
        ax.text(1, 1.3, f"CD = {result.cd:.2f} (wider than the axis)", ha="left", va="bottom", fontsize=9)

    # cliques: thick bars just under the axis, stacked where they overlap
    for row, group in enumerate(result.cliques):
        low, high = ranks[group].min(), ranks[group].max()
        ax.hlines(-0.25 - 0.22 * row, low - 0.03, high + 0.03, color="black", linewidth=3.5)

    for index, rule in enumerate(rules):
        rank = ranks[rule]
        left = index < half
        level = top - 0.45 * (index if left else k - 1 - index)
        end = 0.45 if left else k + 0.55
        colour = colours[rule]
        ax.vlines(rank, level, 0, color=colour, linewidth=1.2)
        ax.hlines(level, min(rank, end), max(rank, end), color=colour, linewidth=1.2)
        ax.text(end + (-0.05 if left else 0.05), level, f"{rule} ({rank:.2f})", ha="right" if left else "left",
                va="center", fontsize=9, color=colour)

    from fastgd.sweep.stats import p_text

    words = _MEASURE_WORDS.get(measure, measure)
    if result.note:
        verdict = result.note
    elif result.significant:
        verdict = f"Friedman p = {p_text(result.pvalue)}"
    else:
        verdict = f"Friedman p = {p_text(result.pvalue)}: no significant difference"
    sets = f"{result.n_datasets} data set{'' if result.n_datasets == 1 else 's'}"
    ax.set_title(f"Mean rank on {words} over {sets} ({verdict})", fontsize=10)
    fig.tight_layout()
    caption = (f"Each rule's mean rank on {words} across the data sets (1 = best, on the left). Rules joined by a "
               f"thick bar are not significantly different (Nemenyi, α = {result.alpha:g}, critical difference "
               f"{result.cd:.2f}; Demšar 2006); where the Friedman test finds no difference, one bar joins all.")
    how_to_read = ("Further left is better; rules joined by a thick bar cannot be told apart, and two rules whose "
                   "ranks lie further apart than the CD bar is long differ significantly.")
    return _save(fig, out_dir, stem, _table(result, measure), "Critical-difference diagram", caption, how_to_read)
