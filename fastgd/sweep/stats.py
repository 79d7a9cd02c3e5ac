r"""Statistics a reviewer would ask of a comparison: intervals over seeds, rank tests across data sets, winners.

All functions are pure (NumPy, SciPy, pandas). The ones that take ``runs``
take the frame of :func:`fastgd.sweep.load_runs`, one row per run; each
(data set, rule) is represented by the seeds of its best configuration
(:func:`best_configuration_runs`).

* :func:`bootstrap_ci`: the 95% bootstrap interval of a mean
  (:func:`scipy.stats.bootstrap`, BCa, seeded).
* :func:`intervals`: per data set and rule, the mean and interval of final
  loss, test metric, epochs and seconds to the target.
* :func:`rank_test`: across data sets, the Friedman test on a data sets ×
  rules matrix of scores, mean ranks, the Nemenyi critical difference and
  the groups of rules it cannot tell apart (Demšar 2006).
* :func:`pairwise_tests`: per data set, every pair of rules compared over
  seeds (:func:`compare`: Mann–Whitney U, which with every seed that missed
  the target ranked last is Gehan's test for censored data; the log-rank
  test, :func:`logrank_test`; or Welch's t), Holm-corrected within the data
  set, the better rule named from the test's own side;
  :func:`significance_lines` says in words which differences hold.
* :func:`algoperf_scores`: AlgoPerf's benchmark score, the performance
  profile integrated up to τ = 4 (Dahl et al. 2023).
* :func:`winners`: per data set, the winner on the share of seeds reaching
  the target, then on a deterministic measure (epochs to target) with
  wall-clock time second, and whether its lead over the runner-up is
  significant.

References
----------
J. Demšar (2006), "Statistical Comparisons of Classifiers over Multiple Data
Sets", JMLR 7:1–30. G. E. Dahl et al. (2023), "Benchmarking Neural Network
Training Algorithms", arXiv:2306.07179. S. Holm (1979), "A Simple
Sequentially Rejective Multiple Test Procedure". N. Mantel (1966),
"Evaluation of survival data and two new rank order statistics arising in
its consideration". E. A. Gehan (1965), "A generalized Wilcoxon test for
comparing arbitrarily singly-censored samples".
"""

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["p_text", "Interval", "bootstrap_ci", "best_configuration_runs", "intervals", "RankTest", "mean_ranks",
           "critical_difference", "cliques", "friedman_statistic", "rank_test", "score_matrix", "holm",
           "compare", "compare_samples", "logrank_test", "TESTS", "pairwise_tests", "significance_lines",
           "algoperf_score", "algoperf_scores", "winners",
           "MEASURES"]

# the measures intervals are given for, and which way is better
MEASURES = {"final_loss": "lower", "test_metric": "higher", "epochs_to_target": "lower",
            "seconds_to_target": "lower"}
_TO_TARGET = ("epochs_to_target", "seconds_to_target")


# --- intervals ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval; ``note`` says why the interval is empty or degenerate, if it is."""

    mean: float
    low: float
    high: float
    n: int
    note: str = ""


def _as_values(values, what="values"):
    try:
        array = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers, got {values!r}") from None
    return array


