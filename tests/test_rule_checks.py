"""What a rule's declaration promises, checked when it is registered, and a rule's identity covering what it reads.

Each refusal is one line naming the rule, the function and the offending
construct, raised by ``rules.register`` before anything is compiled into a
training loop or written to a store. The identity (``Rule.hash``) must change
when anything the compiled code reads changes: an array global's bytes, a
helper reached as ``module.helper``; the generated modules, and so Numba's
on-disk cache, are keyed on it.
"""

import ast
import importlib.util
import math
import os
import re
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from fastgd import optim, rules
from fastgd.rules.definition import GENERATED_NAMES

HYPERPARAMETERS = {"lr": rules.LearningRate(0.1)}
SCALE = np.array([1.0])
TABLE = {"scale": 1.0}
helpers = None  # a module, set by the test that reads it


def _scaled_element(param, grad, lr):
    return param - lr * grad * SCALE[0]


def _helper_element(param, grad, lr):
    return param - lr * helpers.scale(grad)


def _hash(element, **declaration):
    return rules.Rule("identity", element=element, hyperparameters=HYPERPARAMETERS, **declaration).hash


def _refused(name, message, **declaration):
    """Register the declaration and assert a one-line RuleError holding ``message``; nothing is registered."""
    declaration.setdefault("hyperparameters", HYPERPARAMETERS)
    with pytest.raises(rules.RuleError) as info:
        rules.register(rules.Rule(name, **declaration))
    text = str(info.value)
    assert "\n" not in text and message in text, text
    assert name not in rules.RULES
    return text


# -- the identity ---------------------------------------------------------------------------------

def test_the_identity_covers_an_array_globals_dtype_shape_and_every_byte(monkeypatch):
    module = sys.modules[__name__]
    seen = {_hash(_scaled_element)}
    long = np.arange(3000.0)
    for value in (np.array([3.0]), np.array([1.0], dtype=np.float32), np.array([[1.0]]), long):
        monkeypatch.setattr(module, "SCALE", value)
        seen.add(_hash(_scaled_element))
    edited = long.copy()
    edited[1500] = -1.0  # in the middle, where the array's repr writes '...'
    monkeypatch.setattr(module, "SCALE", edited)
    seen.add(_hash(_scaled_element))
    assert len(seen) == 6
    monkeypatch.setattr(module, "SCALE", long.copy())
    assert _hash(_scaled_element) in seen  # the same bytes: the same identity


def test_the_identity_covers_a_helper_reached_as_a_module_attribute(tmp_path, monkeypatch):
    hashes = []
    for body in ("return x + x", "return x * x"):
        path = tmp_path / f"helpers_{len(hashes)}.py"
        path.write_text(f"def scale(x):\n    {body}\n")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setattr(sys.modules[__name__], "helpers", module)
        hashes.append(_hash(_helper_element))
    assert hashes[0] != hashes[1]


def _dict_element(param, grad, lr):
    return param - lr * grad * TABLE["scale"]


def _recursive_element(param, grad, lr):
    if grad > lr:
        return _recursive_element(param, grad - lr, lr)
    return param - lr * grad


def _ping(x, n):
    return _pong(x, n)


def _pong(x, n):
    return x if n == 0 else _ping(x, n)


def _mutually_recursive_element(param, grad, lr):
    return param - lr * _ping(grad, 0)


def _closure_over_a_dict():
    table = {"scale": 1.0}

    def element(param, grad, lr):
        return param - lr * grad * table["scale"]
    return element


@pytest.mark.parametrize("element, message", [
    (_dict_element, "element function: _dict_element reads the global 'TABLE', a dict, which cannot be part of "
                    "the rule's identity"),
    (_closure_over_a_dict(), "element reads a variable of its enclosing function, a dict"),
    (_recursive_element, "_recursive_element calls itself: recursion cannot be compiled into a rule's loop"),
    (_mutually_recursive_element, "_ping calls itself (through _pong): recursion"),
])
def test_what_cannot_be_hashed_or_inlined_is_refused_at_registration(element, message):
    _refused("unhashable", message, element=element)


