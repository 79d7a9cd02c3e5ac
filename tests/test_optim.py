"""The optimizers against the NumPy reference, torch.optim and the contract of FORMULAS.md."""

import re

import numba
import numpy as np
import pytest
from numba import njit

from fastgd import _config, optim, reference, rules
from fastgd.rules import kernels
from rule_cases import (DECAYING, INVALID, LAYOUT_37, MOVES_ON_ZERO_GRADIENT, NEUTRAL, ROSENBROCK, ROSENBROCK_LAYOUT,
                        TORCH_EQUIVALENTS, VARIANTS, case_id, cases, problem, reduces, rosenbrock_gradient, run,
                        take_step)

# the built-in rules; users' rules registered by other tests have tests of their own
RULES = sorted(name for name in optim.OPTIMIZERS if rules.is_builtin(name))
DTYPES = [np.float32, np.float64]
FORMS = ["serial", "parallel"]


@pytest.fixture(params=FORMS)
def form(request, monkeypatch):
    """Run the test with the serial kernels, then with the prange kernels."""
    monkeypatch.setattr(_config, "PARALLEL_THRESHOLD", 1 if request.param == "parallel" else 1 << 40)
    return request.param


def state_arrays(optimizer):
    return {key: value for key, value in optimizer.state.items() if isinstance(value, np.ndarray)}


def snapshot(optimizer):
    return optimizer.params.copy(), {key: np.copy(value) for key, value in optimizer.state.items()}


def assert_unchanged(optimizer, before):
    params, state = before
    np.testing.assert_array_equal(optimizer.params, params)
    assert optimizer.state.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(optimizer.state[key], value)


def assert_close(actual, desired, rtol):
    # atol only absorbs last-bit noise where a state value passes through zero
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * 1e-4 * max(1.0, np.abs(desired).max()))


# -- the registry ------------------------------------------------------------------------------

def test_every_rule_has_every_case():
    tables = dict(VARIANTS=VARIANTS, TORCH_EQUIVALENTS=TORCH_EQUIVALENTS, ROSENBROCK=ROSENBROCK,
                  MOVES_ON_ZERO_GRADIENT=MOVES_ON_ZERO_GRADIENT, NEUTRAL=NEUTRAL, INVALID=INVALID,
                  reference=reference.DEFAULTS)
    for table_name, table in tables.items():
        assert set(table) >= set(RULES), f"{table_name} does not cover every built-in rule"
    assert len(RULES) == 29  # with SAM-SGD, SAM-Adam (closures) and AliG (the loss)
    for name in RULES:
        cls = optim.OPTIMIZERS[name]
        assert cls.name == name
        assert callable(getattr(kernels, name)) and callable(getattr(kernels, name + "_parallel"))


@pytest.mark.parametrize("name", RULES)
def test_defaults_are_those_of_formulas(name):
    # two transcriptions of FORMULAS.md's table, written separately
    assert optim.OPTIMIZERS[name].default_hyperparameters() == reference.DEFAULTS[name]


# -- the math ----------------------------------------------------------------------------------

# the prange kernels' float64 compile is the slowest part of this file: the defaults meet the reference in both
# forms, the variants in the serial one (their prange kernels are the serial ones bit for bit, in float32, below)
REFERENCE_FORMS = [(case, form) for case in cases() for form in (FORMS if not case[1] else ["serial"])]


@pytest.mark.parametrize("case, form", REFERENCE_FORMS, indirect=["form"],
                         ids=[f"{case_id(case)}-{form}" for case, form in REFERENCE_FORMS])
