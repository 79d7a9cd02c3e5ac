"""The report per problem: each rule's runtime overhead per epoch against SGD and its learning-rate sensitivity,
on stores made by tiny sweeps (grid, tuning, without SGD, merged from two machines), checked against the store's
rows read with pandas."""

import html
import math
import re
import sqlite3

import numpy as np
import pytest

from fastgd import sweep

pytest.importorskip("seaborn", reason="the report draws with seaborn")

GRID_RATES = [1e-3, 1e-1, 1.0, 1e3]  # SGD diverges at 1e3


def _grid(name, rules, seeds, datasets=("iris", "wine")):
    return sweep.parse(dict(name=name, datasets=list(datasets), rules=rules, learning_rates=GRID_RATES, seeds=seeds,
                            epochs=3, targets={name: 0.5 for name in datasets}))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Stores of tiny sweeps, each with its report: a grid of two data sets, a tuning sweep (with ASGD, which
    trains alone), a grid without SGD, and two grids merged, the second's runs marked as made on another CPU."""
    from fastgd.report.build import build_report
    from fastgd.sweep.store import merge

    root = tmp_path_factory.mktemp("per_problem")
    sweep.run_sweep(_grid("grid", ["sgd", "adam"], [0, 1, 2]), root / "grid.db", jobs=1, progress=False)
    tuning = sweep.parse(dict(name="tuned", datasets=["iris"], rules=["sgd", "adam", "asgd"], batch_sizes=[32],
                              epochs=3, targets={"iris": 0.5}, tuning=dict(budget="small", final_seeds=10)))
    sweep.run_sweep(tuning, root / "tuned.db", jobs=1, progress=False)
    sweep.run_sweep(_grid("no-sgd", ["adam", "momentum"], [0, 1], ["iris"]), root / "nosgd.db", jobs=1,
                    progress=False)
    sweep.run_sweep(_grid("other", ["sgd", "adam"], [3, 4], ["iris"]), root / "other.db", jobs=1, progress=False)
    with sqlite3.connect(root / "other.db") as connection:
        connection.execute("UPDATE runs SET cpu = 'Intel Xeon'")
    merge([root / "grid.db", root / "other.db"], root / "merged.db")
    for name in ("grid", "tuned"):  # whole reports; the others' sections alone (_drawn)
        build_report(root / name, root / f"{name}.db")
    return root


def _drawn(root, name, artefacts=None):
    """The two sections as the report draws them from the store ``name`` (with ``artefacts`` in place of its own
    none): {section id: its title, note, table}."""
    from fastgd.report import overhead, sensitivity
    from fastgd.report.build import split_phases
    from fastgd.report.sections import Page
    from fastgd.sweep.store import Store

    with Store(root / f"{name}.db", mode="r") as store:
        runs, curves, sweeps = store.runs_frame(), store.curves_frame(), store.sweeps_frame()
    compared, tune = split_phases(runs)
    finished = compared[compared["status"] != "failed"]
    (root / name).mkdir(exist_ok=True)
    page = Page(root / name, compared, finished, sweeps, artefacts or {})
    sensitivity.draw_sensitivity(page, compared, tune)
    overhead.draw_overhead(page, finished, curves)
    return {section["id"]: section for section in page.sections}


def _page(root, name):
    return (root / name / "index.html").read_text()


def _section(page, section_id):
    start = page.index(f'<h2 id="{section_id}">')
    return page[start:page.index("<h2 ", start + 1)]