def test_an_edited_array_global_never_reuses_the_compiled_code_on_disk(tmp_path):
    """Two processes sharing Numba's cache: the second, after the edit, must compute with the new array."""
    plugin = tmp_path / "scaled.py"
    source = textwrap.dedent("""
        import numpy as np
        from fastgd import rules

        SCALE = np.array([1.0], dtype=np.float32)  # float32: float32 parameters stay float32

        def scaled_element(param, grad, lr):
            return param - lr * grad * SCALE[0]

        rules.register(rules.Rule("scaled", element=scaled_element,
                                  hyperparameters={"lr": rules.LearningRate(0.25)}))
        """)
    script = ("import sys, numpy as np\nfrom fastgd import optim, rules\nrules.load_plugin(sys.argv[1])\n"
              "params = np.ones(3)\noptim.OPTIMIZERS['scaled'](params).step(np.ones(3))\n"
              "print(params[0], rules.get('scaled').hash)")
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), FASTGD_CACHE="1")
    environment.pop("FASTGD_GENERATED_DIR", None)
    outputs = []
    for scale in ("1.0", "3.0"):
        plugin.write_text(source.replace("[1.0]", f"[{scale}]"))
        result = subprocess.run([sys.executable, "-c", script, str(plugin)], capture_output=True, text=True,
                                env=environment, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(result.stdout.split())
    assert [float(value) for value, _ in outputs] == [1.0 - 0.25 * 1.0, 1.0 - 0.25 * 3.0]
    assert outputs[0][1] != outputs[1][1]


# -- the element API's promises -------------------------------------------------------------------

def _buffer_declaration(element):
    return dict(element=element, hyperparameters={"lr": rules.LearningRate(0.1), "beta": rules.Real(0.9, 0.0, 1.0)},
                state={"buffer": rules.State()})


def _float_literal(param, grad, buffer, lr, beta):
    buffer = 0.9 * buffer + grad
    return param - lr * buffer, buffer


def _numpy_call(param, grad, buffer, lr, beta):
    buffer = beta * buffer + grad
    return param - lr * np.sign(buffer), buffer


def _integer_promotes(param, grad, buffer, lr, beta):
    buffer = beta * buffer + grad
    return param - lr * buffer * 2, buffer


def _too_few_values(param, grad, buffer, lr, beta):
    return param - lr * grad


def _too_many_values(param, grad, buffer, lr, beta):
    return param - lr * grad, buffer, buffer


def _literal_helper(x):
    return x * 0.5


def _literal_in_a_helper(param, grad, buffer, lr, beta):
    return param - lr * _literal_helper(grad), buffer


@numba.njit
def _kept_helper(x, y):
    return math.sqrt(abs(x)) * y


def _kept_promises(param, grad, buffer, lr, beta):
    buffer = beta * buffer + grad
    return param - lr * _kept_helper(buffer, grad), buffer


@pytest.mark.parametrize("element, message", [
    (_float_literal, "the element function _float_literal has the float literal 0.9 in `0.9 * buffer`"),
    (_numpy_call, "the element function _numpy_call calls `np.sign` in `np.sign(buffer)`"),
    (_literal_in_a_helper, "the element function _literal_helper has the float literal 0.5 in `x * 0.5`"),
    (_integer_promotes, "its element function _integer_promotes returns param as float64 for float32 parameters"),
    (_too_few_values, "its element function _too_few_values returns 1 value; it must return 2: param, buffer"),
    (_too_many_values, "its element function _too_many_values returns 3 values; it must return 2: param, buffer"),
])
def test_an_element_breaking_the_apis_promises_is_refused_at_registration(element, message):
    text = _refused("promise_breaker", message, **_buffer_declaration(element))
    assert text.startswith("rule 'promise_breaker': ")


def test_an_element_keeping_the_promises_is_registered_and_keeps_float32():
    rules.register(rules.Rule("promise_keeper", **_buffer_declaration(_kept_promises)))
    try:
        params = np.linspace(-1, 1, 5).astype(np.float32)
        grad = np.linspace(2, -2, 5).astype(np.float32)
        expected = params - np.float32(0.1) * np.sqrt(np.abs(grad)) * grad  # buffer = grad on the first step
        optim.OPTIMIZERS["promise_keeper"](params).step(grad)
        assert params.dtype == np.float32
        np.testing.assert_allclose(params, expected, rtol=1e-6)
    finally:
        rules.unregister("promise_keeper")


def test_a_passed_check_is_remembered_on_this_machine_and_only_for_that_definition(tmp_path, monkeypatch):
    from fastgd.rules import checks

    monkeypatch.setenv("FASTGD_GENERATED_DIR", str(tmp_path))
    rule = rules.Rule("remembered", **_buffer_declaration(_kept_promises))
    checks.check_rule(rule)
    assert os.path.exists(checks._passed_marker(rule))
    compiled = []
    monkeypatch.setattr(checks, "_check", compiled.append)
    checks.check_rule(rule)
    assert compiled == []
    checks.check_rule(rule, cached=False)
    edited = rules.Rule("remembered", **_buffer_declaration(_float_literal))
    checks.check_rule(edited)  # another definition: checked again
    assert compiled == [rule, edited]


def test_a_lambda_element_is_checked_and_a_lambda_beside_it_is_not_taken_for_it():
    per_step = rules.PerStep(lambda beta: 1.0 - beta, "one_minus_beta")  # float64: literals are fine here
    _refused("lambda_literal", "the element function <lambda> has the float literal 0.5 in `0.5 * grad`",
             element=lambda param, grad, lr: param - lr * (0.5 * grad), per_step=per_step,
             hyperparameters={"lr": rules.LearningRate(0.1), "beta": rules.Real(0.9, 0.0, 1.0)})
    rules.register(rules.Rule("lambda_kept", element=lambda param, grad, lr, one_minus_beta: param - lr * grad,
                              per_step=per_step,
                              hyperparameters={"lr": rules.LearningRate(0.1), "beta": rules.Real(0.9, 0.0, 1.0)}))
    rules.unregister("lambda_kept")


def test_a_per_step_function_returning_fewer_values_than_declared_is_refused():
    _refused("short_step", "its per-step function <lambda> returns 1 value, and 2 outputs are declared (a, b)",
             element=lambda param, grad, a, b: param - a * grad, per_step=rules.PerStep(lambda lr: lr, "a", "b"))


def test_every_built_in_rule_keeps_the_element_apis_promises():
    from fastgd.rules.checks import check_rule

    for rule in rules.RULES.values():
        check_rule(rule, cached=False)


# -- names ----------------------------------------------------------------------------------------

def _named_element(param, grad, lr):
    return param - lr * grad


@pytest.mark.parametrize("name, message", [
    ("r" * 300, "a rule's name must have at most 64 characters, got 300"),
    ("adam_parallel", "must not end in '_parallel'"),
    ("__init__", "must not start with '_'"),
    ("_private", "must not start with '_'"),
])
def test_a_bad_rule_name_is_refused_at_declaration(name, message):
    with pytest.raises(rules.RuleError, match=re.escape(message)) as info:
        rules.Rule(name, element=_named_element, hyperparameters=HYPERPARAMETERS)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["kernel_parameters", "compiled", "get"])
