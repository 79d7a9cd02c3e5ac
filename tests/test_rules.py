"""Users' rules, first-class: one definition through every path, and the definitions that cannot work.

Two users' rules: the README's worked example (Signum, read from the README itself) and
``plugins/sklearn_adam.py``, whose oracle is scikit-learn's own Adam and which exercises
flags, derived flags, optional state and an initial state taken from the parameters.
"""

import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

from fastgd import MLPClassifier, functions, optim, reference, rules, sweep
from fastgd.rules import kernels
from cli_harness import assert_refused
from rule_cases import SKLEARN_ADAM, problem, readme_plugin, run


@pytest.fixture(scope="module")
def user_rules(tmp_path_factory):
    """Both users' rules loaded as plugins; their Plugin objects by rule name."""
    loaded = {}
    for path in (readme_plugin(tmp_path_factory.mktemp("plugin")), SKLEARN_ADAM):
        plugin = rules.resolve_plugin(str(path))
        for name in rules.load_plugin(plugin):
            loaded[name] = plugin
    assert {"signum", "sklearn_adam"} <= set(loaded)
    yield loaded
    for name in loaded:  # other tests' registries hold the built-ins only
        rules.unregister(name)


# -- the optimizer class, the kernels, the oracle -------------------------------------------------

@pytest.mark.parametrize("name, hyperparameters", [
    ("signum", {}), ("signum", dict(lr=0.01, beta=0.5, weight_decay=0.1)),
    ("sklearn_adam", {}), ("sklearn_adam", dict(lr=0.01, amsgrad=True)),
    ("sklearn_adam", dict(lr=0.01, pull_strength=0.05, betas=(0.8, 0.99))),
])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_users_rules_match_their_own_numpy_reference(user_rules, name, hyperparameters, dtype, rtol):
    start, gradient = problem(37, dtype)
    compiled = optim.OPTIMIZERS[name](start.copy(), **hyperparameters)
    oracle = reference.ReferenceOptimizer(name, start.copy(), **hyperparameters)
    run(compiled, gradient, 200)
    run(oracle, gradient, 200)
    assert compiled.params.dtype == dtype
    np.testing.assert_allclose(compiled.params, oracle.params, rtol=rtol, atol=rtol * 1e-3)
    for key, value in compiled.state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(value, oracle.state[key], rtol=rtol, atol=rtol * 1e-3)


def test_sklearn_adam_matches_scikit_learns_own_optimizer(user_rules):
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

    start, gradient = problem(37, np.float64)
    ours = optim.OPTIMIZERS["sklearn_adam"](start.copy(), lr=0.01, betas=(0.9, 0.99), eps=1e-7)
    theirs_params = start.copy()
    theirs = AdamOptimizer([theirs_params], learning_rate_init=0.01, beta_1=0.9, beta_2=0.99, epsilon=1e-7)
    for step in range(200):
        ours.step(gradient(ours.params, step))
        theirs.update_params([theirs_params], [gradient(theirs_params, step)])
    np.testing.assert_allclose(ours.params, theirs_params, rtol=1e-10)


def test_a_users_rule_gets_a_class_kernels_and_a_state_dict(user_rules):
    cls = optim.OPTIMIZERS["sklearn_adam"]
    assert cls.__name__ == "SklearnAdam" and "scikit-learn" in cls.__doc__
    assert cls.default_hyperparameters() == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False,
                                                 pull_strength=0.0)
    assert list(cls.__signature__.parameters)[:2] == ["params", "lr"]
    assert kernels.kernel_parameters("signum") == ("params", "grad", "momentum_buffer", "step", "lr", "beta",
                                                   "weight_decay")
    params = np.ones(4)
    kernels.signum(params, np.ones(4), np.zeros(4), 1, 0.5, 0.9, 0.0)
    np.testing.assert_array_equal(params, 0.5)

    start, gradient = problem(16, np.float64)
    original = cls(start.copy(), pull_strength=0.1, amsgrad=True)
    np.testing.assert_array_equal(original.state["anchor"], start)  # the initial state from the parameters
    run(original, gradient, 5)
    restored = cls(original.params.copy())
    restored.load_state_dict(original.state_dict())
    copied = pickle.loads(pickle.dumps(original))
    run(original, gradient, 5)
    for other in (restored, copied):
        run(other, gradient, 5)
        np.testing.assert_array_equal(other.params, original.params)


def test_structure_of_a_users_rule_is_fixed_after_construction(user_rules):
    optimizer = optim.OPTIMIZERS["sklearn_adam"](np.ones(3))
    optimizer.param_groups[0]["pull_strength"] = 0.5
    with pytest.raises(ValueError, match="pull_strength cannot change"):
        optimizer.step(np.ones(3))


