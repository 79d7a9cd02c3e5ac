"""Sweeps of declared networks: the TOML's model, refused in one line where it cannot train; trained, reported."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from cli_harness import run_command
from fastgd import cli, datasets, networks, optim, sweep
from fastgd.training import Training

BASE = dict(name="cnn", datasets=["digits"], rules=["sgd"], learning_rates=[0.1], seeds=[0], epochs=1,
            targets={"digits": 0.5})
CONV = {"type": "Conv2D", "out_channels": 2, "kernel_size": 3}
DENSE = {"type": "Linear", "out_features": 10}


@pytest.mark.parametrize("extra, message", [
    (dict(model="vgg16"), "[model]: no known architecture 'vgg16'; known: 2c2d, 3c3d,"),
    (dict(model={"architecture": "digits_cnn", "activation": "tanh"}),
     "[model] declares a network (architecture): activation is the MLP's"),
    (dict(model={"architecture": "digits_cnn", "alpha": -0.1}), "[model] alpha must be a finite number >= 0, got -0.1"),
    (dict(model={"architecture": "digits_cnn", "alpha": float("inf")}), "[model] alpha must be a finite number >= 0"),
    (dict(model={"architecture": "digits_cnn", "init": "xavier"}),
     "[model] init must be one of 'torch', 'lecture', got 'xavier'"),
    (dict(model={"layers": [DENSE], "alpha": 1e-3, "seed": 0}), "[model] has no key 'seed' (a network is an "
                                                                "architecture, or layers with an input_shape, and may "
                                                                "take alpha, init and parameter_order)"),
    (dict(model={"architecture": "digits_cnn", "input_shape": [1, 8, 8]}),
     "[model] names the architecture 'digits_cnn': it has its own layers and input shape"),
    (dict(model={"layers": [{"type": "Conv3D", "out_channels": 2}]}), "[model] layers[0]: unknown layer type 'Conv3D'"),
    (dict(model={"layers": [{"out_channels": 2}]}), "[model] layers[0] must be a table with a type"),
    (dict(model={"layers": [dict(CONV, kernel=3)], "input_shape": [1, 8, 8]}),
     "[model] layers[0] (Conv2D): no argument 'kernel' (it takes out_channels, kernel_size, stride, padding, bias)"),
    (dict(model={"layers": [{"type": "Conv2D", "out_channels": 2}], "input_shape": [1, 8, 8]}),
     "[model] layers[0] (Conv2D): kernel_size is missing"),
    (dict(model={"layers": [{"type": "ReLU", "inplace": True}]}), "[model] layers[0] (ReLU): no argument 'inplace' "
                                                                    "(it takes no arguments)"),
    (dict(model={"layers": [CONV, {"type": "Flatten"}, DENSE], "input_shape": [1, 8, 9]}),
     "[model] on digits: the layers take inputs of shape (1, 8, 9), 72 values per sample; the data set has 64 columns"),
    (dict(model={"layers": [{"type": "Flatten"}, CONV], "input_shape": [1, 8, 8]}),
     "[model] on digits: layer 1 (Conv2D): takes an input (channels, height, width), got (64,)"),
    (dict(model={"layers": [dict(CONV, kernel_size=9), {"type": "Flatten"}, DENSE], "input_shape": [1, 8, 8]}),
     "[model] on digits: layer 0 (Conv2D): kernel (9, 9) is larger than its padded input (8, 8)"),
    (dict(model={"layers": [dict(CONV, stride=0), {"type": "Flatten"}, DENSE], "input_shape": [1, 8, 8]}),
     "[model] on digits: layer 0 (Conv2D): stride must be ≥ 1, got 0"),
    (dict(model={"layers": [CONV], "input_shape": [1, 8, 8]}), "[model] on digits: layer 0 (Conv2D): the network's "
                                                               "output must be flat"),
    (dict(model={"layers": [{"type": "Flatten"}, {"type": "Linear", "out_features": 3}], "input_shape": [1, 8, 8]}),
     "[model] on digits: the layers end with 3 outputs; the data set has 10 classes"),
    (dict(model={"layers": [DENSE], "hidden_layer_sizes": [3]}),
     "[model] declares a network (layers): hidden_layer_sizes is the MLP's"),
    (dict(model={"input_shape": [64]}), "[model] gives an input_shape but no layers"),
    (dict(model={"layers": []}), "[model] layers must be a non-empty list of tables"),
    (dict(model={"layers": [DENSE], "input_shape": [0]}), "[model] input_shape must be 1 to 3 positive integers"),
    (dict(model={"layers": [DENSE], "kind": "cnn"}), "[model] has no key 'kind'"),
    (dict(datasets={"iris": {"model": "digits_cnn"}}, targets={"iris": 0.1}),
     "[datasets.iris] model: digits_cnn takes inputs of shape (1, 8, 8), 64 values per sample; the data set has 4 "
     "columns"),
    (dict(datasets=["digits", "iris"], model="digits_cnn", targets={"digits": 0.1, "iris": 0.1}),
     "[model] on iris: digits_cnn takes inputs of shape (1, 8, 8), 64 values per sample"),
    (dict(datasets=["synthetic-regression-100x64"], model="digits_cnn", targets={"synthetic-regression-100x64": 1}),
     "digits_cnn is a network for classification (cross-entropy); the data set is regression"),
    (dict(model={"layers": [{"type": "Flatten"}, {"type": "Linear", "out_features": 10 ** 6},
                            {"type": "Linear", "out_features": 10 ** 6}, DENSE], "input_shape": [1, 8, 8]}),
     "[model] on digits: layer 1 (Dense) and the rest need"),
])
def test_a_model_that_cannot_train_is_refused_in_one_line_before_anything_runs(extra, message):
    with pytest.raises(sweep.SweepConfigError) as refused:
        sweep.parse(dict(BASE, **extra))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_declared_network_has_one_spelling_and_leaves_an_mlps_run_as_it_was():
    layers = [CONV, {"type": "ReLU"}, {"type": "Flatten"}, DENSE]
    torch_spelling = [dict(CONV, type="conv2d", stride=1, padding=0), {"type": "relu"}, {"type": "Flatten"},
                      {"type": "Dense", "out_features": 10, "bias": True}]
    ids = [sweep.runs(sweep.parse(dict(BASE, model={"layers": declared, "input_shape": [1, 8, 8]})))[0].run_id
           for declared in (layers, torch_spelling)]
    assert ids[0] == ids[1]
    named = [sweep.runs(sweep.parse(dict(BASE, model=model)))[0] for model in
             ("digits_cnn", {"architecture": "digits_cnn"})]
    assert named[0].run_id == named[1].run_id != ids[0]
    assert json.loads(named[0].model) == {"architecture": "digits_cnn"}
    assert (named[0].hidden_layer_sizes, named[0].activation, named[0].alpha) == ((), "", 0.0)
    # a data set's own model overrides [model], an MLP's table included
    mixed = sweep.parse(dict(BASE, datasets={"digits": {}, "iris": {"model": {"hidden_layer_sizes": [4]}}},
                             model="digits_cnn", targets={"digits": 0.5, "iris": 0.5}))
    assert mixed.network_of("digits") is not None and mixed.network_of("iris") is None
    assert mixed.model_of("iris")[0] == (4,)
    # an MLP's run is identified as before networks could be declared: by its fields without the model
    mlp = sweep.runs(sweep.parse(BASE))[0]
    fields = {name: value for name, value in dataclasses.asdict(mlp).items()
              if name in ("dataset", "rule", "learning_rate", "hyperparameters", "batch_size", "seed", "n_epochs",
                          "hidden_layer_sizes", "activation", "alpha", "dtype", "target_loss", "rule_hash",
                          "data_hash")}
    assert mlp.model is None
    assert mlp.run_id == hashlib.sha1(json.dumps(fields, sort_keys=True, default=list).encode()).hexdigest()[:20]


CNN_SWEEP = """
name = "digits-cnn"
rules = ["sgd", "adam"]
learning_rates = [0.01]
seeds = [0, 1]
epochs = 2
batch_sizes = [64]