def bootstrap_ci(values, confidence_level=0.95, n_resamples=9999, method="BCa", seed=0):
    """The mean of ``values`` and its bootstrap confidence interval (:func:`scipy.stats.bootstrap`).

    NaN values (runs without a result) are left out and ``n`` counts the
    rest. Where the bootstrap has nothing to resample the interval says so in
    ``note`` instead of raising: no values (all NaN), one value (no
    interval: NaN), all values equal (the interval collapses to the value),
    an infinite value (the mean is infinite, no interval). BCa falls back to
    the percentile method where its acceleration is undefined. The same
    ``seed``, the same interval.
    """
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level!r}")
    if method not in ("BCa", "percentile", "basic"):
        raise ValueError(f"method must be 'BCa', 'percentile' or 'basic', got {method!r}")
    array = _as_values(values)
    array = array[~np.isnan(array)]
    n = int(array.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "no values")
    mean = float(np.mean(array))
    if not np.all(np.isfinite(array)):
        return Interval(mean, math.nan, math.nan, n, "an infinite value: no interval")
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, "one value: no interval")
    if np.all(array == array[0]):
        return Interval(mean, mean, mean, n, "all values equal")
    from scipy import stats

    note = ""
    for attempt in (method, "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DegenerateDataWarning: handled below by the fallback
            result = stats.bootstrap((array,), np.mean, confidence_level=confidence_level, n_resamples=n_resamples,
                                     method=attempt, vectorized=True, rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            break
        note = f"{method} undefined for these values: percentile interval"
    return Interval(mean, low, high, n, note if attempt != method else "")


def _keyed_runs(runs):
    from fastgd.sweep.metrics import _keyed

    required = {"dataset", "rule", "status", "best_loss", *MEASURES}
    if not required <= set(runs):
        raise ValueError(f"a runs frame needs the columns {sorted(required)}; it lacks "
                         f"{sorted(required - set(runs))}")
    return _keyed(runs[runs["status"] != "failed"])


def best_configuration_runs(runs, measure="epochs_to_target"):
    """The runs (one per seed) of each (data set, rule)'s best configuration.

    Best: among configurations whose every seed reached the target, the
    lowest mean of ``measure`` (then of seconds to target); where none did,
    the lowest mean final loss. Epochs to target, unlike seconds, do not move
    with the machine's load, so the choice is the same in every run of a
    sweep with the same results.
    Failed runs are left out; the rows are ``runs``' own.
    """
    import pandas as pd

    from fastgd.sweep.metrics import best_configurations, config_columns, summarize

    if measure not in _TO_TARGET:
        raise ValueError(f"measure must be one of {list(_TO_TARGET)}, got {measure!r}")
    keyed = _keyed_runs(runs)
    if keyed.empty:
        return runs.loc[keyed.index]
    columns = config_columns(keyed)
    summary = summarize(runs)
    chosen = [row[columns] for row in best_configurations(summary, measure)]
    # matched on the keyed columns (hyperparameters as JSON text), returned as the runs were given
    matched = keyed.reset_index().merge(pd.DataFrame(chosen), on=columns, how="inner")
    return runs.loc[matched["index"]].reset_index(drop=True)


def intervals(runs, measures=tuple(MEASURES), confidence_level=0.95, seed=0):
    """Long frame (dataset, rule, measure, mean, low, high, n, note) over the seeds of the best configurations.

    For the to-target measures, ``n`` counts the seeds that reached the
    target (the others have no time to average); ``n_seeds`` counts all.
    """
    import pandas as pd

    unknown = [measure for measure in measures if measure not in MEASURES]
    if unknown:
        raise ValueError(f"unknown measure(s) {unknown} (one of {list(MEASURES)})")
    best = best_configuration_runs(runs)
    records = []
    for (dataset, rule), group in best.groupby(["dataset", "rule"], sort=True):
        for measure in measures:
            interval = bootstrap_ci(group[measure].astype(float), confidence_level=confidence_level, seed=seed)
            note = "no seed reached the target" if measure in _TO_TARGET and interval.n == 0 else interval.note
            records.append((dataset, rule, measure, interval.mean, interval.low, interval.high, interval.n,
                            len(group), note))
    return pd.DataFrame(records, columns=["dataset", "rule", "measure", "mean", "low", "high", "n", "n_seeds",
                                          "note"])


def _counted(count, noun):
    """'1 data set', '2 data sets'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --- ranks across data sets --------------------------------------------------------------------

def _matrix(scores):
    import pandas as pd

    if not isinstance(scores, pd.DataFrame):
        raise ValueError("scores must be a DataFrame: one row per data set, one column per rule")
    if scores.shape[0] < 1 or scores.shape[1] < 2:
        raise ValueError(f"scores need at least one data set and two rules, got {scores.shape[0]} x "
                         f"{scores.shape[1]}")
    try:
        return scores.astype(float)
    except (TypeError, ValueError):
        raise ValueError("scores must be numbers") from None


def mean_ranks(scores, lower_is_better=True):
    """Each rule's rank on each data set (1 = best, ties averaged; NaN and the wrong infinity count as worst),
    averaged over data sets; sorted best first."""
    from scipy.stats import rankdata

    matrix = _matrix(scores)
    values = matrix.to_numpy()
    values = values if lower_is_better else -values
    values = np.where(np.isnan(values), np.inf, values)
    ranks = rankdata(values, axis=1, method="average")
    import pandas as pd

    return pd.Series(ranks.mean(axis=0), index=matrix.columns, name="mean_rank").sort_values(kind="stable")


def critical_difference(n_rules, n_datasets, alpha=0.05):
    r"""The Nemenyi test's critical difference of mean ranks (Demšar 2006, section 3.2.2).

    .. math::
        CD = q_\alpha \sqrt{\frac{k(k+1)}{6N}}, \quad
        q_\alpha = \frac{Q_{1-\alpha}(k, \infty)}{\sqrt 2}

    with :math:`Q` the studentized range distribution, ``k`` rules and ``N``
    data sets. Two rules whose mean ranks differ by at least CD differ
    significantly. k = 4, N = 14, α = 0.05: q = 2.569, CD = 1.254.
    """
    from scipy.stats import studentized_range

    if not (isinstance(n_rules, (int, np.integer)) and n_rules >= 2):
        raise ValueError(f"n_rules must be an integer >= 2, got {n_rules!r}")
    if not (isinstance(n_datasets, (int, np.integer)) and n_datasets >= 1):
        raise ValueError(f"n_datasets must be an integer >= 1, got {n_datasets!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    q_alpha = studentized_range.ppf(1 - alpha, n_rules, np.inf) / math.sqrt(2)
    return float(q_alpha * math.sqrt(n_rules * (n_rules + 1) / (6 * n_datasets)))


def cliques(ranks, cd):
    """The maximal groups (two rules or more) of ``ranks`` (rule → mean rank) whose ranks lie within less than
    ``cd`` of one another: the rules the test cannot tell apart. Best ranks first."""
    ordered = sorted(ranks.items(), key=lambda item: item[1])
    groups = []
    for start in range(len(ordered)):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1][1] - ordered[start][1] < cd:
            end += 1
        if end > start and not (groups and groups[-1][1] >= end):
            groups.append((start, end))
    return [[name for name, _ in ordered[start:end + 1]] for start, end in groups]


def friedman_statistic(ranks, n_datasets):
    r"""Friedman's statistic and Iman and Davenport's F from mean ranks, as Demšar (2006, eq. 1–2) writes them.

    .. math::
        \chi^2_F = \frac{12N}{k(k+1)} \Big[\sum_j R_j^2 - \frac{k(k+1)^2}{4}\Big], \quad
        F_F = \frac{(N-1)\chi^2_F}{N(k-1) - \chi^2_F}

    Without SciPy's correction for ties (:func:`rank_test` uses SciPy's).
    Demšar's example, ranks 3.143, 2.000, 2.893, 1.964 on 14 data sets:
    9.28 and 3.69.
    """
    ranks = _as_values(ranks, "mean ranks")
    k = ranks.size
    if k < 2 or not (isinstance(n_datasets, (int, np.integer)) and n_datasets >= 1):
        raise ValueError(f"need two mean ranks or more and n_datasets >= 1, got {k} and {n_datasets!r}")
    chi2 = 12 * n_datasets / (k * (k + 1)) * (float(np.sum(ranks ** 2)) - k * (k + 1) ** 2 / 4)
    denominator = n_datasets * (k - 1) - chi2
    return chi2, ((n_datasets - 1) * chi2 / denominator if denominator > 0 else math.inf)


@dataclass
class RankTest:
    """The Friedman test over data sets and the Nemenyi post-hoc test (see :func:`rank_test`)."""

    mean_ranks: object  # pandas Series, rule → mean rank, best first
    n_datasets: int
    n_rules: int
    statistic: float  # Friedman's chi-square (SciPy's, corrected for ties)
    pvalue: float
    iman_davenport: float  # Iman and Davenport's F, the less conservative form Demšar recommends
    iman_davenport_pvalue: float
    alpha: float
    cd: float
    cliques: list = field(default_factory=list)
    note: str = ""

    @property
    def significant(self):
        """Whether the Friedman test rejects "all rules perform alike" at ``alpha``."""
        return bool(self.pvalue < self.alpha)

    def different(self, first, second):
        """Whether the Nemenyi test separates two rules (and the Friedman test rejected equality)."""
        return self.significant and abs(self.mean_ranks[first] - self.mean_ranks[second]) >= self.cd

    def summary(self):
        """One line in words."""
        if self.note:
            return self.note
        ranks = ", ".join(f"{rule} {rank:.2f}" for rule, rank in self.mean_ranks.items())
        verdict = (f"the rules differ (Friedman p = {self.pvalue:.3g})" if self.significant else
                   f"no significant difference among the rules (Friedman p = {self.pvalue:.3g})")
        return (f"{verdict} over {_counted(self.n_datasets, 'data set')}; mean ranks {ranks}; critical difference "
                f"{self.cd:.2f}")


def rank_test(scores, lower_is_better=True, alpha=0.05):
    """Friedman test, mean ranks and Nemenyi critical difference on ``scores`` (rows: data sets, columns: rules).

    A rule without a score on a data set (NaN, or infinite: never reached
    the target) ranks last there. With fewer than three rules or two data
    sets, the Friedman statistic is NaN and ``note`` says why; the ranks and
    CD are still given.
    """
    from scipy import stats

    matrix = _matrix(scores)
    n_datasets, n_rules = matrix.shape
    ranks = mean_ranks(matrix, lower_is_better)
    cd = critical_difference(n_rules, n_datasets, alpha)
    statistic = pvalue = f_statistic = f_pvalue = math.nan
    note = ""
    values = matrix.to_numpy()
    values = values if lower_is_better else -values
    values = np.where(np.isnan(values), np.inf, values)
    if n_rules < 3 or n_datasets < 2:
        note = (f"the Friedman test needs three rules or more and two data sets or more; got "
                f"{_counted(n_rules, 'rule')} on {_counted(n_datasets, 'data set')}")
    elif np.all(values == values[:, :1]):
        statistic, pvalue = 0.0, 1.0
    else:
        # the test sees only ranks within each data set: ranks keep infinite scores last
        result = stats.friedmanchisquare(*stats.rankdata(values, axis=1).T)
        statistic, pvalue = float(result.statistic), float(result.pvalue)
        denominator = n_datasets * (n_rules - 1) - statistic
        if denominator > 0:
            f_statistic = (n_datasets - 1) * statistic / denominator
            f_pvalue = float(stats.f.sf(f_statistic, n_rules - 1, (n_rules - 1) * (n_datasets - 1)))
        else:
            f_statistic, f_pvalue = math.inf, 0.0
    # where the omnibus test finds nothing (or cannot be run), no pair is declared different
    groups = cliques(ranks.to_dict(), cd) if pvalue < alpha else [list(ranks.index)]
    return RankTest(ranks, n_datasets, n_rules, statistic, pvalue, f_statistic, f_pvalue, alpha, cd, groups, note)


def score_matrix(runs, measure="epochs_to_target"):
    """Data sets × rules matrix of each best configuration's mean ``measure`` over seeds, for :func:`rank_test`.

    For a to-target measure, a rule whose best configuration did not reach
    the target on every seed scores infinity there.
    """
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r} (one of {list(MEASURES)})")
    best = best_configuration_runs(runs)
    if measure in _TO_TARGET:
        values = best[measure].astype(float).fillna(np.inf)
    else:
        values = best[measure].astype(float)
    table = best.assign(value=values).groupby(["dataset", "rule"])["value"].mean().unstack("rule")
    return table.fillna(np.inf if measure in _TO_TARGET else np.nan)


# --- per data set, over seeds ------------------------------------------------------------------

def holm(pvalues):
    """Holm's step-down adjusted p-values, in the order given (NaN stays NaN and does not count)."""
    pvalues = _as_values(pvalues, "p-values")
    adjusted = np.full(pvalues.shape, np.nan)
    present = np.flatnonzero(~np.isnan(pvalues))
    order = present[np.argsort(pvalues[present], kind="stable")]
    m = len(order)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def logrank_test(times_a, reached_a, times_b, reached_b):
    r"""The log-rank test of two samples of times to an event, some censored: (chi-square, p-value, O_a - E_a).

    ``times_*``: when each subject reached the event or, where ``reached_*`` is
    False, when it was last seen without it (censored; an infinite time is
    at risk throughout). At each distinct event time :math:`t` with
    :math:`n` subjects at risk (:math:`n_a` of sample a) and :math:`d` events
    (:math:`d_a` in a), a's expected events are :math:`E = n_a d / n` with
    the hypergeometric variance :math:`V = n_a (n - n_a) d (n - d) / (n^2 (n - 1))`;

    .. math::
        \chi^2 = \frac{(\sum_t d_a - E)^2}{\sum_t V} \sim \chi^2_1

    (Mantel 1966; Kleinbaum and Klein, "Survival Analysis", ch. 2: on
    Freireich's remission data 16.79). ``O_a - E_a`` > 0: a reaches the event
    sooner than b. NaN (and 0) where there is no event or no variance.
    """
    from scipy.stats import chi2

    times_a, times_b = _as_values(times_a, "times"), _as_values(times_b, "times")
    reached_a = np.broadcast_to(np.asarray(reached_a, dtype=bool), times_a.shape)
    reached_b = np.broadcast_to(np.asarray(reached_b, dtype=bool), times_b.shape)
    if np.isnan(times_a).any() or np.isnan(times_b).any():
        raise ValueError("times must not be NaN")
    events = np.unique(np.concatenate([times_a[reached_a], times_b[reached_b]]))
    observed_minus_expected = variance = 0.0
    for time in events:
        at_risk_a, at_risk_b = int(np.sum(times_a >= time)), int(np.sum(times_b >= time))
        deaths_a = int(np.sum((times_a == time) & reached_a))
        deaths = deaths_a + int(np.sum((times_b == time) & reached_b))
        at_risk = at_risk_a + at_risk_b
        observed_minus_expected += deaths_a - at_risk_a * deaths / at_risk
        if at_risk > 1:
            variance += at_risk_a * at_risk_b * deaths * (at_risk - deaths) / (at_risk ** 2 * (at_risk - 1))
    if variance <= 0:
        return math.nan, math.nan, 0.0
    statistic = observed_minus_expected ** 2 / variance
    return float(statistic), float(chi2.sf(statistic, 1)), float(observed_minus_expected)


TESTS = ("mannwhitney", "welch", "logrank")


def compare(first, second, test="mannwhitney"):
    """(two-sided p-value, direction) of two samples; direction -1 where ``first`` tends lower, +1 higher, 0 where
    the test sees no side or cannot run.

    ``mannwhitney``: Mann-Whitney U, infinite values (seeds that never reached
    the target) ranked past every finite one: with every such seed censored
    at the same budget, after every time observed, this is Gehan's
    generalised Wilcoxon test for censored data; the side is U's, and the
    p-value never below the exact test's smallest, 2 / C(n1 + n2, n1) (SciPy's
    normal approximation, taken with ties, can claim more from a seed or
    two). ``welch``:
    Welch's t on means (NaN with an infinite value). ``logrank``:
    :func:`logrank_test`, an infinite value a censored seed.

    NaN (nothing to compare) where a sample is empty or both are entirely
    infinite: no seed of either reached the target, and inf against inf says
    nothing. Identical samples give p = 1.
    """
    from scipy import stats

    if test not in TESTS:
        raise ValueError(f"test must be one of {list(TESTS)}, got {test!r}")
    first, second = _as_values(first), _as_values(second)
    first, second = first[~np.isnan(first)], second[~np.isnan(second)]
    if first.size == 0 or second.size == 0:
        return math.nan, 0
    if not (np.isfinite(first).any() or np.isfinite(second).any()):
        return math.nan, 0
    if np.array_equal(np.sort(first), np.sort(second)):
        return 1.0, 0
    if test == "logrank":
        _, pvalue, observed_minus_expected = logrank_test(first, np.isfinite(first), second, np.isfinite(second))
        return pvalue, int(-np.sign(observed_minus_expected)) if math.isfinite(pvalue) else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if test == "mannwhitney":
            # the test uses ranks only: infinity becomes a value past every finite one
            finite = np.concatenate([first, second])
            finite = finite[np.isfinite(finite)]
            low, high = (finite.min() - 1, finite.max() + 1) if finite.size else (-1.0, 1.0)
            first, second = (np.where(values == np.inf, high, np.where(values == -np.inf, low, values))
                             for values in (first, second))
            result = stats.mannwhitneyu(first, second, alternative="two-sided")
            # with ties SciPy takes the normal approximation, which with few seeds a side (one seed against ten
            # tied ones: p = 0.004) claims more than the exact test could: its smallest p-value, the most extreme
            # of the C(n1 + n2, n1) equally likely orderings on either side, bounds it from below
            smallest = min(1.0, 2.0 / math.comb(first.size + second.size, first.size))
            return max(float(result.pvalue), smallest), int(np.sign(result.statistic - first.size * second.size / 2))
        if not (np.all(np.isfinite(first)) and np.all(np.isfinite(second))) or first.size < 2 or second.size < 2:
            return math.nan, 0
        pvalue = float(stats.ttest_ind(first, second, equal_var=False).pvalue)
        if not math.isfinite(pvalue):
            return math.nan, 0
        return pvalue, int(np.sign(np.mean(first) - np.mean(second)))


def compare_samples(first, second, test="mannwhitney"):
    """Two-sided p-value of :func:`compare`: that two samples come from one distribution (``mannwhitney``,
    ``logrank``) or share a mean (``welch``); NaN where there is nothing to compare."""
    return compare(first, second, test)[0]


def _seed_values(group, measure):
    values = group[measure].astype(float)
    return values.fillna(np.inf) if measure in _TO_TARGET else values


def pairwise_tests(runs, measure="epochs_to_target", test="mannwhitney", alpha=0.05):
    """Per data set, every pair of rules compared over the seeds of their best configurations.

    Columns: dataset, rule_a, rule_b, mean_a, mean_b (means over seeds;
    infinite where a seed never reached the target), reached_a, reached_b and
    n_a, n_b (the seeds with a finite value, of how many), pvalue (of
    :func:`compare`; NaN where there is nothing to compare: neither rule
    reached the target on any seed), pvalue_holm (Holm-corrected over the
    data set's comparable pairs), significant, better (where significant, the
    rule the test puts ahead, from the test's own statistic and not from the
    means, which are both infinite when both rules missed on some seed; else
    None).
    """
    import pandas as pd

    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r} (one of {list(MEASURES)})")
    lower = MEASURES[measure] == "lower"
    best = best_configuration_runs(runs)
    records = []
    for dataset, of_dataset in best.groupby("dataset", sort=True):
        samples = {rule: _seed_values(group, measure).to_numpy() for rule, group in of_dataset.groupby("rule")}
        names = sorted(samples)
        pairs = [(a, b) for index, a in enumerate(names) for b in names[index + 1:]]
        compared = [compare(samples[a], samples[b], test) for a, b in pairs]
        adjusted = holm([pvalue for pvalue, _ in compared])
        for (a, b), (pvalue, direction), corrected in zip(pairs, compared, adjusted):
            significant = bool(corrected < alpha) and direction != 0
            better = None
            if significant:
                better = a if (direction < 0) == lower else b
            reached_a, reached_b = (int(np.sum(np.isfinite(samples[rule]))) for rule in (a, b))
            records.append((dataset, a, b, float(np.mean(samples[a])), float(np.mean(samples[b])), reached_a,
                            reached_b, len(samples[a]), len(samples[b]), pvalue, corrected, significant, better))
    return pd.DataFrame(records, columns=["dataset", "rule_a", "rule_b", "mean_a", "mean_b", "reached_a", "reached_b",
                                          "n_a", "n_b", "pvalue", "pvalue_holm", "significant", "better"])