def test_a_rule_name_taken_by_fastgd_rules_kernels_is_refused(name):
    _refused(name, f"the name is taken by fastgd.rules.kernels.{name}", element=_named_element)


def _slot_element(name):
    namespace = {}
    exec(f"def element(p, g, {name}, lr):\n    return p - lr * g, {name}\n", namespace)
    return namespace["element"]


@pytest.mark.parametrize("name", ["grad", "params", "hyper", "np", "element", "layout", "dtype_eps", "range",
                                  "states", "counters", "per_step"])
def test_a_state_slot_named_as_generated_code_names_something_is_refused(name):
    message = f"{name!r} is a name the generated code uses: choose another name for the state slot"
    with pytest.raises(rules.RuleError, match=re.escape(message)):
        rules.Rule("named", element=_slot_element(name), hyperparameters=HYPERPARAMETERS,
                   state={name: rules.State()})


def test_hyperparameters_and_per_step_outputs_named_as_generated_code_names_are_refused():
    with pytest.raises(rules.RuleError, match=re.escape("'hyper' is a name the generated code uses: choose another "
                                                        "name for the hyperparameter")):
        rules.Rule("named", element=_named_element,
                   hyperparameters={"lr": rules.LearningRate(0.1), "hyper": rules.Real(0.5)})
    with pytest.raises(rules.RuleError, match=re.escape("per-step output 'element' is a name the generated code")):
        rules.Rule("named", element=_named_element, hyperparameters=HYPERPARAMETERS,
                   per_step=rules.PerStep(lambda lr: lr, "element"))
    with pytest.raises(rules.RuleError, match=re.escape("evaluation scalar 'out' is not an identifier, or is a name "
                                                        "the generated code uses")):
        rules.Rule("named", element=_named_element, hyperparameters=HYPERPARAMETERS,
                   evaluation=rules.EvaluationPoint(lambda param, out: param, rules.PerStep(lambda lr: lr, "out")))