[datasets.digits]
model = "digits_cnn"

[targets]
digits = 0.5
"""


@pytest.fixture(scope="module")
def cnn_store(tmp_path_factory):
    """The digits CNN, 2 rules × 2 seeds × 2 epochs, swept by the command line (runs trained together)."""
    directory = tmp_path_factory.mktemp("cnn")
    (directory / "cnn.toml").write_text(CNN_SWEEP)
    store = directory / "cnn.db"
    assert cli.main(["sweep", str(directory / "cnn.toml"), "--store", str(store), "--jobs", "1", "--quiet"]) == 0
    return directory, store


def test_a_cnn_sweep_stores_what_training_the_network_alone_gives(cnn_store):
    directory, store = cnn_store
    runs = sweep.load_runs(store).set_index(["rule", "seed"])
    assert len(runs) == 4 and (runs["status"] == "ok").all() and runs["batched"].all()
    assert set(runs["model"]) == {'{"architecture": "digits_cnn"}'}
    # the oracle: fastgd.training.Training of the known network, the run's seed for θ and batches
    digits = datasets.load("digits")
    for (rule, seed), run in runs.iterrows():
        net = networks.known("digits_cnn")
        optimizer = optim.OPTIMIZERS[rule](net.init(random_state=seed), lr=0.01)
        history = Training(net, optimizer, digits.X_train, digits.Y_train, 64, seed=seed).run(2)
        assert run["final_loss"] == history.loss[-1]
        assert run["test_metric"] == digits.test_metric(net.predict(optimizer.params, digits.X_test))
    assert runs.loc[("adam", 0), "final_loss"] < runs.loc[("sgd", 0), "final_loss"] < np.log(10)
    curves = sweep.load_curves(store)
    assert len(curves) == 8


def test_a_cnn_sweep_one_at_a_time_gives_the_same_runs_and_a_second_sweep_resumes(cnn_store, tmp_path):
    directory, store = cnn_store
    config = sweep.load_config(directory / "cnn.toml")
    alone = sweep.run_sweep(config, tmp_path / "alone.db", jobs=1, progress=False, batched=False)
    assert alone.stored == 4 and alone.failed == 0
    together = sweep.load_runs(store).set_index("run_id").sort_index()
    one_by_one = sweep.load_runs(tmp_path / "alone.db").set_index("run_id").sort_index()
    assert one_by_one.index.equals(together.index)
    assert (one_by_one["final_loss"] == together["final_loss"]).all()
    again = sweep.run_sweep(config, store, jobs=1, progress=False)
    assert (again.total, again.skipped, again.stored) == (4, 4, 0)


def test_the_report_of_a_cnn_sweep_names_its_network(cnn_store, tmp_path):
    pytest.importorskip("seaborn")
    directory, store = cnn_store
    code, _, err = run_command(["report", "--store", str(store), "--out", str(tmp_path / "out")], tmp_path)
    assert code == 0, err[-3000:]
    page = (tmp_path / "out" / "index.html").read_text()
    data = page.split('<h2 id="data">')[1].split("</table>")[0]
    assert "model (parameters)" in data and "digits_cnn (6,090 parameters)" in data
    assert 'src="convergence.png"' in page and (tmp_path / "out" / "convergence.png").exists()
    assert "mixes runs of different settings" not in page


def test_a_report_without_descriptions_names_the_layers_from_the_runs(tmp_path):
    pytest.importorskip("seaborn")
    from fastgd.report.build import build_report

    layers = [dict(CONV, padding="same"), {"type": "ReLU"}, {"type": "MaxPool2D", "kernel_size": 2},
              {"type": "Flatten"}, DENSE]
    config = sweep.parse(dict(BASE, model={"layers": layers, "input_shape": [1, 8, 8]}, rules=["sgd", "adam"],
                              learning_rates=[0.01], seeds=[0, 1]))
    sweep.run_sweep(config, tmp_path / "s.db", jobs=1, progress=False)  # from Python: no descriptions stored
    data = build_report(tmp_path / "out", tmp_path / "s.db").read_text().split('<h2 id="data">')[1]
    assert ("Conv2D(out_channels=2, kernel_size=3, padding=&#39;same&#39;), ReLU(), MaxPool2D(kernel_size=2), "
            "Flatten(), Dense(out_features=10) on (1, 8, 8) (parameters not recorded)") in data


def test_the_report_draws_the_landscape_of_a_cnn_data_set_around_the_trained_network(cnn_store, tmp_path,
                                                                                   monkeypatch):
    """compare's measurement (fastgd.sweep.measure.dataset_landscape) trains the data set's declared network and
    samples its loss around θ; the line's centre is that network's loss at θ trained again here; the report draws
    it and names the network, and says nothing is missing."""
    pytest.importorskip("seaborn")
    import shutil

    from fastgd import landscape
    from fastgd.report.sections import landscape_artefact
    from fastgd.sweep import measure

    for name, value in [("TRAINING_BUDGET", 1.0), ("LANDSCAPE_ROWS", 150), ("PLANE_POINTS", 5),
                        ("MIN_PLANE_POINTS", 5)]:
        monkeypatch.setattr(landscape, name, value)  # 3 epochs on 150 rows, a 5 × 5 plane and a line of 9
    directory, store = cnn_store
    config = sweep.load_config(directory / "cnn.toml")
    drawn = measure.dataset_landscape(config, "digits")
    assert (drawn["model"], drawn["n_epochs"], drawn["rows"], len(drawn["alphas"])) == ("digits_cnn", 3, 150, 9)
    assert np.array(drawn["plane"]).shape == (5, 5) and drawn["plane"][2][2] == pytest.approx(drawn["line"][4],
                                                                                               rel=1e-12)
    # the oracle: the same sample, θ and batches trained by fastgd.training.Training
    digits = datasets.load("digits")
    rows = np.sort(np.random.default_rng(0).choice(digits.X_train.shape[0], 150, replace=False))
    net = networks.known("digits_cnn")
    optimizer = optim.Adam(net.init(random_state=0), lr=3e-3)
    Training(net, optimizer, digits.X_train[rows], digits.Y_train[rows], 32, seed=0).run(3)
    trained_loss = net.loss(optimizer.params, digits.X_train[rows], digits.Y_train[rows])
    assert drawn["line"][4] == pytest.approx(trained_loss, rel=1e-12)
    assert max(drawn["line"]) > trained_loss  # a point away from θ is higher

    copy = tmp_path / "cnn.db"
    shutil.copy(store, copy)
    with sweep.Store(copy) as opened:
        opened.put_artefact(landscape_artefact("digits"), drawn, {"made": "here"})
    code, _, err = run_command(["report", "--store", str(copy), "--out", str(tmp_path / "out")], tmp_path)
    assert code == 0, err[-3000:]
    page = (tmp_path / "out" / "index.html").read_text()
    assert 'src="landscape.png"' in page and (tmp_path / "out" / "landscape.png").exists()
    assert "digits: digits_cnn, 3 epochs of adam on 150 rows (a sample of" in page
    assert "Loss landscape of digits" not in page


def test_a_networks_alpha_and_init_define_its_runs_and_their_defaults_leave_the_ids_as_they_were():
    plain = sweep.runs(sweep.parse(dict(BASE, model="digits_cnn")))[0]
    spelled = sweep.runs(sweep.parse(dict(BASE, model={"architecture": "digits_cnn", "alpha": 0, "init": "torch"})))[0]
    assert spelled.run_id == plain.run_id and spelled == plain
    config = sweep.parse(dict(BASE, model={"architecture": "digits_cnn", "alpha": 1e-3, "init": "lecture"}))
    penalised = sweep.runs(config)[0]
    assert penalised.run_id != plain.run_id and penalised.alpha == 1e-3
    assert json.loads(penalised.model) == {"alpha": 1e-3, "architecture": "digits_cnn", "init": "lecture"}
    assert sweep.config.model_description(penalised.model) == "digits_cnn, alpha 0.001, lecture init"
    net, init = config.model("digits", datasets.load("digits"))
    assert net.alpha == 1e-3 and net.n_params == networks.known("digits_cnn").n_params
    np.testing.assert_array_equal(init(4), networks.known("digits_cnn").init(random_state=4, scheme="lecture"))
    layers = sweep.parse(dict(BASE, model={"layers": [{"type": "Flatten"}, DENSE], "input_shape": [1, 8, 8],
                                           "alpha": 0.5}))
    assert layers.model("digits", datasets.load("digits"))[0].alpha == 0.5


def test_a_penalised_network_with_the_lectures_init_sweeps_as_training_it_alone_does(tmp_path):
    """The oracle: fastgd.training.Training of the known network with the penalty, from the lecture's θ of the run's
    seed; its stored loss is above the unpenalised network's (the penalty is in the loss)."""
    model = {"architecture": "digits_cnn", "alpha": 0.5, "init": "lecture"}
    config = sweep.parse(dict(BASE, model=model, rules=["adam"], learning_rates=[0.01], seeds=[3],
                              batch_sizes=[64]))
    outcome = sweep.run_sweep(config, tmp_path / "s.db", jobs=1, progress=False)
    assert outcome.stored == 1 and outcome.failed == 0
    run = sweep.load_runs(tmp_path / "s.db").iloc[0]
    assert run["alpha"] == 0.5
    digits = datasets.load("digits")
    net = networks.known("digits_cnn").with_alpha(0.5)
    theta = net.init(random_state=3, scheme="lecture")
    assert not theta[net.tensors[1].offset:net.tensors[1].offset + net.tensors[1].size].any()  # zero biases
    optimizer = optim.Adam(theta, lr=0.01)
    history = Training(net, optimizer, digits.X_train, digits.Y_train, 64, seed=3).run(1)
    assert run["final_loss"] == history.loss[-1]
    unpenalised = networks.known("digits_cnn")
    optimizer = optim.Adam(unpenalised.init(random_state=3, scheme="lecture"), lr=0.01)
    assert Training(unpenalised, optimizer, digits.X_train, digits.Y_train, 64, seed=3).run(1).loss[-1] < \
        run["final_loss"]


