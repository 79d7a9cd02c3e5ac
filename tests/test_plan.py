"""The tuning protocol of a sweep: [tuning] checked, trials on a validation split, the best re-run with ten seeds."""

import subprocess
import sys
import tomllib

import numpy as np
import pandas as pd
import pytest

from fastgd import optim, sweep
from fastgd.sweep import plan, tuning
from fastgd.sweep.plan import RunSpec

TINY = """
name = "tiny"
datasets = ["iris"]
rules = ["sgd", "adam"]
epochs = 5

[model]
hidden_layer_sizes = [8]

[targets]
iris = 0.3

[tuning]
budget = "small"
final_seeds = 10
"""


def config(text=TINY, tuning_table=None, **replace):
    raw = tomllib.loads(text)
    raw.update(replace)
    if tuning_table is not None:
        raw["tuning"] = tuning_table
    return sweep.parse(raw)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """The tiny tuning sweep, run once in this process: (its configuration, its store, its outcome)."""
    store = tmp_path_factory.mktemp("tuned") / "tiny.db"
    tiny = config()
    return tiny, store, sweep.run_sweep(tiny, store, jobs=1, progress=False)


# -- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("replace, message", [
    (dict(learning_rates=[0.1]), "'learning_rates' and [tuning] do not go together"),
    (dict(seeds=[0, 1]), "'seeds' and [tuning] do not go together"),
    (dict(hyperparameters={"adam": {"eps": [1e-8]}}), "'hyperparameters' and [tuning] do not go together"),
    (dict(tuning_table={"budget": "huge"}), "[tuning] budget must be one of 'one-shot', 'small', 'large', got 'huge'"),
    (dict(tuning_table={"budget": 8}), "[tuning] budget must be one of"),
    (dict(tuning_table={"final_seeds": 9}), "[tuning] final_seeds must be an integer from 10"),
    (dict(tuning_table={"final_seeds": 10.0}), "[tuning] final_seeds must be an integer from 10"),
    (dict(tuning_table={"seed": -1}), "[tuning] seed must be an integer from 0 to 4294967295, got -1"),
    (dict(tuning_table={"tuning_seed": "0"}), "[tuning] tuning_seed must be an integer"),
    (dict(tuning_table={"validation_fraction": 1.0}), "[tuning] validation_fraction must be a number between 0 and 1"),
    (dict(tuning_table={"validation_fraction": 0.01}), "[tuning] validation_fraction: the validation split of data "
                                                       "set 'iris'"),
    (dict(tuning_table={"trials": 8}), "[tuning] has no key 'trials'"),
    (dict(tuning_table=[1]), "[tuning] must be a table"),
])
def test_bad_tuning_configurations_are_refused_in_one_line(replace, message):
    with pytest.raises(sweep.SweepConfigError) as error:
        config(**replace)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_grid_configuration_still_needs_its_learning_rates():
    with pytest.raises(sweep.SweepConfigError, match="'learning_rates' must be a non-empty list"):
        config(TINY.replace('[tuning]\nbudget = "small"\nfinal_seeds = 10\n', ""), seeds=[0])


def test_the_tuning_runs_are_the_budgets_sobol_settings_on_the_validation_split():
    tiny = config()
    specs = sweep.runs(tiny)
    assert len(specs) == 2 * tuning.BUDGETS["small"]
    for rule in ("sgd", "adam"):
        mine = [spec for spec in specs if spec.rule == rule]
        assert [spec.optimizer_hyperparameters() for spec in mine] == tuning.sample_settings(rule, "small", 0)
        assert [spec.trial for spec in mine] == list(range(8))
    assert {(spec.phase, spec.split, spec.validation_fraction, spec.budget, spec.seed) for spec in specs} == {
        ("tune", "validation", 0.2, "small", 0)}
    from fastgd import datasets

    assert {spec.data_hash for spec in specs} == {datasets.load("iris").validation_split(0.2).content_hash}
    assert len({spec.run_id for spec in specs}) == len(specs)


