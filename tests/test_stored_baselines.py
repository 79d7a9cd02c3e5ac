"""Stored baselines: built once, copied into a comparison's store so that only a new rule trains, reproducible."""

import os
import sqlite3

import pandas as pd
import pytest

from fastgd import sweep
from fastgd.sweep import StoreError, baselines
from rule_cases import readme_plugin

# stands for the suite preset: two built-in rules, tuned on the small budget, on one problem
BASELINE = """
name = "suite"
datasets = ["iris"]
rules = ["sgd", "adam"]
batch_sizes = [32]
epochs = 3

[tuning]
budget = "small"
final_seeds = 10

[model]
hidden_layer_sizes = [8]

[targets]
iris = 0.3
"""


def _config(directory, plugin=None):
    text = BASELINE if plugin is None else f'plugins = ["{plugin}"]\n' + BASELINE.replace(
        'rules = ["sgd", "adam"]', 'rules = ["sgd", "adam", "signum"]')
    path = directory / "suite.toml"
    path.write_text(text)
    return sweep.load_config(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    where = tmp_path_factory.mktemp("baselines")
    config = _config(where)
    first = baselines.build(str(where / "first.db"), jobs=1, progress=False, config=config)
    again = baselines.build(str(where / "again.db"), jobs=1, progress=False, config=config)
    return where, config, first, again


def _chosen(path):
    runs = sweep.load_runs(path)
    final = runs[runs["phase"] == "final"]
    return final.groupby(["dataset", "rule"])["trial"].agg(lambda trials: sorted(set(trials)))


def test_building_twice_gives_the_same_runs_settings_and_winners(built):
    where, _, first, again = built
    assert first.stored == again.stored == 2 * (8 + 10) and first.failed == 0
    runs, runs_again = sweep.load_runs(where / "first.db"), sweep.load_runs(where / "again.db")
    columns = ["run_id", "final_loss", "best_loss", "test_metric", "epochs_to_target"]
    pd.testing.assert_frame_equal(runs[columns].sort_values("run_id").reset_index(drop=True),
                                  runs_again[columns].sort_values("run_id").reset_index(drop=True))
    assert _chosen(where / "first.db").to_dict() == _chosen(where / "again.db").to_dict()
    final = runs[runs["phase"] == "final"].groupby("rule")["final_loss"].mean()
    final_again = runs_again[runs_again["phase"] == "final"].groupby("rule")["final_loss"].mean()
    assert final.idxmin() == final_again.idxmin()


def test_a_new_rule_trains_alone_beside_the_copied_baselines(built, tmp_path):
    where, _, _, _ = built
    config = _config(tmp_path, readme_plugin(tmp_path))
    store = tmp_path / "compare" / "sweep.db"
    store.parent.mkdir()
    assert baselines.coverage(config, str(where / "first.db")) == (2 * 8, 3 * 8)
    assert baselines.seed_store(str(where / "first.db"), str(store)) == 2 * (8 + 10)
    outcome = sweep.run_sweep(config, store, jobs=1, progress=False)
    assert (outcome.stored, outcome.skipped) == (8 + 10, 2 * (8 + 10))  # signum's runs only
    runs = sweep.load_runs(store)
    assert runs.groupby("rule").size().to_dict() == {"adam": 18, "sgd": 18, "signum": 18}
    baseline_runs = sweep.load_runs(where / "first.db").set_index("run_id")
    copied = runs[runs["rule"] != "signum"].set_index("run_id")
    pd.testing.assert_series_equal(copied["final_loss"].sort_index(), baseline_runs["final_loss"].sort_index())
    # a comparison resumed: its store is kept as it is
    assert baselines.seed_store(str(where / "first.db"), str(store)) == 0
    assert len(sweep.load_runs(store)) == 54


def test_missing_or_empty_baselines_are_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGD_BASELINES", str(tmp_path / "nowhere.db"))
    assert baselines.default_path() == str(tmp_path / "nowhere.db")
    with pytest.raises(StoreError, match=r"^no baseline store at .*nowhere\.db: build it once with `fastgd "
                                         r"baselines`") as refused:
        baselines.seed_store(None, str(tmp_path / "out.db"))
    assert "\n" not in str(refused.value) and not os.path.exists(tmp_path / "out.db")
    with sweep.Store(tmp_path / "empty.db"):
        pass
    with pytest.raises(StoreError, match="holds no runs"):
        baselines.check_available(str(tmp_path / "empty.db"))
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not a fastgd store"):
        baselines.check_available(str(tmp_path / "other.db"))


def test_the_command_line_refuses_missing_baselines_and_unknown_problems(tmp_path):
    from cli_harness import assert_refused

    assert_refused(["compare", "--preset", "suite", "--problem", "lecture_linreg", "--out", "out",
                    "--against-baselines", str(tmp_path / "none.db")], tmp_path,
                   "--against-baselines: no baseline store at")
    (tmp_path / "other.db").write_bytes(b"not a database at all, not even SQLite" * 40)
    assert_refused(["compare", "--preset", "suite", "--problem", "lecture_linreg", "--out", "out",
                    "--against-baselines", "other.db"], tmp_path, "--against-baselines:")
    assert_refused(["baselines", "--store", "b.db", "--problem", "no_such_problem"], tmp_path, "no_such_problem")


def test_a_stored_landscape_of_the_same_data_and_network_is_kept_and_another_is_measured(built, tmp_path,
                                                                                          monkeypatch):
    from fastgd.report.sections import LANDSCAPE, landscape_artefact, record_artefacts
    from fastgd.sweep import measure
    from fastgd.sweep.store import Store

    where, config, _, _ = built

    def landscape(store):
        with Store(store, "r") as opened:
            return opened.artefacts()[landscape_artefact("iris")]["content"]

    store = tmp_path / "mine.db"
    baselines.seed_store(str(where / "first.db"), str(store))
    record_artefacts(store, config, sections=[LANDSCAPE])
    made = landscape(store)
    assert made["layer_sizes"] == [4, 8, 3] and measure.landscape_is_current(made, config, "iris")
    measured = []
    real = measure.dataset_landscape
    monkeypatch.setattr(measure, "dataset_landscape", lambda *arguments: measured.append(1) or real(*arguments))
    record_artefacts(store, config, sections=[LANDSCAPE])  # a comparison against the baselines: kept as it was
    assert not measured and landscape(store) == made
    wider_path = tmp_path / "wider.toml"
    wider_path.write_text(BASELINE.replace("hidden_layer_sizes = [8]", "hidden_layer_sizes = [16]"))
    wider = sweep.load_config(wider_path)
    assert not measure.landscape_is_current(made, wider, "iris")
    record_artefacts(store, wider, sections=[LANDSCAPE])  # another network: measured again
    assert measured == [1] and landscape(store)["layer_sizes"] == [4, 16, 3]
    assert not measure.landscape_is_current(dict(made, data_hash="0" * 64), config, "iris")
