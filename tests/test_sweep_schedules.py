"""The learning-rate schedule as an axis of sweeps: configurations, run ids, training, stores and the report's notes."""

import sqlite3

import numpy as np
import pytest

from fastgd import MLP, optim, sweep
from fastgd.datasets import load as load_dataset
from fastgd.sweep.completeness import planned_runs
from fastgd.sweep.metrics import mixed_settings
from fastgd.sweep.plan import tuning_runs
from fastgd.training import Training, make_schedule

TINY = dict(name="schedules", datasets=["iris"], rules=["sgd", "adam"], learning_rates=[0.1], batch_sizes=[16],
            seeds=[0], epochs=4, targets={"iris": 0.5}, model={"hidden_layer_sizes": [4], "activation": "tanh"})


def test_schedules_are_an_axis_that_leaves_constant_runs_their_ids():
    plain = sweep.parse(dict(TINY))
    assert plain.schedules == ("constant",)
    both = sweep.parse(dict(TINY, schedules=["constant", "trapezoidal", "cosine_restarts"]))
    runs = sweep.runs(both)
    assert len(runs) == 3 * len(sweep.runs(plain))
    assert [spec.schedule for spec in runs[:3]] == ["constant", "trapezoidal", "cosine_restarts"]
    # a store made before schedules were an axis holds the constant runs under the same ids: a sweep resumes it
    assert {spec.run_id for spec in sweep.runs(plain)} == {spec.run_id for spec in runs if spec.schedule == "constant"}
    assert len({spec.run_id for spec in runs}) == len(runs)
    assert planned_runs(both.source).n_runs == len(runs)
    tuned = sweep.parse(dict({key: value for key, value in TINY.items() if key not in ("learning_rates", "seeds")},
                             schedules=["constant", "cosine"], tuning={"budget": "one-shot"}))
    trials = tuning_runs(tuned)
    assert len(trials) == 2 * 2 and {spec.schedule for spec in trials} == {"constant", "cosine"}


@pytest.mark.parametrize("schedules, message", [
    (["constant", "sgdr"], "'schedules': schedule must be one of"),
    (["cosine", "cosine"], "'schedules' lists 'cosine' twice"),
    ([], "'schedules' must be a non-empty list of schedule names"),
    ("cosine", "'schedules' must be a non-empty list of schedule names"),
    ([3], "'schedules' must be a non-empty list of schedule names"),
])
def test_bad_schedules_are_refused(schedules, message):
    with pytest.raises(sweep.SweepConfigError, match=message):
        sweep.parse(dict(TINY, schedules=schedules))


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "alone"])
def test_each_run_trains_and_records_its_schedule(tmp_path, batched):
    config = sweep.parse(dict(TINY, rules=["sgd"], schedules=["constant", "warmup_linear", "invscaling"]))
    sweep.run_sweep(config, tmp_path / "s.db", jobs=1, batched=batched, progress=False)
    runs = sweep.load_runs(tmp_path / "s.db").set_index("schedule")
    assert sorted(runs.index) == ["constant", "invscaling", "warmup_linear"]
    data = load_dataset("iris")
    for name in runs.index:
        net = MLP([data.n_features, 4, data.n_outputs], "tanh", data.output, 1e-4)
        training = Training(net, optim.SGD(net.init(random_state=0), lr=0.1), data.X_train, data.Y_train, 16, seed=0,
                            schedule=make_schedule(name, n_epochs=4))
        history = training.run(4)
        assert runs.loc[name, "final_loss"] == history.loss[-1], name
    assert len(set(runs["final_loss"])) == 3
    lines = mixed_settings(sweep.load_runs(tmp_path / "s.db"))
    assert len(lines) == 1 and "schedule constant, invscaling, warmup_linear" in lines[0]


def test_a_store_from_before_schedules_reads_them_constant(tmp_path):
    sweep.run_sweep(sweep.parse(dict(TINY, rules=["sgd"])), tmp_path / "old.db", jobs=1, progress=False)
    with sqlite3.connect(tmp_path / "old.db") as connection:
        for column in ("model", "schedule"):  # schema 6 added both
            connection.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        connection.execute("ALTER TABLE curves DROP COLUMN objective")  # schema 7 added it
        connection.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    connection.close()
    runs = sweep.load_runs(tmp_path / "old.db")
    assert runs["schedule"].tolist() == ["constant"]
    # the same sweep with a second schedule resumes it: the constant run is stored, the cosine one is added
    outcome = sweep.run_sweep(sweep.parse(dict(TINY, rules=["sgd"], schedules=["constant", "cosine"])),
                              tmp_path / "old.db", jobs=1, progress=False)
    assert outcome.stored == 1
    runs = sweep.load_runs(tmp_path / "old.db")
    assert sorted(runs["schedule"]) == ["constant", "cosine"] and np.isfinite(runs["final_loss"]).all()
