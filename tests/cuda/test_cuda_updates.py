"""Every rule's CUDA kernel against its CPU kernel, and the optimizer classes over device arrays."""

import inspect
import re

import numpy as np
import pytest
from numba import cuda

from conftest import SIMULATOR
from fastgd import optim, rules
from fastgd.rules import kernels
from fastgd.rules.definition import REDUCTION_BLOCK
from fastgd.cuda import rules as cuda_rules
from rule_cases import (LAYOUT_37, SKLEARN_ADAM, VARIANTS, case_id, cases, cpu_only, problem, readme_plugin,
                        reduces)

# per-tensor functions that call LAPACK have no CUDA form (refused); the steps that sum over every parameter first
# (Prodigy, D-Adaptation Adam, Adan's clipping) are device cases too, and are checked over several blocks below
DEVICE_CASES = [case for case in cases() if not cpu_only(*case)]
REDUCING_CASES = [case for case in cases() if reduces(*case) and not cpu_only(*case)]
RULES = sorted(name for name in optim.OPTIMIZERS if rules.is_builtin(name)
               and not cpu_only(name, {}) and not cpu_only(name, (VARIANTS[name] or [{}])[-1]))
N_PARAMS = 37  # more than the simulator's 2 × 4 threads: every thread loops
FLOAT32_ULPS = 4


def assert_close_float64(actual, desired):
    # atol (a few ulps at the array's scale) only absorbs last-bit noise where
    # a state value passes through zero; a GPU's FMAs round a·b + c once
    np.testing.assert_allclose(actual, desired, rtol=1e-12, atol=1e-15 * max(1.0, np.abs(desired).max()))


def assert_within_ulps(actual, desired, ulps=FLOAT32_ULPS):
    """|actual − desired| ≤ ulps float32 spacings at the array's scale (its largest magnitude).

    At the array's scale, not each element's: a state value that is a
    difference of nearly equal terms (an average of gradients of both signs)
    keeps only the absolute error of its terms, and a GPU may round a·b + c
    once (FMA) where the CPU rounds twice.
    """
    assert actual.dtype == desired.dtype == np.float32
    scale = np.float32(max(np.abs(desired).max(), np.finfo(np.float32).tiny))
    np.testing.assert_array_less(np.abs(actual.astype(np.float64) - desired), ulps * np.spacing(scale) * (1 + 1e-9),
                                 err_msg=f"more than {ulps} ulps of {scale} apart")


def device_state(optimizer):
    return {key: value.copy_to_host() for key, value in optimizer.state.items() if hasattr(value, "copy_to_host")}


def host_state(optimizer):
    return {key: value for key, value in optimizer.state.items() if isinstance(value, np.ndarray)}


@pytest.mark.parametrize("case", DEVICE_CASES, ids=case_id)
def test_float64_trajectory_matches_the_cpu_kernel(case):
    name, hyperparameters = case
    start, gradient = problem(N_PARAMS, np.float64)
    on_cpu = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    on_device = optim.OPTIMIZERS[name](cuda.to_device(start), layout=LAYOUT_37, **hyperparameters)
    assert on_device.device == "cuda"
    for step in range(20):
        on_cpu.step(gradient(on_cpu.params, step))
        on_device.step(cuda.to_device(gradient(on_device.params.copy_to_host(), step)))
    assert_close_float64(on_device.params.copy_to_host(), on_cpu.params)
    states = device_state(on_device)
    assert states.keys() == host_state(on_cpu).keys()
    for key, value in states.items():
        assert_close_float64(value, on_cpu.state[key])
    assert on_device.state["step"] == on_cpu.state["step"] == 20
    for key in optim.OPTIMIZERS[name].rule.scalar_state:
        assert on_device.state[key] == on_cpu.state[key]


@pytest.fixture(scope="module")
def user_rules(tmp_path_factory):
    names = rules.load_plugins([str(readme_plugin(tmp_path_factory.mktemp("plugin"))), str(SKLEARN_ADAM)])
    yield
    for name in names:
        rules.unregister(name)


@pytest.mark.parametrize("name, hyperparameters", [
    ("signum", dict(lr=0.01, weight_decay=0.1)), ("sklearn_adam", dict(lr=0.01, amsgrad=True, pull_strength=0.1))])