@pytest.mark.parametrize("scheme", ["torch", "lecture"])
def test_the_init_schemes_draw_as_torchs_own_initialisers(scheme):
    """Against torch: its layers' reset_parameters (the "torch" scheme) or xavier_uniform_ and zero biases (the
    lecture's) on tensors of the same shapes: the same bound (torch's largest draw), the same spread."""
    torch = pytest.importorskip("torch", reason="torch's initialisers are the oracle of the schemes")
    from tests.network_cases import torch_module

    net = networks.known("2c2d")
    theta = net.init(random_state=0, scheme=scheme)
    torch.manual_seed(0)
    module = torch_module(net, np.zeros(net.n_params))
    for layer in module:
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
            if scheme == "lecture":
                torch.nn.init.xavier_uniform_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
    fans = {name + ".weight": torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)
            for name, layer in module.named_children() if hasattr(layer, "weight")}
    for (name, ours), theirs in zip(net.unpack(theta).items(), module.state_dict().values()):
        theirs = theirs.double().numpy()
        assert ours.shape == theirs.shape
        if not theirs.any():
            assert not ours.any(), name
            continue
        fan_in, fan_out = fans[name.replace(".bias", ".weight")]
        bound = np.sqrt(6 / (fan_in + fan_out)) if scheme == "lecture" else 1 / np.sqrt(fan_in)
        assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound * (1 + 1e-6), name
        assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=0.2), name
        assert ours.std() == pytest.approx(theirs.std(), rel=0.1 if ours.size >= 1000 else 0.5), name


