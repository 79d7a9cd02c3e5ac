"""L-BFGS in sweeps (fastgd.sweep.solvers): configurations, run ids, training against fastgd.optim.LBFGS, tuning
spaces, the store's curves and the report."""

import numpy as np
import pytest

from fastgd import MLP, optim, sweep
from fastgd.datasets import load as load_dataset
from fastgd.sweep import solvers, tuning
from fastgd.sweep.plan import tuning_runs

TINY = dict(name="lbfgs", datasets=["iris"], rules=["sgd", "lbfgs"], learning_rates=[0.5], batch_sizes=["full"],
            seeds=[0], epochs=3, targets={"iris": 0.3}, model={"hidden_layer_sizes": [4], "activation": "tanh"})


def test_lbfgs_is_listed_like_a_rule_with_a_grid_and_its_own_run_ids():
    config = sweep.parse(dict(TINY, hyperparameters={"lbfgs": {"history_size": [3, 10], "line_search": [0, 1]}}))
    runs = [spec for spec in sweep.runs(config) if spec.rule == "lbfgs"]
    assert sorted(spec.hyperparameters for spec in runs) == [
        (("history_size", 3), ("line_search", 0)), (("history_size", 3), ("line_search", 1)),
        (("history_size", 10), ("line_search", 0)), (("history_size", 10), ("line_search", 1))]
    assert {spec.rule_hash for spec in runs} == {solvers.LBFGS.hash} and len({spec.run_id for spec in runs}) == 4
    assert "lbfgs" not in sweep.parse(dict(TINY, rules="all")).rules  # "all": the registered rules


@pytest.mark.parametrize("change, message", [
    (dict(batch_sizes=[16]), "rule 'lbfgs' trains on the full batch only: the batch sizes of 'iris' must be "
                             "[\"full\"], got [16]"),
    (dict(batch_sizes=[16, "full"]), "the batch sizes of 'iris' must be [\"full\"], got [16, 'full']"),
    (dict(schedules=["constant", "cosine"]), "rule 'lbfgs' takes no learning-rate schedule"),
    (dict(hyperparameters={"lbfgs": {"history_size": [0]}}), "lbfgs: history_size must be an integer >= 1, got 0"),
    (dict(hyperparameters={"lbfgs": {"line_search": [2]}}), "lbfgs: line_search must be 1 (strong Wolfe) or 0"),
    (dict(hyperparameters={"lbfgs": {"momentum": [0.9]}}), "rule 'lbfgs' has no hyperparameter 'momentum'"),
    (dict(rules=["lbfgz"]), "unknown rule 'lbfgz'"),
])
def test_what_cannot_work_is_refused_in_one_line(change, message):
    with pytest.raises(sweep.SweepConfigError) as error:
        sweep.parse(dict(TINY, **change))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("line_search", [1, 0])
def test_a_run_is_epochs_of_torchs_step_as_optim_lbfgs_takes_them(tmp_path, line_search):
    """Stored losses, seconds and test loss against fastgd.optim.LBFGS with a Python closure on the same data and
    initial weights: each epoch one step of max_iter iterations, its loss the step's first (as torch's step returns
    it), the state carried over."""
    config = sweep.parse(dict(TINY, rules=["lbfgs"], learning_rates=[0.5 if line_search else 0.1],
                              hyperparameters={"lbfgs": {"history_size": [5], "max_iter": [6],
                                                         "line_search": [line_search]}}))
    outcome = sweep.run_sweep(config, tmp_path / "s.db", jobs=1, progress=False)
    assert (outcome.stored, outcome.failed) == (1, 0)
    run = sweep.load_runs(tmp_path / "s.db").iloc[0]
    curve = sweep.load_curves(tmp_path / "s.db").sort_values("epoch")
    data = load_dataset("iris")
    net = MLP([data.n_features, 4, data.n_outputs], "tanh", data.output, 1e-4)
    theta = net.init(random_state=0)
    X, Y = net.check_data(data.X_train, data.Y_train)
    optimizer = optim.LBFGS(theta, lr=0.5 if line_search else 0.1, max_iter=6, history_size=5,
                            line_search_fn="strong_wolfe" if line_search else None)
    losses = [optimizer.step(lambda: net.loss_grad(theta, X, Y)) for _ in range(3)]
    np.testing.assert_allclose(curve["loss"].to_numpy(float), losses, rtol=1e-12)
    assert run["final_loss"] == pytest.approx(losses[-1], rel=1e-12)
    assert run["test_loss"] == pytest.approx(net.loss(theta, data.X_test, data.Y_test), rel=1e-10)
    seconds = curve["seconds"].to_numpy(float)
    assert len(seconds) == 3 and np.all(np.diff(seconds) > 0)
    assert losses[-1] < 0.5 * losses[0]


def test_tuning_draws_lbfgs_settings_from_its_space():
    one_shot = tuning.sample_settings("lbfgs", "one-shot")
    assert one_shot == [{"lr": 1.0, "history_size": 100, "line_search": 1}]
    trials = tuning.sample_settings("lbfgs", "small", seed=0)
    assert len(trials) == 8 and len({tuple(sorted(t.items())) for t in trials}) == 8
    assert all(0.05 <= t["lr"] <= 2.0 and 3 <= t["history_size"] <= 100 and t["line_search"] in (0, 1)
               for t in trials)
    assert {t["line_search"] for t in trials} == {0, 1}
    config = sweep.parse(dict({key: value for key, value in TINY.items() if key not in ("learning_rates", "seeds")},
                              rules=["lbfgs"], tuning={"budget": "small"}))
    specs = tuning_runs(config)
    assert len(specs) == 8 and all(spec.split == "validation" for spec in specs)


def test_a_tuned_lbfgs_sweep_stores_and_the_report_draws_it(tmp_path):
    """The whole protocol (one-shot) for sgd and lbfgs, then the report: lbfgs is drawn and named as a rule of the
    store, trained alone, with no note that it is unknown here."""
    pytest.importorskip("seaborn", reason="the report draws with seaborn")
    from fastgd.report.build import build_report

    config = sweep.parse(dict({key: value for key, value in TINY.items() if key not in ("learning_rates", "seeds")},
                              tuning={"budget": "one-shot", "final_seeds": 10}))
    outcome = sweep.run_sweep(config, tmp_path / "s.db", jobs=1, progress=False)
    assert outcome.failed == 0 and outcome.phases["final"][0] == 2 * 10
    runs = sweep.load_runs(tmp_path / "s.db")
    assert (runs["rule"] == "lbfgs").sum() == 11 and runs.loc[runs["rule"] == "lbfgs", "final_loss"].notna().all()
    html = build_report(tmp_path / "out", tmp_path / "s.db").read_text()
    assert "lbfgs" in html and "rules not registered here" not in html