def test_the_generated_names_list_covers_every_name_the_generated_code_binds():
    """Every name in every built-in rule's generated CPU and CUDA modules is the rule's own, private, or listed."""
    from fastgd.cuda.rules import _source
    from fastgd.rules.compile import _header, _Plan

    missing = set()
    for rule in rules.RULES.values():
        own = {*rule.scalar_names, *rule.flag_names(), *rule.state, *rule.scalar_state}
        own |= set(rule.per_step.outputs if rule.per_step else ())
        own |= set(rule.evaluation.scalars.outputs if rule.evaluation and rule.evaluation.scalars else ())
        if rule.reduction is not None:
            own |= {*rule.reduction.outputs, *(rule.reduction.finish.outputs if rule.reduction.finish else ())}
        closing = rule.closure.reduction if rule.closure is not None else None
        if closing is not None:
            own |= {*closing.outputs, *(closing.finish.outputs if closing.finish else ())}
        flags = rule.flags(rule.check(rule.defaults))
        plan = _Plan(rule, flags)
        for source in (plan.cpu_source(_header(rule, flags, "CPU")), _source(plan, _header(rule, flags, "CUDA"))):
            for node in ast.walk(ast.parse(source)):
                name = (node.id if isinstance(node, ast.Name) else node.name if isinstance(node, ast.FunctionDef)
                        else node.arg if isinstance(node, ast.arg) else None)
                if name and name not in own and not name.startswith("_") and name not in GENERATED_NAMES:
                    missing.add(name)
    assert not missing


# -- the NumPy reference is optional --------------------------------------------------------------

def test_a_rule_without_a_reference_has_its_step_timed_alone_and_unregistering_drops_a_reference():
    from fastgd import reference
    from fastgd.baselines import throughput

    rules.register(rules.Rule("no_reference", element=_named_element, hyperparameters=HYPERPARAMETERS))
    try:
        assert "no_reference" not in reference.RULES
        assert [name for name, _ in throughput._step_kernels("no_reference", 1000)] == ["fastgd"]
        assert "numpy" in [name for name, _ in throughput._step_kernels("adam", 1000)]
        from fastgd import baselines

        with pytest.raises(NotImplementedError, match="rule 'no_reference' declares no NumPy reference"):
            baselines.step_callable("no_reference", 10, "float64", "numpy")  # asv skips it, as torch's missing rules
        for implementation, kernel in throughput._step_kernels("no_reference", 1000):
            _, kernel = throughput._warmed_step("no_reference", 1000, kernel)  # as measure() times it
            assert kernel.startswith("fastgd")
    finally:
        rules.unregister("no_reference")
    # a rule registered with a reference, then removed, leaves no reference behind for a later rule of that name
    rules.register(rules.Rule("no_reference", element=_named_element, hyperparameters=HYPERPARAMETERS,
                              reference=lambda params, grad, state, t, lr: params.__isub__(lr * grad)))
    assert "no_reference" in reference.RULES
    rules.unregister("no_reference")
    assert "no_reference" not in reference.RULES