def _table(section):
    """The section's table as rows of cell texts (the header first)."""
    body = section.split("<table>")[1].split("</table>")[0]
    cells = r"<t[hd][^>]*>(.*?)</t[hd]>"
    return [[html.unescape(re.sub("<[^>]+>", "", cell)).strip() for cell in re.findall(cells, row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def _rows(root, name):
    from fastgd.sweep.store import Store

    with Store(root / f"{name}.db", mode="r") as store:
        return store.runs_frame(), store.curves_frame()


def _oracle_seconds(runs, curves, by):
    """Per ``by``: the median over the runs that finished without diverging (no tuning trials) of each run's median
    epoch seconds, computed here from the rows."""
    timed = runs[(runs["status"] == "ok") & (runs["phase"] != "tune")]
    per_run = {}
    for run_id, curve in curves[curves["run_id"].isin(timed["run_id"])].groupby("run_id"):
        seconds = curve.sort_values("epoch")["seconds"].to_numpy()
        per_run[run_id] = float(np.median(np.diff(np.concatenate([[0.0], seconds]))))
    timed = timed.assign(per_run=timed["run_id"].map(per_run))
    return timed.groupby(by)["per_run"].median()


# --- runtime overhead ----------------------------------------------------------------------------------------------

def test_the_overhead_is_each_rules_median_epoch_over_sgds_per_data_set(stores):
    import pandas as pd

    runs, curves = _rows(stores, "grid")
    oracle = _oracle_seconds(runs, curves, ["dataset", "rule"])
    drawn = pd.read_csv(stores / "grid" / "runtime_overhead.csv").set_index(["dataset", "rule"])
    assert set(drawn.index) == set(oracle.index) == {(d, r) for d in ("iris", "wine") for r in ("sgd", "adam")}
    for (dataset, rule), seconds in oracle.items():
        assert drawn.loc[(dataset, rule), "seconds"] == pytest.approx(seconds, rel=1e-9)
        ratio = seconds / oracle[(dataset, "sgd")]
        assert drawn.loc[(dataset, rule), "ratio"] == pytest.approx(ratio, rel=1e-9)
        # the diverged runs (learning rate 1e3) are not timed: 3 learning rates × 3 seeds
        assert drawn.loc[(dataset, rule), "runs"] == (runs[(runs["dataset"] == dataset) & (runs["rule"] == rule)]
                                                      ["status"] == "ok").sum()
    adam = drawn.loc[("iris", "adam")]
    assert adam["ratio_low"] < adam["ratio_high"] and np.isfinite([adam["ratio_low"], adam["ratio_high"]]).all()
    section = _section(_page(stores, "grid"), "runtime_overhead")
    table = _table(section)
    assert table[0] == ["rule", "iris", "wine"]  # one column per data set, nothing else varies
    cells = {row[0]: row[1:] for row in table[1:]}
    assert cells["sgd"] == ["1× (the reference) (9)"] * 2
    iris_ratio = oracle[("iris", "adam")] / oracle[("iris", "sgd")]
    assert cells["adam"][0].startswith(f"{iris_ratio:.3g}× [")
    assert 'src="runtime_overhead.png"' in section and "How to read it:" in section
    assert "one thread&#39;s time whatever the chunk&#39;s size" in section


def test_a_rule_that_trains_alone_is_timed_apart_from_sgd(stores):
    import pandas as pd

    runs, curves = _rows(stores, "tuned")
    oracle = _oracle_seconds(runs, curves, ["rule"])
    drawn = pd.read_csv(stores / "tuned" / "runtime_overhead.csv").set_index("rule")
    # the final runs only: ten seeds each, the tuning trials (on the validation rows) left out
    assert (drawn["runs"] == 10).all()
    for rule, seconds in oracle.items():
        assert drawn.loc[rule, "seconds"] == pytest.approx(seconds, rel=1e-9)
    assert drawn.loc["asgd", "trained"] == "alone" and math.isnan(drawn.loc["asgd", "ratio"])
    assert drawn.loc["adam", "ratio"] == pytest.approx(oracle["adam"] / oracle["sgd"], rel=1e-9)
    section = _section(_page(stores, "tuned"), "runtime_overhead")
    table = _table(section)
    assert table[0] == ["rule", "iris", "iris (trained alone)"]
    asgd = next(row for row in table if row[0] == "asgd")
    assert asgd[1] == "–" and asgd[2].endswith("s] (10)")  # seconds with quartiles, never a ratio
    assert "their seconds are given apart (trained alone) and not divided by sgd" in html.unescape(section)


def test_without_sgd_the_section_gives_seconds_per_epoch(stores):
    import pandas as pd

    section = _drawn(stores, "nosgd")["runtime_overhead"]
    runs, curves = _rows(stores, "nosgd")
    oracle = _oracle_seconds(runs, curves, ["rule"])
    drawn = pd.read_csv(stores / "nosgd" / "runtime_overhead.csv").set_index("rule")
    assert drawn["ratio"].isna().all() and (drawn["reference_runs"] == 0).all()
    for rule, seconds in oracle.items():
        assert drawn.loc[rule, "seconds"] == pytest.approx(seconds, rel=1e-9)
    assert "No sgd runs on iris: seconds per epoch alone there" in section["note"]
    assert "×" not in "".join(sum(section["table"]["rows"], []))
    assert (stores / "nosgd" / "runtime_overhead.png").stat().st_size > 0


def test_a_stored_throughput_adds_each_rules_step_alone_over_sgds(stores):
    steps = [dict(rule=rule, parameters=size, implementation=implementation, seconds=seconds)
             for size, scale in ((1_000, 1.0), (1_000_000, 100.0))
             for rule, seconds in (("sgd", 2e-6), ("adam", 5e-6), ("momentum", 3e-6))
             for implementation, seconds in (("fastgd", seconds * scale), ("torch", 7e-6 * scale))]
    steps[-1]["seconds"] *= 3  # torch's momentum at the largest size: not fastgd's, not read
    throughput = {"content": {"frames": {"steps": steps, "training": []}, "values": {"machine": {}}},
                  "made_at": "2026-12-06T00:00:00+00:00", "provenance": {}}
    section = _drawn(stores, "grid", {"throughput": throughput})["runtime_overhead"]
    columns = section["table"]["columns"]
    assert columns[-2:] == ["update step alone, 1,000 parameters", "update step alone, 1,000,000 parameters"]
    cells = {row[0]: row[-2:] for row in section["table"]["rows"]}
    assert cells == {"sgd": ["1×", "1×"], "adam": ["2.5×", "2.5×"]}  # momentum has no runs in this store
    assert "each rule's update step alone over sgd's" in section["note"]
    # a store without a stored throughput has no such columns
    assert not any("step alone" in column for column in _drawn(stores, "grid")["runtime_overhead"]["table"]["columns"])


def test_seconds_of_two_machines_are_never_divided_by_each_other(stores):
    import pandas as pd

    section = _drawn(stores, "merged")["runtime_overhead"]
    runs, curves = _rows(stores, "merged")
    assert len(set(runs["cpu"])) == 2 and "Intel Xeon" in set(runs["cpu"])
    oracle = _oracle_seconds(runs, curves, ["cpu", "dataset", "rule"])
    drawn = pd.read_csv(stores / "merged" / "runtime_overhead.csv")
    drawn["cpu"] = drawn["machine"].str.split(" × ").str[0]
    drawn = drawn.set_index(["cpu", "dataset", "rule"])
    assert set(drawn.index) == set(oracle.index)
    for (cpu, dataset, rule), seconds in oracle.items():
        assert drawn.loc[(cpu, dataset, rule), "ratio"] == pytest.approx(seconds / oracle[(cpu, dataset, "sgd")],
                                                                          rel=1e-9)
    assert "each machine's runs are compared among themselves, never across machines" in section["note"]
    header = section["table"]["columns"]
    assert sum("on Intel Xeon" in column for column in header) == 1  # iris only on the second machine
    assert sum("iris" in column for column in header) == 2


def test_an_old_store_of_synthetic_runs_gives_the_ratios_of_its_curves(tmp_path):
    from test_report import render, synthetic_frames

    runs, curves, sweeps = synthetic_frames({"adam": 5, "sgd": 30}, n_seeds=4, phase_columns=False)
    runs, curves = runs[runs["dataset"] <= "b"], curves[curves["dataset"] <= "b"]  # two data sets are enough
    page = render(tmp_path, (runs, curves, sweeps))
    per_run = runs.set_index("run_id").eval("seconds_to_target / epochs_to_target")  # its constant epoch time
    per_rule = per_run.groupby([runs.set_index("run_id")["dataset"], runs.set_index("run_id")["rule"]]).median()
    cells = {row[0]: row[1:] for row in _table(_section(page, "runtime_overhead"))[1:]}
    for index, dataset in enumerate(sorted(set(runs["dataset"]))):
        ratio = per_rule[(dataset, "adam")] / per_rule[(dataset, "sgd")]
        assert cells["adam"][index].startswith(f"{ratio:.3g}×")


# --- learning-rate sensitivity -------------------------------------------------------------------------------------

def _oracle_range(rates, losses, within=0.2):
    """(good points, at least, at most) in decades, from (learning rate, loss or NaN for diverged) pairs."""
    order = np.argsort(rates, kind="stable")
    rates, losses = np.asarray(rates, dtype=float)[order], np.asarray(losses, dtype=float)[order]
    best = int(np.nanargmin(losses))
    good = [bool(np.isfinite(loss) and loss <= losses[best] * (1 + within)) for loss in losses]
    low = best
    while low > 0 and good[low - 1]:
        low -= 1
    high = best
    while high + 1 < len(good) and good[high + 1]:
        high += 1
    at_most = (math.log10(rates[high + 1] / rates[low - 1])
               if low > 0 and high + 1 < len(good) else math.inf)
    return sum(good), math.log10(rates[high] / rates[low]), at_most, rates[best], losses[best]


def test_the_tuning_trials_are_drawn_against_the_learning_rate_with_their_ranges(stores):
    import pandas as pd

    runs, _ = _rows(stores, "tuned")
    trials = runs[runs["phase"] == "tune"]
    drawn = pd.read_csv(stores / "tuned" / "learning_rate_trials.csv")
    assert len(drawn) == len(trials) == 3 * 8
    merged = drawn.merge(trials, on=["rule", "learning_rate"], suffixes=("", "_stored"))
    assert len(merged) == len(drawn)
    assert np.allclose(merged["loss"], merged["validation_loss"], equal_nan=True)
    section = _section(_page(stores, "tuned"), "learning_rate_trials")
    assert 'src="learning_rate_trials.png"' in section
    table = _table(section)
    assert table[0][:2] == ["data set", "rule"] and table[0][-2:] == ["good range, decades: at least", "at most"]
    rows = {row[1]: row for row in table[1:]}
    assert set(rows) == {"sgd", "adam", "asgd"}
    for rule, of_rule in trials.groupby("rule"):
        good, at_least, at_most, best_rate, best_loss = _oracle_range(of_rule["learning_rate"],
                                                                      of_rule["validation_loss"])
        row = rows[rule]
        assert row[2] == "8 (0)" and row[5] == f"{good} of 8"
        assert row[4] == f"{best_rate:.3g} ({best_loss:.4g})"
        assert row[6] == f"{at_least:.2f}"
        assert row[7] == (f"{at_most:.2f}" if math.isfinite(at_most) else row[7]) and (
            math.isfinite(at_most) or row[7].startswith("open"))
    text = html.unescape(section)
    assert "Each rule has 8 points on a data set here (small budget)" in text
    assert "a trial's loss is not its learning rate's alone" in text


def test_a_grid_gives_the_ranges_of_its_learning_rates_with_the_diverged_counted(stores):
    runs, _ = _rows(stores, "grid")
    page = _page(stores, "grid")
    assert 'src="learning_rate_trials.png"' not in page  # the grid's figure is Learning-rate sensitivity's
    section = _section(page, "learning_rate_ranges")
    rows = {(row[0], row[1]): row for row in _table(section)[1:]}
    assert set(rows) == {(d, r) for d in ("iris", "wine") for r in ("sgd", "adam")}
    for (dataset, rule), of_rule in runs.groupby(["dataset", "rule"]):
        by_rate = of_rule.groupby("learning_rate")
        diverged = by_rate["status"].apply(lambda status: (status == "diverged").any())
        losses = by_rate["final_loss"].mean().where(~diverged)
        good, at_least, at_most, best_rate, best_loss = _oracle_range(losses.index, losses.to_numpy())
        row = rows[(dataset, rule)]
        assert row[2] == f"4 ({int(diverged.sum())})"
        assert rule != "sgd" or diverged[1e3]  # diverged points are counted, never good
        assert row[4] == f"{best_rate:.3g} ({best_loss:.4g})" and row[5] == f"{good} of 4"
        assert row[6] == f"{at_least:.2f}"
        assert row[7] == (f"{at_most:.2f}" if math.isfinite(at_most) else row[7])
    assert "a configuration with a diverged seed counts as diverged" in html.unescape(section)


def test_the_good_range_stops_at_a_diverged_point_and_says_where_it_is_open():
    import pandas as pd

    from fastgd.report.sensitivity import learning_rate_ranges

    def points(losses, statuses):
        return pd.DataFrame(dict(dataset="d", budget="small", batch_size="32", schedule="constant", rule="r",
                                 learning_rate=[1e-4, 1e-3, 1e-2, 1e-1, 1.0][:len(losses)], loss=losses,
                                 status=statuses))

    # good at 1e-3 and 1e-2 (within 20% of 1.0), 1e-1 diverged: at least 1 decade, at most 1e-4 to 1e-1: 3
    row = learning_rate_ranges(points([5.0, 1.1, 1.0, np.nan, 0.5 + 9], ["ok", "ok", "ok", "diverged", "ok"])).iloc[0]
    assert (row["good"], row["at_least"], row["at_most"], row["diverged"]) == (2, pytest.approx(1.0),
                                                                              pytest.approx(3.0), 1)
    assert not row["open_below"] and not row["open_above"]
    # the best at the largest rate tried: open above, whatever lies below
    row = learning_rate_ranges(points([3.0, 2.0, 1.0], ["ok"] * 3)).iloc[0]
    assert row["open_above"] and not row["open_below"] and math.isinf(row["at_most"]) and row["at_least"] == 0
    # a good point beyond a worse one is counted as good but not in the range: the trials show a gap there
    row = learning_rate_ranges(points([1.0, 3.0, 1.1], ["ok"] * 3)).iloc[0]
    assert row["good"] == 2 and row["at_least"] == 0 and row["open_below"]
    # nothing finite: no best, no range
    row = learning_rate_ranges(points([np.nan, np.nan], ["diverged"] * 2)).iloc[0]
    assert math.isnan(row["best_loss"]) and row["good"] == 0