def p_text(pvalue, alpha=0.05):
    """A p-value in two significant digits, or in more where two would round it onto α or across it: a
    significant 0.0496 reads 0.0496, never "p = 0.05" beside a claim of significance."""
    text = f"{pvalue:.2g}"
    for digits in (3, 4, 6):
        shown = float(text)
        if not math.isfinite(pvalue) or (shown != alpha and (shown < alpha) == (pvalue < alpha)):
            break
        text = f"{pvalue:.{digits}g}"
    return text


def significance_lines(pairwise, measure="epochs_to_target"):
    """One line per data set: which pairs differ significantly (Holm-corrected), how many do not, and how many have
    nothing to compare (neither rule reached the target on any seed)."""
    lines = []
    for dataset, group in pairwise.groupby("dataset", sort=True):
        held = group[group["significant"]]
        incomparable = int(group["pvalue"].isna().sum())
        differences = "; ".join(
            f"{row.better} better than {row.rule_b if row.better == row.rule_a else row.rule_a} "
            f"(p = {p_text(row.pvalue_holm)})" for row in held.itertuples())
        not_held = len(group) - len(held) - incomparable
        text = f"significant: {differences}" if len(held) else "no significant difference"
        line = (f"{dataset}, {measure.replace('_', ' ')}: {text}; {not_held} of {len(group)} pairs not "
                "significantly different")
        if incomparable:
            line += f"; {incomparable} with nothing to compare (neither rule reached the target on any seed)"
        lines.append(line)
    return lines