def test_a_users_rule_reaches_the_rosenbrock_minimum_on_a_compiled_trajectory(user_rules):
    path = functions.trajectory("rosenbrock", "sklearn_adam", 6000, lr=0.01)
    np.testing.assert_allclose(path[-1], [1.0, 1.0], atol=1e-3)


# -- training, estimators, sweeps ---------------------------------------------------------------

def test_estimator_trains_with_a_users_rule_and_pickles(user_rules):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    for name, lr in (("signum", 0.01), ("sklearn_adam", 0.01)):
        clf = MLPClassifier(hidden_layer_sizes=(16,), optimizer=name, learning_rate_init=lr, max_iter=60,
                            random_state=0).fit(X, y)
        assert clf.score(X, y) > 0.9, name
        again = pickle.loads(pickle.dumps(clf))
        np.testing.assert_array_equal(again.predict(X), clf.predict(X))


def test_training_compiles_its_epoch_once_for_every_rule(user_rules):
    from fastgd.kernels.train import train_epoch
    from fastgd.models import MLP
    from fastgd.training import Training

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), np.eye(2)[rng.integers(0, 2, 40)]
    net = MLP([3, 5, 2])
    signatures = None
    for name in ("adam", "signum", "sklearn_adam", "nadam"):
        Training(net, optim.OPTIMIZERS[name](net.init(random_state=0)), X, Y, 8).run(2)
        if signatures is None:
            signatures = set(train_epoch.overloads)
        assert set(train_epoch.overloads) == signatures, name


def _sweep_config(tmp_path, plugin_paths):
    text = "\n".join([
        f"plugins = {[str(path) for path in plugin_paths]!r}".replace("'", '"'),
        'name = "users"', 'datasets = ["iris"]', 'rules = ["signum", "sklearn_adam", "sgd"]',
        "learning_rates = [1e-2, 1e-1]", "seeds = [0, 1]", "epochs = 4", "",
        "[hyperparameters.sklearn_adam]", "amsgrad = [false, true]", "",
        "[model]", "hidden_layer_sizes = [8]", "", "[targets]", "iris = 0.3", ""])
    path = tmp_path / "users.toml"
    path.write_text(text)
    return path


def _results(store):
    runs = sweep.load_runs(store)
    return {(row.rule, row.hyperparameters.get("amsgrad"), row.learning_rate, row.seed): (row.final_loss,
                                                                                        row.rule_hash)
            for row in runs.itertuples()}