# -- plugins: failures roll back, rules travel in pickles -----------------------------------------

PLUGIN = textwrap.dedent("""
    from fastgd import rules

    def halving_element(param, grad, lr, factor):
        return param - lr * factor * grad

    rules.register(rules.Rule("halving", element=halving_element,
                              hyperparameters={"lr": rules.LearningRate(0.5), "factor": rules.Real(0.5)}))
    """)


def test_a_plugin_that_raises_after_registering_leaves_nothing_registered(tmp_path):
    path = tmp_path / "half_done.py"
    path.write_text(PLUGIN + "raise RuntimeError('second rule broken')\n")
    with pytest.raises(rules.PluginError, match=re.escape("half_done.py raised RuntimeError: second rule broken")):
        rules.load_plugin(str(path))
    assert "halving" not in rules.RULES and "halving" not in optim.OPTIMIZERS
    path.write_text(PLUGIN)  # mended, it loads: nothing of the failed attempt is in the way
    assert rules.load_plugin(str(path)) == ["halving"]
    rules.unregister("halving")


def test_a_failing_plugin_that_replaced_or_removed_rules_puts_them_back(tmp_path):
    rules.register(rules.Rule("kept", element=_named_element, hyperparameters=HYPERPARAMETERS))
    first = tmp_path / "first.py"
    first.write_text(PLUGIN)
    rules.load_plugin(str(first))
    halving = rules.get("halving")
    try:
        first.write_text(PLUGIN.replace("rules.Real(0.5)", "rules.Real(0.25)")  # its own rule, replaced
                         + "rules.unregister('kept')\nraise ValueError('late')\n")
        with pytest.raises(rules.PluginError, match="first.py raised ValueError: late"):
            rules.load_plugin(str(first))
        assert rules.get("halving") is halving and rules.get("kept").element is _named_element
        assert rules.plugin_of("halving").path == str(first)
    finally:
        rules.unregister("kept")
        rules.unregister("halving")


def test_a_plugin_calling_sys_exit_is_refused_and_rolled_back(tmp_path):
    path = tmp_path / "exits.py"
    path.write_text(PLUGIN + "import sys\nsys.exit(3)\n")
    with pytest.raises(rules.PluginError, match=re.escape("exits.py called sys.exit(3)")):
        rules.load_plugin(str(path))
    assert "halving" not in rules.RULES


@pytest.fixture
def halving_plugin(tmp_path):
    path = tmp_path / "halving.py"
    path.write_text(PLUGIN)
    rules.load_plugin(str(path))
    yield path
    if "halving" in rules.RULES:
        rules.unregister("halving")


def _pickles(halving_plugin):
    import pickle

    from fastgd import MLPClassifier

    optimizer = optim.OPTIMIZERS["halving"](np.ones(3))
    return pickle.dumps(optimizer), pickle.dumps(MLPClassifier(optimizer="halving", max_iter=2))


def test_a_pickle_loads_the_plugin_of_its_rule_where_the_process_lacks_it(halving_plugin):
    import pickle

    optimizer_pickle, estimator_pickle = _pickles(halving_plugin)
    rules.unregister("halving")  # as a fresh process: the rule is not registered
    optimizer = pickle.loads(optimizer_pickle)
    assert "halving" in rules.RULES
    optimizer.step(np.ones(3))
    np.testing.assert_array_equal(optimizer.params, np.full(3, 1.0 - 0.5 * 0.5))
    rules.unregister("halving")
    assert pickle.loads(estimator_pickle).optimizer == "halving" and "halving" in rules.RULES
    rules.unregister("halving")
    halving_plugin.unlink()  # the file is gone: the source the pickle carries is loaded
    assert pickle.loads(optimizer_pickle).rule.hash == rules.get("halving").hash