# --- AlgoPerf -----------------------------------------------------------------------------------

def algoperf_score(costs, tau_max=4.0):
    r"""AlgoPerf's benchmark score of each rule from a workloads × rules table of costs to the target.

    Dahl et al. (2023), "Benchmarking Neural Network Training Algorithms",
    section 4.5: on workload :math:`w` rule :math:`s` has the performance
    ratio :math:`r_{w,s} = t_{w,s} / \min_{s'} t_{w,s'}` (infinite where it
    never reached the target: NaN or inf in ``costs``); its performance
    profile is :math:`\rho_s(\tau) = \frac{1}{n_w} |\{w : r_{w,s} \le \tau\}|`
    and its score

    .. math::
        B_s = \frac{1}{\tau_{max} - 1} \int_1^{\tau_{max}} \rho_s(\tau)\, d\tau
            = \frac{1}{n_w} \sum_w \frac{\max(0, \tau_{max} - r_{w,s})}{\tau_{max} - 1}

    (exact: ρ is a step function), with :math:`\tau_{max} = 4`. 1 is the
    fastest rule on every workload, 0 never within 4× of the fastest. A
    workload no rule solved counts for nobody.
    """
    matrix = _matrix(costs)
    if not (math.isfinite(tau_max) and tau_max > 1):
        raise ValueError(f"tau_max must be a finite number > 1, got {tau_max!r}")
    values = matrix.to_numpy()
    if np.any(values[np.isfinite(values)] <= 0):
        raise ValueError("costs to the target must be > 0")
    values = np.where(np.isnan(values), np.inf, values)
    fastest = values.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        ratios = np.where(np.isfinite(fastest), values / fastest, np.inf)
    contribution = np.clip(tau_max - ratios, 0.0, None) / (tau_max - 1)
    import pandas as pd

    return pd.Series(contribution.mean(axis=0), index=matrix.columns, name="algoperf_score")


