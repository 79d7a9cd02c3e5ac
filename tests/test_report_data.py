"""The report says what data it ran on, and a data set without a configured target gets one it can reach."""

import numpy as np
import pandas as pd
import pytest

from fastgd import cli, sweep

CONFIG = """
name = "own-data"
datasets = ["iris"]
rules = ["adam", "sgd"]
learning_rates = [1e-3]
seeds = [0, 1]
epochs = 6
[model]
hidden_layer_sizes = [8]
[targets]
iris = 0.1
"""


@pytest.fixture(scope="module")
def noisy_regression(tmp_path_factory):
    """A user's regression CSV whose best half squared error is far above 0.1: most of the target is noise."""
    directory = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(price=x[:, 0] + 2.0 * rng.normal(size=160))
    frame.to_csv(directory / "prices.csv", index=False)
    (directory / "sweep.toml").write_text(CONFIG)
    store = directory / "s.db"
    assert cli.main(["sweep", str(directory / "sweep.toml"), "--dataset", str(directory / "prices.csv"),
                     "--target", "price", "--store", str(store), "--jobs", "1", "--quiet"]) == 0
    return directory, store


def test_a_users_regression_gets_a_target_the_reference_run_reaches(noisy_regression):
    from fastgd import datasets, reference
    from fastgd.models import MLP

    directory, store = noisy_regression
    runs = sweep.load_runs(store)
    target = runs["target_loss"].unique().item()
    assert target != 0.1  # the fixed default no rule reached here
    # the initial loss from the NumPy oracle: half the mean squared error of the seed-0 network (and its L2 term)
    data = datasets.make(datasets.Source("prices.csv", path=str(directory / "prices.csv"), target="price"))
    net = MLP([3, 8, 1], "relu", "identity", 1e-4)
    initial = reference.mlp_loss_grad(net.init(random_state=0), data.X_train, data.Y_train, [3, 8, 1], "relu",
                                      "identity", 1e-4)[0]
    assert 0.1 < target < initial
    # the reference run is adam at 1e-3, seed 0, the sweep's network and batch size: its run in the sweep reaches it
    reference_run = runs[(runs["rule"] == "adam") & (runs["seed"] == 0)]
    assert reference_run["epochs_to_target"].notna().item()


def test_the_report_names_the_data_and_how_its_target_was_chosen(noisy_regression, tmp_path):
    pytest.importorskip("seaborn")
    from fastgd import datasets

    directory, store = noisy_regression
    assert cli.main(["report", "--store", str(store), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "index.html").read_text()
    data = page.split('<h2 id="data">')[1].split("</table>")[0]
    made = datasets.make(datasets.Source("prices.csv", path=str(directory / "prices.csv"), target="price"))
    assert str(directory / "prices.csv") in data and "<td class=\"text\">price</td>" in data
    assert "regression" in data and f"{made.X_train.shape[0]} + {made.X_test.shape[0]}" in data
    assert made.content_hash[:16] in data
    assert "chosen for this data set: 90% of the way from the initial training loss" in data


def test_a_store_without_descriptions_says_what_it_knows(tmp_path):
    from test_report import render, synthetic_frames

    page = render(tmp_path, synthetic_frames({"adam": 5, "sgd": 30}, n_seeds=2))
    data = page.split('<h2 id="data">')[1].split("</table>")[0]
    assert "a (a data set fastgd knows by name)" in data and "not recorded" in data
    assert "0.1 (how it was chosen is not recorded)" in data