def test_matches_numpy_reference(case, form):
    name, hyperparameters = case
    start, gradient = problem(37, np.float64)
    compiled = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    oracle = reference.ReferenceOptimizer(name, start.copy(), layout=LAYOUT_37, **hyperparameters)
    run(compiled, gradient, 200)
    run(oracle, gradient, 200)
    assert_close(compiled.params, oracle.params, rtol=1e-10)
    for key, value in state_arrays(compiled).items():
        assert_close(value, oracle.state[key], rtol=1e-10)
    assert compiled.state["step"] == oracle.t == 200
    if name == "nadam":
        assert compiled.state["mu_product"] == pytest.approx(oracle.state["mu_product"], rel=1e-12)


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_serial_and_parallel_forms_agree_bitwise(case, monkeypatch):
    name, hyperparameters = case
    start, gradient = problem(1001, np.float32)
    results = []
    for threshold in (1 << 40, 1):
        monkeypatch.setattr(_config, "PARALLEL_THRESHOLD", threshold)
        optimizer = optim.OPTIMIZERS[name](start.copy(), layout=[(20, 30), (30, 13), (11,)], **hyperparameters)
        run(optimizer, gradient, 50)
        results.append(snapshot(optimizer))
    (serial_params, serial_state), (parallel_params, parallel_state) = results
    np.testing.assert_array_equal(parallel_params, serial_params)
    for key in serial_state:
        np.testing.assert_array_equal(parallel_state[key], serial_state[key])


@njit
def _packed_steps(function, params, grad, states, aux, hyper, counters, layout, n_steps):
    for _ in range(n_steps):
        function(params, grad, states, aux, hyper, counters, layout)


@pytest.mark.parametrize("name", ["adam", "lamb", "muon", "prodigy"])
def test_the_parallel_c_entry_of_a_step_is_the_serial_one_bitwise(name):
    """The C callbacks that compiled epochs call: ``packed_step`` and, for threaded epochs, its prange twin
    (one rule per kind: element-wise, a norm per tensor, a matrix function per weight matrix, sums over every
    parameter)."""
    start, gradient = problem(1001, np.float32)
    results = []
    for parallel in (False, True):
        optimizer = optim.OPTIMIZERS[name](start.copy(), layout=[(20, 30), (30, 13), (11,)])
        packed = optimizer.packed(parallel=parallel)
        _packed_steps(packed.function, optimizer.params, gradient(start, 0), packed.states, packed.aux, packed.hyper,
                      packed.counters, packed.layout, 20)
        results.append((optimizer.params.copy(), packed.states.copy(), packed.counters.copy()))
    for serial, threaded in zip(*results):
        np.testing.assert_array_equal(threaded, serial)
    assert results[0][2][0] == 20  # twenty steps were taken
    assert optimizer.packed(parallel=True).function is not optimizer.packed().function


@pytest.mark.parametrize("case", [c for c in cases() if TORCH_EQUIVALENTS[c[0]]], ids=case_id)
def test_matches_torch(case):
    torch = pytest.importorskip("torch")
    name, hyperparameters = case
    class_name, extra = TORCH_EQUIVALENTS[name]
    start, gradient = problem(37, np.float64)
    compiled = optim.OPTIMIZERS[name](start.copy(), **hyperparameters)
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch keeps NAdam's mu_product in the default dtype
    try:
        tensor = torch.tensor(start.copy(), requires_grad=True)
        theirs = getattr(torch.optim, class_name)([tensor], **compiled.hyperparameters, **extra)
        for step in range(200):
            compiled.step(gradient(compiled.params, step))
            tensor.grad = torch.from_numpy(gradient(tensor.detach().numpy().copy(), step))
            theirs.step()
    finally:
        torch.set_default_dtype(previous_dtype)
    assert_close(compiled.params, tensor.detach().numpy(), rtol=1e-10)
    torch_state = theirs.state[tensor]
    for key, value in state_arrays(compiled).items():
        assert_close(value, torch_state[key].numpy(), rtol=1e-10)
    if name == "nadam":
        assert compiled.state["mu_product"] == pytest.approx(float(torch_state["mu_product"]), rel=1e-12)


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_float32_stays_float32_and_matches_reference(case, form):
    name, hyperparameters = case
    start, gradient = problem(37, np.float32)
    compiled = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    oracle = reference.ReferenceOptimizer(name, start.copy(), layout=LAYOUT_37, **hyperparameters)
    run(compiled, gradient, 200)
    run(oracle, gradient, 200)
    assert compiled.params.dtype == np.float32
    for value in state_arrays(compiled).values():
        assert value.dtype == np.float32
    # a reduction's sums: float64 here, float32 in NumPy's; the distance estimates feed the difference back.
    # SOAP's first eigenbasis is that of a rank-deficient statistic (the (5, 3) matrix's 5 × 5 G Gᵀ has rank 3): its
    # null space has no canonical basis, and NumPy's and SciPy's float32 LAPACK pick different ones (their float64
    # ones agree here; tests/test_more_rules.py gives both sides one LAPACK and meets pytorch-optimizer to rounding)
    # Shampoo's float32 inverse fourth roots lose digits with the condition number of the sums they invert.
    rtol = 1e-4 if reduces(name, hyperparameters) or name == "shampoo" else 2e-3 if name == "soap" else 1e-5
    assert_close(compiled.params, oracle.params, rtol=rtol)