def algoperf_scores(runs, measure="epochs_to_target", tau_max=4.0):
    """:func:`algoperf_score` of the runs' best configurations, data sets as workloads, best first."""
    if measure not in _TO_TARGET:
        raise ValueError(f"measure must be one of {list(_TO_TARGET)}, got {measure!r}")
    return algoperf_score(score_matrix(runs, measure), tau_max).sort_values(ascending=False, kind="stable")


# --- winners ------------------------------------------------------------------------------------

def winners(runs, alpha=0.05, test="mannwhitney", seed=0):
    """Per data set, the winner and whether its lead over the runner-up is significant.

    Rules are ranked as time-to-event comparisons are: first on the share of
    seeds of their best configurations that reached the target, then on the
    mean epochs to the target of those seeds (deterministic: the same on every
    machine and run), then on mean seconds, then on final loss. The lead is
    tested on epochs (two-sided ``test``, a seed that missed counted as never
    reaching); where the two rules' epochs are the same, on seconds. Its
    p-value is Holm-corrected over all the data set's pairs, as
    :func:`pairwise_tests` gives it: the runner-up is picked after seeing the
    results, and the summary's lines on which pairs differ then agree with the
    verdict. Where the test puts the runner-up significantly ahead (the means
    and the ranks disagree), the two change places: a verdict never names as
    winner the rule its own test puts behind. Where no rule reached the target
    on any seed there is nothing to compare: no winner.

    Columns: dataset, winner, runner_up, reached (the winner's seeds that
    reached the target), n_seeds, epochs (the winner's mean over those),
    seconds, seconds_low, seconds_high (its 95% bootstrap interval), decided_by,
    pvalue, significant, verdict (one line in words: the lead, "no
    significant difference", or "nothing to compare").
    """
    import pandas as pd

    best = best_configuration_runs(runs)
    corrected = {}

    def holm_pair(dataset, first, second, measure):
        if measure not in corrected:
            corrected[measure] = pairwise_tests(runs, measure, test, alpha)
        pairs = corrected[measure]
        pair = pairs[(pairs["dataset"] == dataset) & (((pairs["rule_a"] == first) & (pairs["rule_b"] == second))
                                                      | ((pairs["rule_a"] == second) & (pairs["rule_b"] == first)))]
        return float(pair["pvalue_holm"].iloc[0]), pair["better"].iloc[0]

    records = []
    for dataset, of_dataset in best.groupby("dataset", sort=True):
        table = []
        for rule, group in of_dataset.groupby("rule", sort=True):
            table.append(_Standing.of(rule, group))
        table.sort(key=_Standing.key)
        winner = table[0]
        if winner.reached == 0:
            records.append((dataset, None, None, 0, winner.n_seeds, math.nan, math.nan, math.nan, math.nan, None,
                            math.nan, False, f"{dataset}: no rule reached the target on any seed: nothing to compare"))
            continue
        if len(table) == 1:
            interval = bootstrap_ci(winner.seconds[np.isfinite(winner.seconds)], seed=seed)
            records.append((dataset, winner.rule, None, winner.reached, winner.n_seeds, winner.mean_epochs,
                            interval.mean, interval.low, interval.high, None, math.nan, False,
                            f"{dataset}: {winner.rule} is the only rule with finished runs"))
            continue
        runner_up = table[1]
        decided_by = "epochs_to_target" if not np.array_equal(np.sort(winner.epochs), np.sort(runner_up.epochs)) \
            else "seconds_to_target"
        pvalue, better = holm_pair(dataset, winner.rule, runner_up.rule, decided_by)
        swapped = better == runner_up.rule
        if swapped:
            winner, runner_up = runner_up, winner
        significant = bool(pvalue < alpha) and better is not None
        what = decided_by.replace("_", " ")
        if significant:
            medians = ""
            if swapped:
                values = (winner.epochs, runner_up.epochs) if decided_by == "epochs_to_target" else \
                    (winner.seconds * 1e3, runner_up.seconds * 1e3)
                unit = "epochs" if decided_by == "epochs_to_target" else "ms"
                medians = (f"; ahead on most seeds though not on the mean: medians {np.median(values[0]):.3g} "
                           f"against {np.median(values[1]):.3g} {unit}")
            verdict = (f"{dataset}: {winner.rule} wins on {what} over {runner_up.rule} "
                       f"({winner.text(decided_by)} against {runner_up.text(decided_by)}, "
                       f"Holm-corrected p = {p_text(pvalue, alpha)}{medians})")
        else:
            verdict = (f"{dataset}: {winner.rule} and {runner_up.rule}: no significant difference in {what} "
                       f"(Holm-corrected p = {p_text(pvalue, alpha)})")
        interval = bootstrap_ci(winner.seconds[np.isfinite(winner.seconds)], seed=seed)
        records.append((dataset, winner.rule, runner_up.rule, winner.reached, winner.n_seeds, winner.mean_epochs,
                        interval.mean, interval.low, interval.high, decided_by, pvalue, significant, verdict))
    return pd.DataFrame(records, columns=["dataset", "winner", "runner_up", "reached", "n_seeds", "epochs", "seconds",
                                          "seconds_low", "seconds_high", "decided_by", "pvalue", "significant",
                                          "verdict"])