def test_a_users_rule_runs_on_the_device_as_on_the_cpu(user_rules, name, hyperparameters):
    start, gradient = problem(N_PARAMS, np.float64)
    on_cpu = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    on_device = optim.OPTIMIZERS[name](cuda.to_device(start), layout=LAYOUT_37, **hyperparameters)
    for step in range(10):
        on_cpu.step(gradient(on_cpu.params, step))
        on_device.step(cuda.to_device(gradient(on_device.params.copy_to_host(), step)))
    assert_close_float64(on_device.params.copy_to_host(), on_cpu.params)
    for key, value in device_state(on_device).items():
        assert_close_float64(value, on_cpu.state[key])


@pytest.mark.parametrize("case", DEVICE_CASES, ids=case_id)
def test_float32_steps_match_the_cpu_kernel_to_a_few_ulps(case):
    # Each step starts both kernels from the same params and state, so that
    # the comparison is of one step's rounding, not of rounding compounded.
    name, hyperparameters = case
    start, gradient = problem(N_PARAMS, np.float32)
    on_cpu = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    on_device = optim.OPTIMIZERS[name](cuda.to_device(start), layout=LAYOUT_37, **hyperparameters)
    for step in range(10):
        grad = gradient(on_cpu.params, step)
        on_device.params.copy_to_device(on_cpu.params)
        for key, value in host_state(on_cpu).items():
            on_device.state[key].copy_to_device(value)
        on_cpu.step(grad)
        on_device.step(cuda.to_device(grad))
        assert on_device.params.dtype == np.float32
        assert_within_ulps(on_device.params.copy_to_host(), on_cpu.params)
        for key, value in device_state(on_device).items():
            assert_within_ulps(value, on_cpu.state[key])


@pytest.mark.parametrize("name", RULES)
def test_launchers_have_the_cpu_kernels_signatures(name):
    cpu_parameters = list(inspect.signature(getattr(kernels, name).py_func).parameters)
    assert cpu_parameters == list(kernels.kernel_parameters(name))
    assert list(inspect.signature(cuda_rules.launcher(name)).parameters) == cpu_parameters + ["halt"]


@pytest.mark.parametrize("case", REDUCING_CASES, ids=case_id)
def test_a_step_with_a_reduction_sums_blocks_as_the_cpu_does(case):
    # three blocks of the sum (the last one short): the device sums block k in thread k, the host adds the
    # blocks in the CPU kernel's order, so the sums, the finish's scalar state (Prodigy's d) and θ follow the CPU
    name, hyperparameters = case
    n_params = 2 * REDUCTION_BLOCK + 5
    start = np.linspace(-1.0, 1.0, n_params)
    on_cpu = optim.OPTIMIZERS[name](start.copy(), **hyperparameters)
    on_device = optim.OPTIMIZERS[name](cuda.to_device(start), **hyperparameters)
    for step in range(3):
        grad = np.sin(np.arange(n_params) * (step + 1.0)) * 0.1 + 0.01 * on_cpu.params
        on_cpu.step(grad)
        on_device.step(cuda.to_device(grad))
    assert_close_float64(on_device.params.copy_to_host(), on_cpu.params)
    for key, value in device_state(on_device).items():
        assert_close_float64(value, on_cpu.state[key])
    np.testing.assert_allclose(on_device.packed().counters, on_cpu.packed().counters, rtol=1e-12)
    assert not np.array_equal(on_cpu.params, start)


LAPACK_RULES = sorted(name for name in optim.OPTIMIZERS if rules.is_builtin(name)
                      and optim.OPTIMIZERS[name].rule.per_tensor is not None
                      and not optim.OPTIMIZERS[name].rule.per_tensor.cuda)


def test_the_rules_calling_lapack_are_the_matrix_preconditioners():
    assert LAPACK_RULES == ["psgd_kron", "shampoo", "soap"]


@pytest.mark.parametrize("name", LAPACK_RULES)
def test_a_step_calling_lapack_is_refused_on_the_device(name):
    params = cuda.to_device(np.ones(N_PARAMS))
    with pytest.raises(rules.RuleError, match=f"^rule '{name}': its per-tensor function has no CUDA form \\(it calls "
                                              "LAPACK\\): train it on the CPU"):
        optim.OPTIMIZERS[name](params, layout=LAYOUT_37)
    np.testing.assert_array_equal(params.copy_to_host(), np.ones(N_PARAMS))  # nothing changed