@pytest.mark.above_kernels
def test_sweep_of_users_rules_in_worker_processes_and_on_dask(user_rules, tmp_path):
    pytest.importorskip("distributed", reason="the distributed extra (dask[distributed]) is not installed")
    from distributed import LocalCluster

    config = sweep.load_config(_sweep_config(tmp_path, [readme_plugin(tmp_path), SKLEARN_ADAM]))
    assert len(config.plugins) == 2
    alone = sweep.run_sweep(config, tmp_path / "alone.db", jobs=1, batched=False, progress=False)
    local = sweep.run_sweep(config, tmp_path / "local.db", jobs=2, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = sweep.run_sweep(config, tmp_path / "dask.db", scheduler=cluster.scheduler_address,
                                 progress=False)
    for outcome in (alone, local, remote):
        assert outcome.total == outcome.stored == 16 and outcome.failed == 0
    expected = _results(tmp_path / "alone.db")
    assert _results(tmp_path / "local.db") == expected == _results(tmp_path / "dask.db")
    hashes = {(key[0], value[1]) for key, value in expected.items()}
    assert hashes == {(name, rules.get(name).hash) for name in ("signum", "sklearn_adam", "sgd")}


@pytest.mark.above_kernels  # the store's identity of a rule; the sweep's epochs are those of the tests above
def test_an_edited_rule_is_a_new_run(tmp_path):
    plugin = readme_plugin(tmp_path)
    config_path = _sweep_config(tmp_path, [plugin, SKLEARN_ADAM])
    command = [sys.executable, "-m", "fastgd.cli", "sweep", str(config_path), "--store", str(tmp_path / "s.db"),
               "--jobs", "1", "--quiet"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert "16 runs, 16 already stored, 0 new" in again.stdout
    plugin.write_text(plugin.read_text().replace("return param, momentum_buffer\n\ndef",
                                                 "return param + (lr - lr), momentum_buffer\n\ndef"))
    edited = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert edited.returncode == 0, edited.stderr
    assert "16 runs, 12 already stored, 4 new" in edited.stdout  # signum's 4 runs, and only those


def test_a_worker_without_the_plugin_file_loads_the_source_it_is_sent(user_rules, tmp_path):
    plugin = rules.resolve_plugin(str(readme_plugin(tmp_path)))
    (tmp_path / "my_rules.py").unlink()  # the worker's machine lacks the file: it has only what it was sent
    script = ("import pickle, sys\n"
              "from fastgd import rules\n"
              "print(rules.load_plugin(pickle.loads(sys.stdin.buffer.read())), rules.get('signum').hash)")
    result = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(plugin), capture_output=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split() == ["['signum']", rules.get("signum").hash]


def test_a_rule_registered_here_cannot_go_to_worker_processes(tmp_path):
    rule = rules.get("sgd")
    rules.register(rules.Rule("here_only", element=rule.element, hyperparameters=rule.hyperparameters,
                              state=rule.state, derived=rule.derived, per_step=rule.per_step), replace=True)
    try:
        config = sweep.parse({"datasets": ["iris"], "rules": ["here_only"], "learning_rates": [0.1], "seeds": [0],
                              "epochs": 2, "targets": {"iris": 0.5}})
        with pytest.raises(rules.RuleError, match="registered in this process, not by a plugin"):
            sweep.run_sweep(config, tmp_path / "s.db", jobs=2, progress=False)
        assert not (tmp_path / "s.db").exists()
        outcome = sweep.run_sweep(config, tmp_path / "s.db", jobs=1, progress=False)
        assert outcome.stored == 1 and outcome.failed == 0
    finally:
        rules.unregister("here_only")


# -- definitions that cannot work ---------------------------------------------------------------

def _element(param, grad, buffer, lr):
    return param - lr * grad, buffer


def _declaration(**changes):
    declaration = dict(element=_element, hyperparameters={"lr": rules.LearningRate(0.1)},
                       state={"buffer": rules.State()})
    declaration.update(changes)
    return declaration


def _wrong_arity(param, grad, buffer, lr):
    return param - lr * grad


def _not_compilable(param, grad, buffer, lr):
    return param - lr * grad.nope, buffer


def _unknown_name(param, grad, buffer, lr, momentum):
    return param, buffer


@pytest.mark.parametrize("name, changes, message", [
    ("bad_name_x", dict(element=_unknown_name), "the element function's parameter 'momentum' is not a state slot"),
    ("bad_default", dict(hyperparameters={"lr": rules.LearningRate(), "beta": rules.Real()}), "'lr' has no default"),
    ("bad_default2", dict(hyperparameters={"lr": rules.LearningRate(0.1), "beta": rules.Real()}),
     "'beta' has no default"),
    ("bad_range", dict(hyperparameters={"lr": rules.LearningRate(-1.0)}), "refused by its own check"),
    ("no_lr", dict(hyperparameters={"rate": rules.Real(0.1)}), "learning rate 'lr'"),
    ("bad_slot", dict(state={"buffer": rules.State(when="nope")}), "not a flag of the rule"),
    ("missing_slot", dict(state={"buffer": rules.State(), "other": rules.State()}),
     "does not take its state slot 'other'"),
    ("bad_spec", dict(hyperparameters={"lr": 0.1}), "must be declared as Real"),
    ("Bad-Name", {}, "lower-case Python identifier"),
    ("bad_initial", dict(state={"buffer": rules.State(initial="beta")}), "starts at hyperparameter 'beta'"),
    ("array_initial", dict(state={"buffer": rules.State(initial=np.zeros((2, 2)))}),
     "state 'buffer' must start at a number, a hyperparameter name or a function (params, hyperparameters) -> "
     "array, got an array of shape (2, 2)"),
    ("list_initial", dict(state={"buffer": rules.State(initial=[1.0])}), "-> array, got [1.0]"),
])
def test_bad_declarations_are_refused_in_one_line(name, changes, message):
    with pytest.raises(rules.RuleError, match=re.escape(message)) as info:
        rules.Rule(name, **_declaration(**changes))
    assert "\n" not in str(info.value)
    assert name not in rules.RULES


def test_a_built_in_name_is_refused():
    with pytest.raises(rules.RuleError, match="'adam': the name is a built-in rule's"):
        rules.register(rules.Rule("adam", **_declaration()))
    assert rules.get("adam").element is not _element


def test_registering_again_is_idempotent_but_another_definition_needs_replace():
    first = rules.register(rules.Rule("twice", **_declaration()))
    try:
        assert rules.register(rules.Rule("twice", **_declaration())) is first
        other = rules.Rule("twice", **_declaration(hyperparameters={"lr": rules.LearningRate(0.2)}))
        with pytest.raises(rules.RuleError, match="already registered with another definition"):
            rules.register(other)
        assert rules.register(other, replace=True).hash != first.hash
        assert optim.OPTIMIZERS["twice"].default_hyperparameters() == {"lr": 0.2}
    finally:
        rules.unregister("twice")


@pytest.mark.parametrize("element, message", [
    (_wrong_arity, "its element function _wrong_arity returns 1 value; it must return 2: param, buffer"),
    (_not_compilable, "Numba cannot compile its element function _not_compilable: Unknown attribute 'nope'"),
])
def test_elements_numba_cannot_compile_are_refused_at_registration(element, message):
    name = f"broken_{element.__name__.strip('_')}"
    with pytest.raises(rules.RuleError, match=re.escape(f"rule {name!r}: {message}")) as info:
        rules.register(rules.Rule(name, **_declaration(element=element)))
    assert "\n" not in str(info.value)
    assert name not in rules.RULES


def test_an_initial_state_of_the_wrong_shape_is_refused():
    rules.register(rules.Rule("bad_state", **_declaration(
        state={"buffer": rules.State(initial=lambda params, hyperparameters: np.zeros(3))})), replace=True)
    try:
        with pytest.raises(rules.RuleError, match=r"initial value of state 'buffer' has shape \(3,\), the "
                                                  r"parameters \(5,\)"):
            optim.OPTIMIZERS["bad_state"](np.ones(5))
    finally:
        rules.unregister("bad_state")


@pytest.mark.parametrize("source, message", [
    (None, "plugin file not found"),
    ("raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
    ("from fastgd import rules\nrules.register(rules.Rule('adam', element=lambda p, g, lr: p, "
     "hyperparameters={'lr': rules.LearningRate(0.1)}))\n", "the name is a built-in rule's"),
    ("def broken(:\n", "raised SyntaxError"),
    ("import sys\nsys.exit(0)\n", "called sys.exit(0): a plugin registers rules and returns"),
])
def test_bad_plugins_are_one_line_errors_and_write_nothing(tmp_path, source, message):
    path = tmp_path / "plugin.py"
    if source is not None:
        path.write_text(source)
    with pytest.raises(rules.PluginError, match=re.escape(message)):
        rules.load_plugin(str(path))
    assert_refused(["sweep", "--preset", "quick", "--store", "results.db", "--plugin", "plugin.py"], tmp_path, message,
                   in_process=False)


def test_a_directory_as_a_plugin_is_refused(tmp_path, monkeypatch):
    """A directory on the path would import as an empty namespace package, register nothing and let the sweep run."""
    (tmp_path / "my_rules").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    message = "plugin 'my_rules' is a directory without __init__.py, not a module"
    with pytest.raises(rules.PluginError, match=re.escape(message)):
        rules.load_plugin("my_rules")
    assert_refused(["sweep", "--preset", "quick", "--store", "results.db", "--plugin", "my_rules"], tmp_path, message,
                   in_process=False)
    (tmp_path / "my_rules" / "__init__.py").write_text("")  # a package is a module: loaded, whatever it registers
    assert rules.load_plugin("my_rules") == []


@pytest.mark.parametrize("name, make, message", [
    ("notes.txt", lambda path: path.write_text("from fastgd import rules\n"), "is not a .py file"),
    ("rules_dir", lambda path: path.mkdir(), "is a directory, not a .py file"),
])
def test_a_plugin_path_that_is_not_a_python_file_is_refused(tmp_path, name, make, message):
    make(tmp_path / name)
    with pytest.raises(rules.PluginError, match=re.escape(message)):
        rules.load_plugin(str(tmp_path / name))
    assert_refused(["sweep", "--preset", "quick", "--store", "results.db", "--plugin", f"./{name}"], tmp_path,
                   message, in_process=False)


def test_a_broken_users_rule_stops_a_sweep_before_the_store_is_written(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text("from fastgd import rules\n"
                      "def element(param, grad, lr):\n    return param - lr * grad, grad\n"
                      "rules.register(rules.Rule('broken', element=element, "
                      "hyperparameters={'lr': rules.LearningRate(0.1)}))\n")
    config = tmp_path / "sweep.toml"
    config.write_text('plugins = ["broken.py"]\ndatasets = ["iris"]\nrules = ["broken"]\nlearning_rates = [0.1]\n'
                      'seeds = [0]\nepochs = 2\n[targets]\niris = 0.5\n')
    assert_refused(["sweep", "sweep.toml", "--store", "results.db"], tmp_path,
                   "rule 'broken': its element function element returns 2 values; it must return the new parameter "
                   "alone", in_process=False)


def test_every_piece_of_a_declaration_is_reachable_from_fastgd_rules():
    from fastgd.rules import definition

    assert set(definition.__all__) <= set(rules.__all__)
    assert all(getattr(rules, name) is getattr(definition, name) for name in definition.__all__)