# per-tensor rules and steps with a reduction accumulate their norms, statistics and sums in float64 on purpose:
# not checked
@pytest.mark.parametrize("case", [case for case in cases() if rules.get(case[0]).per_tensor is None
                                  and not reduces(*case)], ids=case_id)
def test_float32_steps_do_no_float64_arithmetic(case):
    # A float64 literal or scalar in the element would widen every float32
    # element (an `fpext`): slower, and not float32 math any more. The
    # per-step scalars are float64 by design, narrowed once before the loop.
    name, hyperparameters = case
    start, gradient = problem(8, np.float32)
    optimizer = optim.OPTIMIZERS[name](start, **hyperparameters)
    packed = optimizer.packed()
    step = packed.variant.packed_step
    # a fresh, uncached compile: Numba keeps no IR of code loaded from its cache
    options = {k: v for k, v in step.targetoptions.items() if k != "nopython"}
    fresh = numba.njit(**dict(options, cache=False))(step.py_func)
    fresh(start, gradient(start, 0), packed.states, packed.aux, packed.hyper, packed.counters, packed.layout)
    llvm_ir = fresh.inspect_llvm(fresh.signatures[0])
    assert re.search(r"fsub float|fmul float|fadd float", llvm_ir)  # the element was inlined into this function
    # the whole step, not a guess at which blocks are the loop's: nothing float32 is ever widened
    assert not re.search(r"fpext float [^\n]* to double", llvm_ir), "float32 widened to float64 in the step"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", RULES)
def test_reduces_a_quadratic(name, dtype):
    rng = np.random.default_rng(1)
    curvature = rng.uniform(0.5, 5.0, 20).astype(dtype)
    params = rng.uniform(-2, 2, 20).astype(dtype)
    loss = lambda theta: float(0.5 * np.sum(curvature * theta**2))  # noqa: E731
    initial = loss(params)
    optimizer = optim.OPTIMIZERS[name](params)  # default hyperparameters
    for _ in range(100):
        take_step(optimizer, lambda theta: curvature * theta)
    assert loss(params) < initial * 0.999


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", RULES)
def test_reaches_rosenbrock_minimum(name, dtype):
    hyperparameters, n_steps, tolerance = ROSENBROCK[name]
    params = np.array([-1.5, 2.0], dtype=dtype)
    optimizer = optim.OPTIMIZERS[name](params, layout=ROSENBROCK_LAYOUT, **hyperparameters)
    for step in range(n_steps):
        if name in DECAYING:
            optimizer.param_groups[0]["lr"] = hyperparameters["lr"] * (1 - step / n_steps)
        take_step(optimizer, rosenbrock_gradient)
    assert params.dtype == dtype
    np.testing.assert_allclose(optimizer.evaluation_params(), [1.0, 1.0], atol=tolerance)