def test_a_raised_halt_flag_leaves_everything_as_it_was():
    start, gradient = problem(N_PARAMS, np.float32)
    params, exp_avg, exp_avg_sq = cuda.to_device(start), cuda.to_device(np.ones_like(start)), cuda.to_device(
        np.ones_like(start))
    grad = cuda.to_device(gradient(start, 0))
    adam = cuda_rules.launcher("adam")
    adam(params, grad, exp_avg, exp_avg_sq, 1, 0.1, 0.9, 0.999, 1e-8, 0.0, halt=cuda.to_device(np.ones(1, np.int32)))
    np.testing.assert_array_equal(params.copy_to_host(), start)
    np.testing.assert_array_equal(exp_avg.copy_to_host(), np.ones_like(start))
    adam(params, grad, exp_avg, exp_avg_sq, 1, 0.1, 0.9, 0.999, 1e-8, 0.0, halt=cuda.to_device(np.zeros(1, np.int32)))
    assert not np.array_equal(params.copy_to_host(), start)


# -- the optimizer classes over device arrays -------------------------------------------------

@pytest.mark.parametrize("make_grad, error, message", [
    (lambda: np.zeros(4), TypeError, "grad is a NumPy array but params are on the GPU"),
    (lambda: [0.0] * 4, TypeError, "grad must be a CUDA device array like params, got list"),
    (lambda: cuda.to_device(np.zeros(5)), ValueError, "grad has shape (5,), params (4,)"),
    (lambda: cuda.to_device(np.zeros(4, np.float32)), TypeError, "grad has dtype float32, params float64"),
    (lambda: cuda.to_device(np.zeros(8))[::2], ValueError, "grad must be contiguous on the device"),
])
def test_bad_device_gradient_changes_nothing(make_grad, error, message):
    grad = make_grad()
    start, gradient = problem(4, np.float64)
    optimizer = optim.Adam(cuda.to_device(start), lr=0.1)
    optimizer.step(cuda.to_device(gradient(start, 0)))
    params, state = optimizer.params.copy_to_host(), device_state(optimizer)
    with pytest.raises(error, match=re.escape(message)):
        optimizer.step(grad)
    np.testing.assert_array_equal(optimizer.params.copy_to_host(), params)
    for key, value in device_state(optimizer).items():
        np.testing.assert_array_equal(value, state[key])
    assert optimizer.state["step"] == 1


@pytest.mark.parametrize("params, error, message", [
    (lambda: cuda.to_device(np.zeros(3, np.int64)), TypeError, "dtype float32 or float64, got int64"),
    (lambda: cuda.to_device(np.zeros((2, 3))), ValueError, "1-D vector, got an array of shape (2, 3)"),
    (lambda: cuda.to_device(np.zeros(6))[::2], ValueError, "must be contiguous"),
])
def test_bad_device_params_are_refused(params, error, message):
    with pytest.raises(error, match=re.escape(message)):
        optim.Adam(params())


@pytest.mark.parametrize("name", RULES)
def test_state_dict_on_the_device_is_numpy_and_round_trips(name):
    start, gradient = problem(N_PARAMS, np.float64)
    hyperparameters = (VARIANTS[name] or [{}])[-1]
    original = optim.OPTIMIZERS[name](cuda.to_device(start), layout=LAYOUT_37, **hyperparameters)
    for step in range(3):
        original.step(cuda.to_device(gradient(original.params.copy_to_host(), step)))
    saved = original.state_dict()
    scalars = {"step", *optim.OPTIMIZERS[name].rule.scalar_state}
    assert all(isinstance(value, np.ndarray) for key, value in saved["state"].items() if key not in scalars)
    restored = optim.OPTIMIZERS[name](cuda.to_device(original.params.copy_to_host()), layout=LAYOUT_37)
    restored.load_state_dict(saved)
    for step in range(3, 6):
        grad = gradient(original.params.copy_to_host(), step)
        original.step(cuda.to_device(grad))
        restored.step(cuda.to_device(grad))
    np.testing.assert_array_equal(restored.params.copy_to_host(), original.params.copy_to_host())
    for key, value in device_state(original).items():
        np.testing.assert_array_equal(device_state(restored)[key], value)


