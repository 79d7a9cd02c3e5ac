"""Paths over the cost surface of a two-parameter model (the lecture's linear regression in θ₀, θ₁): each rule's
path is its stored run taken again step by step, the surface is the training objective, the minimum is one."""

import numpy as np
import pandas as pd
import pytest

from fastgd import datasets, sweep
from fastgd.report import figures
from fastgd.sweep import measure

CONFIG = """
name = "linreg"
rules = ["sgd", "momentum"]
learning_rates = [0.03, 0.3]
seeds = [0, 1]
batch_sizes = [16]
epochs = 3
[datasets.line]
loader = "make_regression"
options = {n_samples = 120, n_features = 1, noise = 20.0, bias = 3.0}
model = {hidden_layer_sizes = [], alpha = 0.5}
[datasets.digits]
model = {hidden_layer_sizes = []}
[targets]
line = 0.3
digits = 0.5
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    where = tmp_path_factory.mktemp("paths")
    (where / "linreg.toml").write_text(CONFIG)
    config = sweep.load_config(where / "linreg.toml")
    sweep.run_sweep(config, where / "store.db", jobs=1, progress=False)
    return config, sweep.load_runs(where / "store.db"), sweep.load_curves(where / "store.db")


def test_each_path_is_its_stored_run_again(swept):
    config, runs, curves = swept
    content = measure.parameter_paths(config, "line", runs)
    assert [path["rule"] for path in content["paths"]] == ["sgd", "momentum"]
    for path in content["paths"]:
        run = runs.set_index("run_id").loc[path["run_id"]]
        # the setting of lowest mean final loss over its seeds, drawn from the first seed
        means = runs[(runs["dataset"] == "line") & (runs["rule"] == path["rule"])].groupby("learning_rate")[
            "final_loss"].mean()
        assert run["learning_rate"] == means.idxmin() == path["lr"] and path["seed"] == 0
        stored = curves[curves["run_id"] == path["run_id"]].sort_values("epoch")["loss"].to_numpy()
        np.testing.assert_allclose(path["loss"], stored, rtol=1e-10)
        # 120 rows, 75 % for training, batches of 16: 6 steps an epoch, every one recorded
        assert path["step"] == list(range(3 * 6 + 1)) and len(path["x"]) == len(path["y"]) == 19


def test_the_surface_is_the_training_objective_and_its_minimum(swept):
    config, runs, _ = swept
    content = measure.parameter_paths(config, "line", runs)
    surface = content["functions"][0]
    data = datasets.load("line", config.sources)
    net, _ = config.model("line", data)
    xs, ys, values = (np.asarray(surface[key]) for key in ("xs", "ys", "values"))
    for i, j in [(0, 0), (7, 101), (119, 3), (60, 60)]:
        # θ is (slope, intercept) in the MLP's layout; the picture's x is the intercept θ₀
        assert values[i, j] == pytest.approx(net.loss(np.array([ys[i], xs[j]]), data.X_train, data.Y_train),
                                             rel=1e-12)
    minimum = np.array(surface["minimum"][::-1])
    assert np.max(np.abs(net.loss_grad(minimum, data.X_train, data.Y_train)[1])) < 1e-12
    x_min, x_max, y_min, y_max = surface["bounds"]
    assert x_min < surface["minimum"][0] < x_max and y_min < surface["minimum"][1] < y_max
    for path in content["paths"]:
        assert x_min <= min(path["x"]) and max(path["x"]) <= x_max


def test_other_models_have_no_paths_and_the_figure_draws(swept, tmp_path):
    config, runs, _ = swept
    assert measure.parameter_paths(config, "digits", runs) is None  # 64 features, 10 classes
    content = measure.parameter_paths(config, "line", runs)
    figure = figures.draw_parameter_paths({"line": content}, tmp_path)
    drawn = pd.read_csv(tmp_path / f"{figure.stem}.csv")
    assert (tmp_path / figure.png).stat().st_size > 0
    assert sorted(drawn["rule"].unique()) == ["momentum", "sgd"] and len(drawn) == 2 * 19