# -- parameter_order: the same layers in scikit-learn's order are the MLP's network, a run of their own --------------

TANH_STACK = [{"type": "Dense", "out_features": 5}, {"type": "Tanh"}, {"type": "Dense", "out_features": 3}]
IRIS = dict(BASE, datasets=["iris"], targets={"iris": 0.5})


@pytest.mark.parametrize("model, message", [
    ({"layers": TANH_STACK, "parameter_order": "sklearn"},
     "[model] parameter_order must be one of 'torch', 'scikit-learn', got 'sklearn'"),
    ({"layers": TANH_STACK, "parameter_order": 1}, "[model] parameter_order must be one of 'torch', 'scikit-learn', "
                                                   "got 1"),
    ({"layers": TANH_STACK, "parameter_order": "scikit-learn", "init": "torch"},
     "[model] init must be one of 'scikit-learn' in parameter_order 'scikit-learn', got 'torch'"),
    ({"layers": TANH_STACK, "init": "scikit-learn"}, "[model] init must be one of 'torch', 'lecture', got "
                                                     "'scikit-learn'"),
    ({"architecture": "mlp_64_100_10", "parameter_order": "scikit-learn"},
     "[model] names the architecture 'mlp_64_100_10', declared in torch's parameter order: parameter_order "
     "'scikit-learn' is for layers declared here"),
    ({"layers": [{"type": "Dense", "out_features": 5}, {"type": "ReLU"}, {"type": "Dense", "out_features": 5},
                 {"type": "Tanh"}, {"type": "Dense", "out_features": 3}], "parameter_order": "scikit-learn"},
     "[model] on iris: layer 3 (Tanh)"),
])
def test_a_bad_parameter_order_is_refused_in_one_line(model, message):
    with pytest.raises(sweep.SweepConfigError) as refused:
        sweep.parse(dict(IRIS, model=model))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_two_parameter_orders_are_different_runs_and_torchs_spelled_out_leaves_the_id():
    torch_order, spelled, scikit_learn = (
        sweep.runs(sweep.parse(dict(IRIS, model=model)))[0] for model in (
            {"layers": TANH_STACK}, {"layers": TANH_STACK, "parameter_order": "torch", "init": "torch"},
            {"layers": TANH_STACK, "parameter_order": "scikit-learn", "init": "scikit-learn"}))
    assert spelled == torch_order
    assert scikit_learn.run_id != torch_order.run_id
    assert json.loads(scikit_learn.model)["parameter_order"] == "scikit-learn"
    assert "init" not in json.loads(scikit_learn.model)  # the order's own scheme, left out as torch's is
    assert sweep.config.model_description(scikit_learn.model) == \
        "Dense(out_features=5), Tanh(), Dense(out_features=3) on the columns, scikit-learn parameter order"
    assert sweep.config.model_description(torch_order.model) == \
        "Dense(out_features=5), Tanh(), Dense(out_features=3) on the columns"