@pytest.mark.parametrize("name", ["adagrad", "nadam", "rmsprop"])
def test_an_optimizer_moves_between_cpu_and_device_with_its_state(name):
    start, gradient = problem(N_PARAMS, np.float64)
    hyperparameters = (VARIANTS[name] or [{}])[-1]
    staying = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    moving = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    for step in range(9):
        if step == 3:
            moving = moving.with_params(cuda.to_device(moving.params))
        if step == 6:
            moving = moving.with_params(moving.params.copy_to_host())
        staying.step(gradient(staying.params, step))
        params = moving.params if moving.device == "cpu" else moving.params.copy_to_host()
        grad = gradient(params, step)
        moving.step(grad if moving.device == "cpu" else cuda.to_device(grad))
    assert moving.device == "cpu" and moving.state["step"] == 9
    assert_close_float64(moving.params, staying.params)


def test_initial_accumulator_is_filled_on_the_device():
    optimizer = optim.Adagrad(cuda.to_device(np.zeros(N_PARAMS, np.float32)), initial_accumulator_value=0.25)
    np.testing.assert_array_equal(optimizer.state["sum"].copy_to_host(), np.full(N_PARAMS, 0.25, np.float32))


# -- what only a GPU can show ----------------------------------------------------------------

class ForeignArray:
    """Another library's GPU array: nothing but ``__cuda_array_interface__``."""

    def __init__(self, device_array):
        self._array = device_array
        self.__cuda_array_interface__ = device_array.__cuda_array_interface__


@pytest.mark.skipif(SIMULATOR, reason="the simulator's arrays have no __cuda_array_interface__: runs on a GPU")
def test_any_cuda_array_interface_is_updated_in_place_without_a_copy():
    start, gradient = problem(N_PARAMS, np.float32)
    memory = cuda.to_device(start)
    params = ForeignArray(memory)
    optimizer = optim.Adam(params, lr=0.1)
    assert optimizer.params.device_ctypes_pointer.value == memory.device_ctypes_pointer.value
    on_cpu = optim.Adam(start.copy(), lr=0.1)
    grad = gradient(start, 0)
    optimizer.step(ForeignArray(cuda.to_device(grad)))
    on_cpu.step(grad)
    assert_within_ulps(memory.copy_to_host(), on_cpu.params)


@pytest.mark.skipif(SIMULATOR, reason="the simulator's arrays have no __cuda_array_interface__: runs on a GPU")
def test_read_only_cuda_array_interface_is_refused():
    memory = cuda.to_device(np.zeros(3))
    params = ForeignArray(memory)
    params.__cuda_array_interface__ = dict(params.__cuda_array_interface__,
                                           data=(params.__cuda_array_interface__["data"][0], True))
    with pytest.raises(ValueError, match="writeable"):
        optim.SGD(params)


def test_torch_cuda_tensors_are_updated_in_place():
    torch = pytest.importorskip("torch")
    if SIMULATOR or not torch.cuda.is_available():
        pytest.skip("needs PyTorch built with CUDA and a GPU")
    params = torch.linspace(1.0, 2.0, N_PARAMS, device="cuda")
    theirs = params.clone().requires_grad_(True)
    ours = optim.Adam(params, lr=0.01)
    reference = torch.optim.Adam([theirs], lr=0.01)
    for _ in range(5):
        grad = 2 * params
        ours.step(grad)
        theirs.grad = 2 * theirs.detach()
        reference.step()
    torch.testing.assert_close(params, theirs.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(SIMULATOR, reason="the simulator compiles nothing: runs on a GPU")
def test_second_step_does_not_compile_again():
    for dtype in (np.float32, np.float64):
        for name in RULES:
            start, gradient = problem(16, dtype)
            optimizer = optim.OPTIMIZERS[name](cuda.to_device(start))
            optimizer.step(cuda.to_device(gradient(start, 0)))
            variant = cuda_rules.compiled(optimizer.packed().variant)
            # a per-tensor rule over all its tensors has no element loop, only its tensor kernel
            kernels = [kernel for kernel in (variant.loop_kernel, variant.tensor_kernel) if kernel is not None]
            compiled = [len(kernel.overloads) for kernel in kernels]
            optimizer.param_groups[0]["lr"] = 1  # an int: still one signature
            optimizer.step(cuda.to_device(gradient(start, 1)))
            assert kernels and all(len(kernel.overloads) == count <= 2  # one specialisation per dtype
                                   for kernel, count in zip(kernels, compiled)), (name, dtype)
