"""fastgd.sweep.stats against SciPy, hand-computed numbers and Demšar's (2006) published example."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from fastgd.sweep import stats


def make_runs(epochs, *, seconds_per_epoch=1e-3, learning_rates=(0.1,), seed=0):
    """A runs frame as load_runs gives it: ``epochs`` maps (dataset, rule) → epochs to target per seed."""
    rng = np.random.default_rng(seed)
    rows = []
    for (dataset, rule), per_seed in epochs.items():
        for learning_rate in learning_rates:
            slower = 1.0 if learning_rate == max(learning_rates) else 2.0  # the largest rate is the best
            for seed_number, value in enumerate(per_seed):
                value = value * slower
                reached = math.isfinite(value)
                rows.append(dict(
                    dataset=dataset, rule=rule, learning_rate=learning_rate, hyperparameters={}, batch_size=32,
                    seed=seed_number, n_epochs=50, status="ok", final_loss=0.01 * value if reached else 1.0,
                    best_loss=0.01, test_metric=0.9, epochs_to_target=value if reached else None,
                    seconds_to_target=value * seconds_per_epoch * (1 + 0.05 * rng.random()) if reached else None))
    return pd.DataFrame(rows)


# --- bootstrap ----------------------------------------------------------------------------------

def test_bootstrap_matches_scipy_and_is_reproducible():
    values = [1.0, 2.5, 2.0, 4.0, 3.5, 0.5, 2.2]
    interval = stats.bootstrap_ci(values, seed=3)
    expected = scipy_stats.bootstrap((np.array(values),), np.mean, method="BCa",
                                     rng=np.random.default_rng(3)).confidence_interval
    assert interval.mean == pytest.approx(np.mean(values))
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high))
    assert interval.low < interval.mean < interval.high
    assert stats.bootstrap_ci(values, seed=3) == interval
    assert interval.n == 7 and interval.note == ""


def test_bootstrap_degenerate_samples_say_why():
    one = stats.bootstrap_ci([2.0])
    assert one.mean == 2.0 and math.isnan(one.low) and math.isnan(one.high) and "one value" in one.note
    constant = stats.bootstrap_ci([3.0] * 5)
    assert (constant.low, constant.mean, constant.high) == (3.0, 3.0, 3.0) and "equal" in constant.note
    empty = stats.bootstrap_ci([np.nan, np.nan])
    assert empty.n == 0 and math.isnan(empty.mean) and empty.note == "no values"
    infinite = stats.bootstrap_ci([1.0, np.inf])
    assert infinite.mean == np.inf and math.isnan(infinite.low) and "infinite" in infinite.note
    with_missing = stats.bootstrap_ci([1.0, np.nan, 2.0, 3.0])
    assert with_missing.n == 3 and with_missing.mean == 2.0


def test_bootstrap_two_values_gives_an_interval_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interval = stats.bootstrap_ci([1.0, 2.0])
    assert 1.0 <= interval.low <= interval.high <= 2.0


@pytest.mark.parametrize("bad", [dict(confidence_level=1.5), dict(method="studentized")])
def test_bootstrap_refuses_bad_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        stats.bootstrap_ci([1.0, 2.0, 3.0], **bad)


# --- ranks, Friedman, Nemenyi --------------------------------------------------------------------

def test_critical_difference_matches_demsar():
    # Demšar (2006), section 3.2.2: k = 4, N = 14, q_0.05 = 2.569, CD = 1.25
    assert stats.critical_difference(4, 14) == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 14)), abs=1e-3)
    assert stats.critical_difference(4, 14) == pytest.approx(1.25, abs=0.01)
    # his Table 5: q_0.05 for k = 2 .. 5 is 1.960, 2.343, 2.569, 2.728
    for k, q in zip(range(2, 6), (1.960, 2.343, 2.569, 2.728)):
        assert stats.critical_difference(k, 6) / math.sqrt(k * (k + 1) / 36) == pytest.approx(q, abs=1e-3)


def test_friedman_statistic_matches_demsars_example():
    chi2, f = stats.friedman_statistic([3.143, 2.000, 2.893, 1.964], 14)
    assert chi2 == pytest.approx(9.28, abs=0.01)
    assert f == pytest.approx(3.69, abs=0.01)


def test_mean_ranks_average_ties_and_put_missing_last():
    scores = pd.DataFrame({"a": [1.0, 2.0, 5.0], "b": [1.0, 3.0, np.inf], "c": [2.0, 1.0, np.nan]})
    ranks = stats.mean_ranks(scores)
    # row 1: a, b tie at 1.5, c 3; row 2: c 1, a 2, b 3; row 3: a 1, b and c tie last at 2.5
    assert ranks.to_dict() == pytest.approx({"a": (1.5 + 2 + 1) / 3, "b": (1.5 + 3 + 2.5) / 3, "c": (3 + 1 + 2.5) / 3})
    assert list(ranks.index) == ["a", "c", "b"]
    higher = stats.mean_ranks(pd.DataFrame({"a": [0.9], "b": [0.8]}), lower_is_better=False)
    assert higher.to_dict() == {"a": 1.0, "b": 2.0}


def test_rank_test_matches_scipy_friedman():
    rng = np.random.default_rng(1)
    scores = pd.DataFrame(rng.random((6, 4)).round(1), columns=list("abcd"))  # rounding makes ties
    result = stats.rank_test(scores)
    expected = scipy_stats.friedmanchisquare(*scores.to_numpy().T)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.pvalue == pytest.approx(expected.pvalue)
    chi2 = result.statistic
    assert result.iman_davenport == pytest.approx(5 * chi2 / (6 * 3 - chi2))
    assert result.cd == pytest.approx(stats.critical_difference(4, 6))


def test_rank_test_separates_a_clear_order_and_groups_the_rest():
    # a always first, b and c swap places, d always last, on 12 data sets
    rows = [[1, 2, 3, 4] if i % 2 else [1, 3, 2, 4] for i in range(12)]
    result = stats.rank_test(pd.DataFrame(rows, columns=list("abcd"), dtype=float))
    assert result.significant
    assert result.mean_ranks.to_dict() == {"a": 1.0, "b": 2.5, "c": 2.5, "d": 4.0}
    assert result.cd == pytest.approx(stats.critical_difference(4, 12))  # 1.35
    assert result.cliques == [["b", "c"]]
    assert result.different("a", "d") and not result.different("b", "c")


def test_cliques_are_maximal_runs_within_the_critical_difference():
    ranks = {"a": 1.0, "b": 1.5, "c": 2.2, "d": 3.0, "e": 4.5}
    assert stats.cliques(ranks, 1.25) == [["a", "b", "c"], ["c", "d"]]
    assert stats.cliques(ranks, 0.1) == []


def test_rank_test_with_two_rules_gives_ranks_and_a_reason():
    result = stats.rank_test(pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 3.0]}))
    assert math.isnan(result.pvalue) and "three rules" in result.note
    assert result.mean_ranks.to_dict() == {"a": 1.0, "b": 2.0}
    assert not result.significant and result.cliques == [["a", "b"]]
    # counts in words: one data set, not "1 data sets"
    one = stats.rank_test(pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0]}))
    assert one.note.endswith("got 3 rules on 1 data set")


def test_a_critical_difference_diagram_of_one_data_set_says_one_data_set(tmp_path, monkeypatch):
    pytest.importorskip("seaborn")
    import matplotlib.figure

    from fastgd.report import rank_figure

    runs = make_runs({("iris", rule): [float(epochs)] * 3 for rule, epochs in (("a", 3), ("b", 5), ("c", 9))})
    titles = []
    savefig = matplotlib.figure.Figure.savefig

    def saving(figure, *args, **kwargs):  # the title as drawn, read when the figure is saved
        titles.append(figure.axes[0].get_title())
        return savefig(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", saving)
    rank_figure.draw_critical_difference(runs, tmp_path)
    assert "over 1 data set (" in titles[0] and "1 data sets" not in titles[0]


def test_rank_test_refuses_what_is_not_a_matrix():
    with pytest.raises(ValueError, match="DataFrame"):
        stats.rank_test([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="two rules"):
        stats.rank_test(pd.DataFrame({"a": [1.0]}))


# --- pairwise tests, Holm ---------------------------------------------------------------------------

def test_holm_matches_hand_computation():
    # sorted 0.01, 0.02, 0.04 with m = 3: 0.03, max(0.03, 0.04) = 0.04, max(0.04, 0.04) = 0.04
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    adjusted = stats.holm([0.5, np.nan, 0.6])
    assert adjusted[0] == pytest.approx(1.0) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(1.0)


def test_compare_samples_against_scipy():
    first, second = [10.0, 12, 11, 13, 12], [15.0, 14, 16, 15, 17]
    assert stats.compare_samples(first, second) == pytest.approx(
        scipy_stats.mannwhitneyu(first, second, alternative="two-sided").pvalue)
    assert stats.compare_samples(first, second, "welch") == pytest.approx(
        scipy_stats.ttest_ind(first, second, equal_var=False).pvalue)
    assert stats.compare_samples(first, list(reversed(first))) == 1.0
    # a seed that never reached the target counts as slower than every other
    assert stats.compare_samples([1.0, 2.0, 3.0], [4.0, 5.0, np.inf]) == pytest.approx(
        scipy_stats.mannwhitneyu([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], alternative="two-sided").pvalue)
    assert math.isnan(stats.compare_samples([1.0, 2.0], [3.0, np.inf], "welch"))


# Freireich et al. (1963), remission times in weeks as Kleinbaum and Klein ("Survival Analysis", 3rd ed., ch. 2)
# tabulate them; False: censored (still in remission when last seen)
SIX_MP = [(6, True)] * 3 + [(6, False), (7, True), (9, False), (10, True), (10, False), (11, False), (13, True),
                            (16, True), (17, False), (19, False), (20, False), (22, True), (23, True), (25, False),
                            (32, False), (32, False), (34, False), (35, False)]
PLACEBO = [(weeks, True) for weeks in (1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23)]


def test_logrank_test_matches_the_textbook():
    # Kleinbaum and Klein: O1 = 9, E1 = 19.25 (so O1 - E1 = -10.25), variance 6.2570, log-rank statistic 16.79
    statistic, pvalue, observed_minus_expected = stats.logrank_test(*zip(*SIX_MP), *zip(*PLACEBO))
    assert observed_minus_expected == pytest.approx(9 - 19.25, abs=5e-3)
    assert statistic == pytest.approx(16.79, abs=5e-3)
    assert pvalue == pytest.approx(scipy_stats.chi2.sf(16.79, 1), rel=5e-3)  # the book rounds to 16.79
    assert stats.logrank_test(*zip(*PLACEBO), *zip(*SIX_MP))[2] == pytest.approx(10.25, abs=5e-3)  # the other side
    # a censored time past every event is at risk throughout: the same as censoring it at infinity
    far = [(weeks if reached else math.inf, reached) for weeks, reached in SIX_MP]
    assert stats.logrank_test(*zip(*far), *zip(*PLACEBO))[0] > statistic
    assert math.isnan(stats.logrank_test([np.inf], [False], [np.inf], [False])[1])  # no event: nothing to test


@pytest.mark.parametrize("test", ["mannwhitney", "logrank"])
def test_censored_samples_name_the_rule_that_reaches_the_target_more_often(test):
    # both means are infinite (each missed on some seed): the better rule comes from the test, not from the means
    often, seldom = [3.0] * 9 + [np.inf], [4.0] + [np.inf] * 9
    pvalue, direction = stats.compare(often, seldom, test)
    assert pvalue < 0.01 and direction == -1 and stats.compare(seldom, often, test)[1] == 1
    runs = make_runs({("iris", "often"): often, ("iris", "seldom"): seldom})
    pair = stats.pairwise_tests(runs, test=test).iloc[0]
    assert math.isinf(pair["mean_a"]) and math.isinf(pair["mean_b"])
    assert pair["significant"] and pair["better"] == "often"
    assert (pair["reached_a"], pair["reached_b"], pair["n_a"]) == (9, 1, 10)
    table = stats.winners(runs, test=test)
    assert table["winner"].item() == "often" and table["significant"].item()
    assert "seldom (the target missed on 1 of 10 seeds, 3 epochs on the others against the target missed on 9" \
        in table["verdict"].item()


def test_when_no_seed_reached_the_target_there_is_nothing_to_compare():
    never = [np.inf] * 5
    assert math.isnan(stats.compare_samples(never, never)) and math.isnan(stats.compare_samples(never, never,
                                                                                                "logrank"))
    runs = make_runs({("iris", "a"): never, ("iris", "b"): never, ("iris", "c"): [2.0] * 5})
    pairs = stats.pairwise_tests(runs)
    both_missed = pairs[(pairs["rule_a"] == "a") & (pairs["rule_b"] == "b")].iloc[0]
    assert math.isnan(both_missed["pvalue"]) and not both_missed["significant"] and pd.isna(both_missed["better"])
    assert "1 with nothing to compare" in stats.significance_lines(pairs)[0]
    alone = stats.winners(make_runs({("iris", "a"): never, ("iris", "b"): never}))
    assert alone["winner"].item() is None and not alone["significant"].item()
    assert alone["verdict"].item() == "iris: no rule reached the target on any seed: nothing to compare"


SEEDS = 10


def _clear_winner_runs():
    rng = np.random.default_rng(7)
    epochs = {}
    for dataset in ("iris", "digits", "wine"):
        epochs[(dataset, "fast")] = list(rng.integers(8, 11, SEEDS).astype(float))
        epochs[(dataset, "slow")] = list(rng.integers(20, 24, SEEDS).astype(float))
        epochs[(dataset, "middle")] = list(rng.integers(14, 17, SEEDS).astype(float))
    return make_runs(epochs, learning_rates=(0.01, 0.1))


def test_a_clear_winner_is_found_and_flagged_significant():
    runs = _clear_winner_runs()
    table = stats.winners(runs)
    assert list(table["winner"]) == ["fast"] * 3 and list(table["runner_up"]) == ["middle"] * 3
    assert table["significant"].all() and (table["decided_by"] == "epochs_to_target").all()
    assert all("fast wins on epochs to target over middle" in verdict for verdict in table["verdict"])
    assert (table["seconds_low"] <= table["seconds"]).all() and (table["seconds"] <= table["seconds_high"]).all()
    pairwise = stats.pairwise_tests(runs)
    assert pairwise["significant"].all()
    assert set(pairwise.loc[pairwise["rule_a"] == "fast", "better"]) == {"fast"}
    assert all("0 of 3 pairs not significantly different" in line for line in stats.significance_lines(pairwise))


def test_a_lead_is_tested_as_the_pairwise_tests_test_it_holm_corrected():
    # a against b alone: Mann-Whitney p = 0.032; but b is picked as runner-up among rules alike (b_again), and
    # over the data set's three pairs Holm's correction gives 3 x 0.032 = 0.095
    lead, behind = [2.0] * 8 + [3.0] * 2, [3.0] * 7 + [2.0] * 3
    assert scipy_stats.mannwhitneyu(lead, behind).pvalue == pytest.approx(0.0318, abs=1e-4)
    runs = make_runs({("iris", "a"): lead, ("iris", "b"): behind, ("iris", "b_again"): behind})
    table = stats.winners(runs)
    assert table["winner"].item() == "a" and table["runner_up"].item() == "b"
    assert table["pvalue"].item() == pytest.approx(3 * 0.0318, abs=1e-3) and not table["significant"].item()
    assert "a and b: no significant difference in epochs to target (Holm-corrected p = 0.095)" in \
        table["verdict"].item()
    pairs = stats.pairwise_tests(runs)
    assert not pairs[(pairs["rule_a"] == "a") & (pairs["rule_b"] == "b")]["significant"].item()


def test_a_runner_up_that_missed_the_target_on_some_seeds_is_said_so_not_given_infinite_epochs():
    epochs = {("iris", "fast"): [5.0] * 6 + [6.0] * 4, ("iris", "unsteady"): [20.0] * 7 + [math.inf] * 3}
    verdict = stats.winners(make_runs(epochs))["verdict"].item()
    assert verdict.startswith("iris: fast wins on epochs to target over unsteady (5.4 epochs against the target "
                              "missed on 3 of 10 seeds, 20 epochs on the others, Holm-corrected p = ")
    assert "inf" not in verdict


def test_one_rule_under_two_names_is_no_significant_difference():
    base = _clear_winner_runs()
    twin = base[base["rule"] == "fast"].assign(rule="fast_twin")
    runs = pd.concat([base, twin], ignore_index=True)
    table = stats.winners(runs)
    assert set(table["winner"]) <= {"fast", "fast_twin"} and set(table["runner_up"]) <= {"fast", "fast_twin"}
    assert not table["significant"].any()
    assert all("no significant difference" in verdict for verdict in table["verdict"])
    pairwise = stats.pairwise_tests(runs)
    twins = pairwise[(pairwise["rule_a"] == "fast") & (pairwise["rule_b"] == "fast_twin")]
    assert len(twins) == 3 and not twins["significant"].any() and (twins["pvalue"] == 1.0).all()
    ranks = stats.rank_test(stats.score_matrix(runs))
    assert not ranks.different("fast", "fast_twin")
    assert ranks.mean_ranks["fast"] == ranks.mean_ranks["fast_twin"]


def test_best_configuration_is_chosen_on_epochs_and_intervals_cover_its_seeds():
    runs = _clear_winner_runs()
    best = stats.best_configuration_runs(runs)
    assert set(best["learning_rate"]) == {0.1} and len(best) == 9 * SEEDS
    table = stats.intervals(runs)
    assert set(table["measure"]) == set(stats.MEASURES) and len(table) == 9 * len(stats.MEASURES)
    row = table[(table["dataset"] == "iris") & (table["rule"] == "fast") & (table["measure"] == "epochs_to_target")]
    seeds = best[(best["dataset"] == "iris") & (best["rule"] == "fast")]["epochs_to_target"]
    assert row["mean"].item() == pytest.approx(seeds.mean()) and row["n"].item() == SEEDS
    assert row["low"].item() <= row["mean"].item() <= row["high"].item()


def test_a_rule_that_misses_the_target_ranks_last():
    epochs = {("iris", "good"): [5.0, 6.0, 5.0], ("iris", "never"): [np.inf] * 3, ("iris", "ok"): [9.0, 9.0, 8.0]}
    runs = make_runs(epochs)
    matrix = stats.score_matrix(runs)
    assert matrix.loc["iris", "never"] == np.inf
    table = stats.winners(runs)
    assert table["winner"].item() == "good" and table["runner_up"].item() == "ok"
    never = stats.intervals(runs, measures=["epochs_to_target"]).set_index("rule").loc["never"]
    assert never["n"] == 0 and never["n_seeds"] == 3 and never["note"] == "no seed reached the target"


def test_stats_refuse_a_frame_without_results():
    with pytest.raises(ValueError, match="lacks"):
        stats.intervals(pd.DataFrame({"dataset": ["a"], "rule": ["sgd"]}))


# --- AlgoPerf -------------------------------------------------------------------------------------

def test_algoperf_score_by_hand():
    costs = pd.DataFrame({"a": [10.0, 20.0, 30.0], "b": [20.0, 10.0, np.inf], "c": [50.0, 25.0, 30.0]},
                         index=["w1", "w2", "w3"])
    # ratios a: 1, 2, 1; b: 2, 1, inf; c: 5, 2.5, 1; each workload adds max(0, 4 - r) / 3, averaged over 3
    expected = {"a": (3 + 2 + 3) / 9, "b": (2 + 3 + 0) / 9, "c": (0 + 1.5 + 3) / 9}
    assert stats.algoperf_score(costs).to_dict() == pytest.approx(expected)


def test_algoperf_score_is_the_integral_of_the_profile():
    costs = pd.DataFrame({"a": [1.0, 3.0, 2.0, 7.0], "b": [2.0, 1.0, 5.0, 1.0]})
    taus = np.linspace(1.0, 4.0, 300001)
    ratios = costs.div(costs.min(axis=1), axis=0)
    for rule in costs:
        profile = (ratios[rule].to_numpy()[:, None] <= taus).mean(axis=0)
        assert stats.algoperf_score(costs)[rule] == pytest.approx(np.trapezoid(profile, taus) / 3, abs=1e-4)


def test_algoperf_scores_from_runs_put_the_fastest_first():
    scores = stats.algoperf_scores(_clear_winner_runs())
    assert scores.index[0] == "fast" and scores["fast"] == 1.0
    with pytest.raises(ValueError, match="tau_max"):
        stats.algoperf_score(pd.DataFrame({"a": [1.0], "b": [2.0]}), tau_max=1.0)


# --- the critical-difference diagram -----------------------------------------------------------------

def test_critical_difference_diagram_writes_its_files_and_ranks(tmp_path):
    from fastgd.report import rank_figure

    runs = _clear_winner_runs()
    figure = rank_figure.draw_critical_difference(runs, tmp_path)
    for name in (figure.png, figure.svg, figure.csv):
        assert (tmp_path / name).stat().st_size > 0
    table = pd.read_csv(tmp_path / figure.csv)
    assert table["rule"].tolist() == ["fast", "middle", "slow"]
    assert table["mean_rank"].tolist() == [1.0, 2.0, 3.0]
    assert table["critical_difference"].iloc[0] == pytest.approx(stats.critical_difference(3, 3))
    assert "not significantly different" in figure.caption
    with pytest.raises(ValueError, match="unknown measure"):
        rank_figure.draw_critical_difference(runs, tmp_path, measure="speed")


def test_best_configuration_runs_are_the_given_rows():
    runs = _clear_winner_runs()
    runs.loc[runs["rule"] == "slow", "hyperparameters"] = [{"momentum": 0.9}] * int((runs["rule"] == "slow").sum())
    best = stats.best_configuration_runs(runs)
    assert set(best["learning_rate"]) == {0.1}
    assert best.loc[best["rule"] == "slow", "hyperparameters"].tolist() == [{"momentum": 0.9}] * 3 * SEEDS


def test_a_verdict_never_names_as_winner_the_rule_its_test_puts_behind():
    # steady has the lower mean (5 against 10.9), but quick is faster on 9 seeds of 10: the rank test puts quick
    # ahead, and the verdict follows the test, not the mean an outlier made
    runs = make_runs({("iris", "steady"): [5.0] * 10, ("iris", "quick"): [1.0] * 9 + [100.0]})
    pair = stats.pairwise_tests(runs).iloc[0]
    assert pair["significant"] and pair["better"] == "quick"
    table = stats.winners(runs)
    assert table["winner"].item() == "quick" and table["runner_up"].item() == "steady" and table["significant"].item()
    verdict = table["verdict"].item()
    assert verdict.startswith("iris: quick wins on epochs to target over steady (10.9 epochs against 5 epochs, "
                              "Holm-corrected p = ")
    assert verdict.endswith("; ahead on most seeds though not on the mean: medians 1 against 5 epochs)")


@pytest.mark.parametrize("pvalue, text", [(0.0496, "0.0496"), (0.0504, "0.0504"), (0.049999, "0.049999"),
                                          (0.05, "0.05"), (0.0449, "0.045"), (0.003, "0.003"), (0.12, "0.12")])
def test_a_p_value_is_never_shown_on_alpha_or_across_it(pvalue, text):
    """Two significant digits, unless they would print a significant p as 0.05 (or round one across α):
    a verdict that names a winner must not quote p = 0.05 beside it."""
    from fastgd.sweep.stats import p_text

    assert p_text(pvalue) == text
    assert (float(p_text(pvalue)) < 0.05) == (pvalue < 0.05)