@dataclass
class _Standing:
    """One rule's seeds on one data set, as :func:`winners` ranks them."""

    rule: str
    epochs: np.ndarray  # per seed, infinite where the target was missed
    seconds: np.ndarray
    final_loss: float

    @classmethod
    def of(cls, rule, group):
        final = float(np.nanmean(group["final_loss"].astype(float))) if group["final_loss"].notna().any() \
            else math.inf
        return cls(rule, _seed_values(group, "epochs_to_target").to_numpy(),
                   _seed_values(group, "seconds_to_target").to_numpy(), final)

    @property
    def n_seeds(self):
        return len(self.epochs)

    @property
    def reached(self):
        return int(np.sum(np.isfinite(self.epochs)))

    @property
    def mean_epochs(self):
        return float(np.mean(self.epochs[np.isfinite(self.epochs)])) if self.reached else math.inf

    @property
    def mean_seconds(self):
        finite = self.seconds[np.isfinite(self.seconds)]
        return float(np.mean(finite)) if finite.size else math.inf

    def key(self):
        return (-self.reached / self.n_seeds, self.mean_epochs, self.mean_seconds, self.final_loss, self.rule)

    def text(self, measure):
        """The mean in words; a rule that missed the target on some seed has no mean time to it over all seeds."""
        mean = (f"{self.mean_epochs:.3g} epochs" if measure == "epochs_to_target"
                else f"{self.mean_seconds * 1e3:.3g} ms")
        if self.reached == self.n_seeds:
            return mean
        if self.reached == 0:
            return f"the target missed on all {self.n_seeds} seeds"
        return f"the target missed on {self.n_seeds - self.reached} of {self.n_seeds} seeds, {mean} on the others"