# -- the API -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", RULES)
def test_second_step_does_not_compile_again(name, dtype):
    start, gradient = problem(16, dtype)
    optimizer = optim.OPTIMIZERS[name](start)
    take_step(optimizer, lambda theta: gradient(theta, 0))
    step = optimizer._step_function
    compiled = len(step.overloads)
    optimizer.param_groups[0]["lr"] = 1  # an int: still the float64 signature
    take_step(optimizer, lambda theta: gradient(theta, 1))
    take_step(optimizer, lambda theta: gradient(theta, 2)[::-1][::-1])
    assert len(step.overloads) == compiled


@pytest.mark.parametrize("name", RULES)
def test_state_dict_round_trips_to_the_same_trajectory(name):
    start, gradient = problem(37, np.float64)
    hyperparameters = (VARIANTS[name] or [{}])[-1]
    original = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    run(original, gradient, 10)
    saved = original.state_dict()
    saved_params = original.params.copy()
    run(original, gradient, 10)

    restored = optim.OPTIMIZERS[name](saved_params, layout=LAYOUT_37)  # other hyperparameters until loaded
    restored.load_state_dict(saved)
    assert restored.hyperparameters == original.hyperparameters
    run(restored, gradient, 10)
    np.testing.assert_array_equal(restored.params, original.params)
    for key, value in state_arrays(original).items():
        np.testing.assert_array_equal(restored.state[key], value)
    assert restored.state["step"] == 20


@pytest.mark.parametrize("name", RULES)
def test_zero_gradient_without_weight_decay(name):
    start, gradient = problem(37, np.float64)
    hyperparameters = NEUTRAL[name]
    fresh = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    take_step(fresh, np.zeros_like)
    np.testing.assert_array_equal(fresh.params, start)  # zero state and zero gradient: nothing moves

    optimizer = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    run(optimizer, gradient, 5)
    before = optimizer.params.copy()
    take_step(optimizer, np.zeros_like)
    moved = not np.array_equal(optimizer.params, before)
    assert moved == MOVES_ON_ZERO_GRADIENT[name]


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, hyperparameters, message",
                         [(n, h, m) for n, entries in INVALID.items() for h, m in entries])
def test_invalid_hyperparameters_are_refused(name, hyperparameters, message):
    cls = optim.OPTIMIZERS[name]
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        cls(np.zeros(4), **hyperparameters)

    # the same values set between steps: refused by the next step, nothing changed
    start, gradient = problem(4, np.float64)
    optimizer = cls(start)
    run(optimizer, gradient, 3)
    before = snapshot(optimizer)
    optimizer.param_groups[0].update(hyperparameters)
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        take_step(optimizer, lambda theta: gradient(theta, 3))
    assert_unchanged(optimizer, before)


@pytest.mark.parametrize("params, error, message", [
    ([1.0, 2.0], TypeError, "params must be a NumPy ndarray, got list"),
    (np.zeros(3, dtype=np.int64), TypeError, "dtype float32 or float64, got int64"),
    (np.zeros(3, dtype=np.float16), TypeError, "got float16"),
    (np.zeros((2, 3)), ValueError, "1-D vector, got an array of shape (2, 3)"),
    (np.zeros(6)[::2], ValueError, "must be contiguous"),
])
def test_bad_params_are_refused(params, error, message):
    with pytest.raises(error, match=re.escape(message)):
        optim.Adam(params)