def test_grid_run_ids_are_those_of_runs_stored_before_the_protocol_existed():
    spec = RunSpec("iris", "adam", 0.01, (("eps", 1e-8),), 32, 3, 10, (16,), "relu", 1e-4, "float64", 0.3, "r" * 64,
                   "d" * 64)
    assert spec.run_id == "de03cb5acd4258c4b55a"  # computed before RunSpec had its protocol fields
    assert RunSpec(*[getattr(spec, name) for name in list(spec.__dataclass_fields__)[:14]], phase="grid",
                   split="test").run_id == spec.run_id
    from dataclasses import replace

    others = {replace(spec, phase="final", trial=0, budget="small").run_id,
              replace(spec, split="validation", validation_fraction=0.2, phase="tune", trial=0).run_id,
              replace(spec, split="validation", validation_fraction=0.3, phase="tune", trial=0).run_id,
              replace(spec, split="validation", validation_fraction=0.2, phase="tune", trial=1).run_id}
    assert len(others) == 4 and spec.run_id not in others


def test_the_paper_preset_follows_the_whole_protocol():
    paper = sweep.load_preset("paper")
    assert paper.tuning.budget == "large" and paper.tuning.final_seeds == 10
    assert set(paper.datasets) == {"iris", "wine", "breast_cancer", "digits", "diabetes"}
    assert set(paper.rules) == set(optim.OPTIMIZERS)
    assert len(sweep.runs(paper)) == 5 * len(optim.OPTIMIZERS) * 32


# -- the protocol, end to end -------------------------------------------------------------------

def test_a_tuning_sweep_tunes_on_validation_and_runs_the_best_trial_again_with_ten_seeds(tuned):
    tiny, store, outcome = tuned
    runs = sweep.load_runs(store)
    assert outcome.total == outcome.stored == len(runs) == 2 * (8 + 10) and outcome.failed == 0
    assert outcome.phases == {"tune": (16, 0, 16), "final": (20, 0, 20)} and outcome.notes == ()
    trials, final = runs[runs["phase"] == "tune"], runs[runs["phase"] == "final"]
    assert (trials["split"] == "validation").all() and (final["split"] == "test").all()
    assert (runs["budget"] == "small").all()
    assert trials["validation_loss"].notna().all() and trials["validation_metric"].between(0, 1).all()
    assert trials["test_metric"].isna().all() and trials["test_loss"].isna().all()  # the test rows choose nothing
    assert final["test_metric"].between(0, 1).all() and final["test_loss"].notna().all()
    assert final["validation_loss"].isna().all()
    for rule in ("sgd", "adam"):
        mine, chosen = trials[trials["rule"] == rule], final[final["rule"] == rule]
        assert sorted(mine["trial"]) == list(range(8))
        best = mine.loc[mine["validation_loss"].idxmin()]
        assert mine["validation_loss"].min() < mine["validation_loss"].max()
        assert (chosen["trial"] == best["trial"]).all()
        assert (chosen["learning_rate"] == best["learning_rate"]).all()
        assert all(hyperparameters == best["hyperparameters"] for hyperparameters in chosen["hyperparameters"])
        # ten fresh seeds: not the tuning seed
        assert sorted(chosen["seed"]) == list(range(1, 11)) and (mine["seed"] == 0).all()


def test_a_trial_is_what_training_on_the_validation_split_gives(tuned):
    from fastgd import MLP, datasets
    from fastgd.training import Training

    tiny, store, _ = tuned
    runs = sweep.load_runs(store).set_index("run_id")
    spec = next(spec for spec in sweep.runs(tiny) if spec.rule == "adam" and spec.trial == 3)
    data = datasets.load("iris").validation_split(0.2)
    net = MLP([data.n_features, 8, data.n_outputs], "relu", data.output, 1e-4)
    optimizer = optim.Adam(net.init(random_state=0), **spec.optimizer_hyperparameters())
    history = Training(net, optimizer, data.X_train, data.Y_train, 32, seed=0).run(5)
    assert runs.loc[spec.run_id, "final_loss"] == history.loss[-1]
    theta = optimizer.evaluation_params()
    assert runs.loc[spec.run_id, "validation_loss"] == pytest.approx(net.loss(theta, data.X_test, data.Y_test),
                                                                      rel=1e-12)
    accuracy = np.mean(net.predict(theta, data.X_test).argmax(axis=1) == data.y_test)
    assert runs.loc[spec.run_id, "validation_metric"] == accuracy