def test_a_pickle_whose_plugin_changed_is_refused_in_one_line(halving_plugin):
    import pickle

    optimizer_pickle, estimator_pickle = _pickles(halving_plugin)
    rules.unregister("halving")
    halving_plugin.write_text(PLUGIN.replace("rules.Real(0.5)", "rules.Real(0.25)"))
    for blob in (optimizer_pickle, estimator_pickle):
        with pytest.raises(rules.PluginError, match=re.escape("halving.py has changed since the pickle was made: "
                                                              "its rule 'halving' is")):
            pickle.loads(blob)
        assert "halving" not in rules.RULES  # the refused plugin is not left registered


def test_a_pickle_of_a_rule_registered_by_code_says_how_to_make_it_available():
    import pickle

    from fastgd import MLPClassifier

    rules.register(rules.Rule("by_code", element=_named_element, hyperparameters=HYPERPARAMETERS))
    blob = pickle.dumps(MLPClassifier(optimizer="by_code"))
    rules.unregister("by_code")
    with pytest.raises(rules.PluginError, match=re.escape("rule 'by_code' is not registered in this process: where "
                                                          "the pickle was made it was registered by code, not by a "
                                                          "plugin; put it in a plugin file and load it first")):
        pickle.loads(blob)
    with pytest.raises(ValueError, match="got 'by_code' \\(a rule of your own must be registered in this process: "
                                         "load its plugin"):
        MLPClassifier(optimizer="by_code").fit(np.ones((4, 2)), [0, 1, 0, 1])


def test_a_fresh_process_unpickles_an_optimizer_and_an_estimator_of_a_plugins_rule(halving_plugin):
    optimizer_pickle, estimator_pickle = _pickles(halving_plugin)
    script = ("import pickle, sys\nimport numpy as np\n"
              "optimizer, estimator = pickle.loads(sys.stdin.buffer.read())\n"
              "optimizer.step(np.ones(3))\nprint(optimizer.params[0], estimator.optimizer)")
    import pickle

    result = subprocess.run([sys.executable, "-c", script], input=pickle.dumps((pickle.loads(optimizer_pickle),
                                                                               pickle.loads(estimator_pickle))),
                            capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split() == ["0.75", "halving"]


# -- fastgd train, a sweep and MLPClassifier: one run for one set of settings ---------------------

def test_fastgd_train_a_sweep_and_mlpclassifier_give_the_same_losses(tmp_path):
    """The same data, network, rule, rate, batch size, penalty and seed: the same five epochs, loss for loss.

    They differed (0.713006 and 0.714054 at epoch 5 on digits) because the estimator drew its batch order's
    seed from its RandomState after the weights, where the command and sweeps use the seed itself.
    """
    import warnings

    from cli_harness import run_command

    from fastgd import MLPClassifier, datasets, sweep

    data = datasets.load("iris")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # five epochs do not converge
        estimator = MLPClassifier(hidden_layer_sizes=(8,), batch_size=16, learning_rate_init=0.01, alpha=1e-3,
                                  max_iter=5, random_state=3).fit(data.X_train, data.y_train)
    code, out, err = run_command(["train", "--dataset", "iris", "--hidden", "8", "--batch-size", "16", "--lr", "0.01",
                                  "--alpha", "1e-3", "--epochs", "5", "--seed", "3"], tmp_path)
    assert code == 0, err
    printed = [line.split()[1] for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert printed == [f"{loss:.6g}" for loss in estimator.loss_curve_]

    config = sweep.parse({"datasets": ["iris"], "rules": ["adam"], "learning_rates": [0.01], "seeds": [3],
                          "epochs": 5, "batch_sizes": [16], "model": {"hidden_layer_sizes": [8], "alpha": 1e-3},
                          "targets": {"iris": 0.01}})
    sweep.run_sweep(config, tmp_path / "s.db", jobs=1, batched=False, progress=False)
    curve = sweep.load_curves(tmp_path / "s.db").sort_values("epoch")
    assert curve["run_id"].nunique() == 1
    np.testing.assert_allclose(curve["loss"].to_numpy()[-5:], estimator.loss_curve_, rtol=1e-12, atol=0)