@pytest.mark.parametrize("layout, message", [
    ([(2, 2)], "layout covers 4 parameters, params has 6"),
    ([(2, 2), (3,)], "layout covers 7 parameters, params has 6"),
    ("abc", "layout must list tensor shapes such as [(64, 32), (32,)], got 'abc'"),
    (7, "layout must list tensor shapes such as [(64, 32), (32,)], got 7"),
    ([(2, 3.0)], "layout shapes must be (n,) or (rows, columns) of positive integers, got (2, 3.0)"),
    ([(0,), (6,)], "got (0,)"),
    ([(1, 2, 3)], "got (1, 2, 3)"),
    ([(True, 6)], "got (True, 6)"),
])
@pytest.mark.parametrize("name", ["adam", "muon"])  # element-wise rules check the layout they ignore too
def test_bad_layouts_are_refused(name, layout, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        optim.OPTIMIZERS[name](np.zeros(6), layout=layout)


def test_read_only_params_are_refused():
    params = np.zeros(3)
    params.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        optim.SGD(params)


def test_params_cannot_be_swapped_under_the_optimizer():
    start, gradient = problem(4, np.float64)
    optimizer = optim.Adam(start)
    run(optimizer, gradient, 2)
    before = snapshot(optimizer)
    with pytest.raises(AttributeError, match=re.escape("params cannot be reassigned")):
        optimizer.params = np.zeros(7)
    with pytest.raises(TypeError, match=re.escape("opt.state cannot be assigned to")):
        optimizer.state["exp_avg"] = np.zeros(7)
    assert_unchanged(optimizer, before)

    optimizer.params.flags.writeable = False  # made read-only behind the optimizer's back
    with pytest.raises(ValueError, match=re.escape("params must be writeable")):
        optimizer.step(gradient(optimizer.params, 3))
    optimizer.params.flags.writeable = True
    assert_unchanged(optimizer, before)


@pytest.mark.parametrize("state_dict, error, message", [
    ({"rule": "adam"}, ValueError, "state_dict lacks ['param_groups', 'state']"),
    ([("rule", "adam")], TypeError, "state_dict must be a dict as state_dict() returns it, got list"),
    ({"rule": "adam", "state": [], "param_groups": [optim.Adam.default_hyperparameters()]}, ValueError,
     "state_dict state must be a dict"),
    ({"rule": "adam", "state": {}, "param_groups": [{}]}, ValueError, "Adam takes the hyperparameters"),
    ({"rule": "adam", "state": {}, "param_groups": {}}, ValueError, "param_groups must be a list of one dict"),
])
def test_load_state_dict_refuses_what_is_not_a_state_dict(state_dict, error, message):
    start, gradient = problem(4, np.float64)
    optimizer = optim.Adam(start)
    run(optimizer, gradient, 2)
    before = snapshot(optimizer)
    with pytest.raises(error, match=re.escape(message)):
        optimizer.load_state_dict(state_dict)
    assert_unchanged(optimizer, before)


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("grad, error, message", [
    (np.zeros(5), ValueError, "grad has shape (5,), params (4,)"),
    (np.zeros(4, dtype=np.float32), TypeError, "grad has dtype float32, params float64"),
    ([0.0, 0.0, 0.0, 0.0], TypeError, "grad must be a NumPy ndarray, got list"),
    (np.zeros((4, 1)), ValueError, "grad has shape (4, 1)"),
])
def test_bad_gradient_changes_nothing(name, grad, error, message):
    start, gradient = problem(4, np.float64)
    optimizer = optim.OPTIMIZERS[name](start)
    run(optimizer, gradient, 3)
    before = snapshot(optimizer)
    with pytest.raises(error, match=re.escape(message)):
        take_step(optimizer, lambda theta: grad)  # a closure rule: the closure's gradient
    assert_unchanged(optimizer, before)


@pytest.mark.parametrize("name, key, value", [
    ("sgd", "momentum", 0.9), ("momentum", "momentum", 0.0), ("rmsprop", "centered", True),
    ("adam", "amsgrad", True), ("adamw", "amsgrad", True), ("nesterov", "nesterov", False),
])
def test_hyperparameters_that_decide_the_state_cannot_change(name, key, value):
    optimizer = optim.OPTIMIZERS[name](np.ones(4))
    optimizer.param_groups[0][key] = value
    with pytest.raises(ValueError, match=f"{key} cannot change"):
        optimizer.step(np.ones(4))


@pytest.mark.parametrize("name", ["adam", "sgd", "lion"])
def test_hyperparameters_by_keyword_and_by_position_are_bound_alike(name):
    """Keywords alone skip the signature's binding; positions, mixtures and mistakes go through it."""
    cls = optim.OPTIMIZERS[name]
    defaults = cls.default_hyperparameters()
    values = {key: (value * 0.5 if isinstance(value, float) and not isinstance(value, bool) else value)
              for key, value in defaults.items()}
    by_keyword = cls(np.zeros(3), **values)
    by_position = cls(np.zeros(3), *values.values())
    assert by_keyword.param_groups[0] == by_position.param_groups[0] == values
    with pytest.raises(TypeError, match=re.escape(f"{cls.__name__}: got an unexpected keyword argument 'bogus'")):
        cls(np.zeros(3), bogus=1.0)
    with pytest.raises(TypeError, match=re.escape(f"{cls.__name__}: multiple values for argument 'lr'")):
        cls(np.zeros(3), 0.1, lr=0.2)
    with pytest.raises(TypeError, match=re.escape(f"{cls.__name__}: too many positional arguments")):
        cls(np.zeros(3), *values.values(), 1.0)


def test_unknown_hyperparameter_added_later_is_refused():
    optimizer = optim.Adam(np.ones(4))
    optimizer.hyperparameters["momentum"] = 0.9
    with pytest.raises(ValueError, match="Adam takes the hyperparameters"):
        optimizer.step(np.ones(4))


def test_changed_learning_rate_is_used():
    params = np.ones(3)
    optimizer = optim.SGD(params, lr=0.1)
    optimizer.step(np.ones(3))
    optimizer.param_groups[0]["lr"] = 0.5
    optimizer.step(np.ones(3))
    np.testing.assert_allclose(params, 1 - 0.1 - 0.5)


@pytest.mark.parametrize("mutate, error, message", [
    (lambda d: d.update(rule="sgd"), ValueError, "is for rule 'sgd'"),
    (lambda d: d["state"].update(exp_avg=np.zeros(5)), ValueError, "'exp_avg' must be an array of shape (4,)"),
    (lambda d: d["state"].update(exp_avg=np.zeros(4, np.float32)), TypeError, "'exp_avg' has dtype float32"),
    (lambda d: d["state"].pop("exp_avg_sq"), ValueError, "state_dict state has keys"),
    (lambda d: d["state"].update(step=-1), ValueError, "Invalid step"),
    (lambda d: d["param_groups"][0].update(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    (lambda d: d["param_groups"][0].update(amsgrad=True), ValueError, "expected ['exp_avg', 'exp_avg_sq', 'max_"),
    (lambda d: d["param_groups"][0].update(momentum=0.9), ValueError, "Adam takes the hyperparameters"),
])
def test_load_state_dict_refuses_what_does_not_fit(mutate, error, message):
    start, gradient = problem(4, np.float64)
    optimizer = optim.Adam(start)
    run(optimizer, gradient, 3)
    saved = optimizer.state_dict()
    run(optimizer, gradient, 2)
    before = snapshot(optimizer)
    mutate(saved)
    with pytest.raises(error, match=re.escape(message)):
        optimizer.load_state_dict(saved)
    assert_unchanged(optimizer, before)


# -- the kernels from user code ----------------------------------------------------------------

def test_kernels_are_callable_from_user_njit_code():
    @njit
    def fit_quadratic(params, n_steps):
        exp_avg = np.zeros_like(params)
        exp_avg_sq = np.zeros_like(params)
        for t in range(1, n_steps + 1):
            grad = 2.0 * params
            kernels.adam(params, grad, exp_avg, exp_avg_sq, t, 0.1, 0.9, 0.999, 1e-8, 0.0)
        return params

    params = fit_quadratic(np.array([1.0, -2.0, 3.0]), 300)
    oracle = reference.ReferenceOptimizer("adam", np.array([1.0, -2.0, 3.0]), lr=0.1)
    for _ in range(300):
        oracle.step(2.0 * oracle.params)
    np.testing.assert_allclose(params, oracle.params, rtol=1e-12, atol=1e-15)
    assert np.all(np.abs(params) < 0.05)