def test_a_tuning_sweep_run_again_from_the_command_line_does_nothing_new_and_says_so(tuned, tmp_path):
    _, store, _ = tuned
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    before = len(sweep.load_runs(store))
    result = subprocess.run([sys.executable, "-m", "fastgd.cli", "sweep", str(path), "--store", str(store),
                             "--jobs", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "36 runs, 36 already stored, 0 new" in result.stdout
    assert "tuning: 16 runs, 16 already stored, 0 new" in result.stdout
    assert "final runs: 20 runs, 20 already stored, 0 new" in result.stdout
    assert len(sweep.load_runs(store)) == before


def _comparable(store):
    columns = ["run_id", "phase", "trial", "split", "seed", "learning_rate", "status", "final_loss",
               "validation_loss", "validation_metric", "test_metric", "test_loss"]
    return sweep.load_runs(store)[columns].sort_values("run_id").reset_index(drop=True)


def test_both_phases_run_the_same_in_worker_processes_and_on_a_dask_cluster(tuned, tmp_path):
    distributed = pytest.importorskip("distributed")
    tiny, store, _ = tuned
    expected = _comparable(store)
    outcome = sweep.run_sweep(tiny, tmp_path / "two.db", jobs=2, progress=False, chunk_size=4)
    assert outcome.phases == {"tune": (16, 0, 16), "final": (20, 0, 20)}
    pd.testing.assert_frame_equal(_comparable(tmp_path / "two.db"), expected)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sweep.run_sweep(tiny, tmp_path / "dask.db", scheduler=cluster.scheduler_address, progress=False,
                        chunk_size=4)
    pd.testing.assert_frame_equal(_comparable(tmp_path / "dask.db"), expected)


def test_a_grid_sweep_stores_its_runs_as_grid_runs_of_the_test_split(tmp_path):
    grid = config(TINY.replace('[tuning]\nbudget = "small"\nfinal_seeds = 10\n', ""), learning_rates=[0.1],
                  seeds=[0])
    sweep.run_sweep(grid, tmp_path / "grid.db", jobs=1, progress=False)
    runs = sweep.load_runs(tmp_path / "grid.db")
    assert (runs["phase"] == "grid").all() and (runs["split"] == "test").all()
    assert runs["trial"].isna().all() and runs["budget"].isna().all() and runs["validation_loss"].isna().all()
    assert runs["test_loss"].notna().all() and runs["test_metric"].notna().all()


# -- choosing -----------------------------------------------------------------------------------

def test_a_rule_whose_trials_all_diverged_runs_its_defaults_and_says_so():
    tiny = config()
    losses = {spec.run_id: (None if spec.rule == "sgd" else 1.0 + spec.trial) for spec in sweep.runs(tiny)}
    losses[next(spec.run_id for spec in sweep.runs(tiny) if spec.rule == "adam" and spec.trial == 5)] = 0.5
    final, notes = plan.final_runs(tiny, losses)
    assert len(final) == 20 and {spec.phase for spec in final} == {"final"}
    sgd = [spec for spec in final if spec.rule == "sgd"]
    assert {spec.trial for spec in sgd} == {None}
    assert {spec.optimizer_hyperparameters()["lr"] for spec in sgd} == {optim.OPTIMIZERS["sgd"]
                                                                        .default_hyperparameters()["lr"]}
    assert notes == ["sgd on iris (batch size 32): no trial reached a finite validation loss; its final runs take "
                     "the rule's defaults"]
    adam = [spec for spec in final if spec.rule == "adam"]
    assert {spec.trial for spec in adam} == {5} and [spec.seed for spec in adam] == list(range(1, 11))


def test_the_final_runs_wait_for_every_trial():
    tiny = config()
    losses = {spec.run_id: 1.0 for spec in sweep.runs(tiny)[1:]}
    with pytest.raises(ValueError, match="1 of 16 tuning runs are not stored yet"):
        plan.final_runs(tiny, losses)


def test_the_one_shot_budget_tunes_nothing_but_the_defaults():
    one_shot = config(tuning_table={"budget": "one-shot", "final_seeds": 12, "tuning_seed": 3})
    specs = sweep.runs(one_shot)
    assert [(spec.rule, spec.trial, spec.seed) for spec in specs] == [("sgd", 0, 3), ("adam", 0, 3)]
    for spec in specs:
        defaults = optim.OPTIMIZERS[spec.rule].default_hyperparameters()
        assert all(defaults[name] == value for name, value in spec.optimizer_hyperparameters().items())
    final, notes = plan.final_runs(one_shot, {spec.run_id: 1.0 for spec in specs})
    assert notes == [] and len(final) == 24
    assert sorted({spec.seed for spec in final}) == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