def test_a_scikit_learn_order_sweep_trains_the_mlp_that_declaration_is(tmp_path):
    """The oracle: fastgd.MLP of the same sizes and activation, θ drawn by scikit-learn's scheme for the run's seed,
    trained alone by fastgd.training.Training on the same batches; the torch-order run of the same layers is
    another run of the store, from another θ."""
    (tmp_path / "orders.toml").write_text("""
name = "orders"
rules = ["adam"]
learning_rates = [0.01]
seeds = [2]
epochs = 2
batch_sizes = [16]

[datasets.iris]
model = {parameter_order = "scikit-learn", layers = [
    {type = "Dense", out_features = 5}, {type = "Tanh"}, {type = "Dense", out_features = 3}]}

[targets]
iris = 0.5
""")
    code, _, err = run_command(["sweep", "orders.toml", "--store", "s.db", "--jobs", "1", "--quiet"], tmp_path)
    assert code == 0, err
    (tmp_path / "torch.toml").write_text((tmp_path / "orders.toml").read_text().replace(
        'parameter_order = "scikit-learn", ', ""))
    code, _, err = run_command(["sweep", "torch.toml", "--store", "s.db", "--jobs", "1", "--quiet"], tmp_path)
    assert code == 0, err
    runs = sweep.load_runs(tmp_path / "s.db")
    assert len(runs) == 2 and runs["run_id"].nunique() == 2
    stored = runs[runs["model"].str.contains("scikit-learn")].iloc[0]
    iris = datasets.load("iris")
    from fastgd import MLP

    mlp = MLP([4, 5, 3], "tanh", "softmax", alpha=0.0)
    optimizer = optim.Adam(mlp.init(random_state=2), lr=0.01)
    history = Training(mlp, optimizer, iris.X_train, iris.Y_train, 16, seed=2).run(2)
    assert stored["final_loss"] == history.loss[-1]
    other = runs[~runs["model"].str.contains("scikit-learn")].iloc[0]
    assert other["final_loss"] != stored["final_loss"]
