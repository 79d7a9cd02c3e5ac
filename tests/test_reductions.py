"""Global reductions and proximal weight decay in users' rules: the declaration, its refusals, its kernels.

A rule that sums over every parameter before its element pass (``fastgd.rules.Reduction``) against a
NumPy transcription of its math; the serial and ``prange`` steps agree bit for bit over several
blocks of the sum; bad declarations are refused at registration in one line naming the rule; the
CUDA path refuses such a rule in one line. The built-ins that use them (Adan, Prodigy, D-Adaptation
Adam) meet pytorch-optimizer in test_more_rules.
"""

import math

import numpy as np
import pytest

from fastgd import _config, optim, rules
from fastgd.rules.definition import REDUCTION_BLOCK


def _clipped_element(param, grad, lr, clip_factor):
    return param - lr * clip_factor * grad


def _squares(param, grad):
    return grad * grad


def _clip(grad_squares, max_norm):
    return min(1.0, max_norm / math.sqrt(grad_squares)) if grad_squares > 0.0 else 1.0


def _normalised_element(param, grad, momentum_buffer, lr, momentum, inverse_norm):
    buffer = momentum * momentum_buffer + grad * inverse_norm
    return param - lr * buffer, buffer


def _norm_and_dot(param, grad, momentum_buffer):
    return grad * grad, grad * momentum_buffer


def _inverse(grad_squares, alignment, step, steps_aligned):
    return 1.0 / math.sqrt(grad_squares), steps_aligned + (1.0 if alignment > 0.0 else 0.0)


CLIPPED = dict(element=_clipped_element,
               hyperparameters={"lr": rules.LearningRate(0.1), "max_norm": rules.Real(1.0, low_open=True)},
               reduction=rules.Reduction(_squares, "grad_squares", finish=rules.PerStep(_clip, "clip_factor")))


@pytest.fixture
def registered():
    """Register rules for one test; unregister them after."""
    names = []

    def register(rule):
        rules.register(rule)
        names.append(rule.name)
        return optim.OPTIMIZERS[rule.name]

    yield register
    for name in names:
        rules.unregister(name)


def test_a_users_rule_clipping_by_the_global_norm_follows_its_numpy_transcription(registered):
    SGDClipped = registered(rules.Rule("sgd_clipped", **CLIPPED))
    rng = np.random.default_rng(0)
    start = rng.normal(size=50)
    ours, theirs = start.copy(), start.copy()
    optimizer = SGDClipped(ours, layout=[(5, 8), (10,)], lr=0.05, max_norm=2.0)
    for _ in range(30):
        optimizer.step(3.0 * ours + 1.0)
        grad = 3.0 * theirs + 1.0
        theirs -= 0.05 * min(1.0, 2.0 / np.linalg.norm(grad)) * grad
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)
    assert np.linalg.norm(3.0 * start + 1.0) > 2.0  # the clip acted


def test_the_sums_reach_the_finish_and_its_scalar_state_and_the_element(registered):
    # two sums, a finish updating a scalar state, and an element taking a finish output
    Normalised = registered(rules.Rule(
        "normalised_momentum", element=_normalised_element,
        hyperparameters={"lr": rules.LearningRate(0.1), "momentum": rules.Real(0.5)},
        state={"momentum_buffer": rules.State()}, scalar_state={"steps_aligned": rules.ScalarState(0.0)},
        reduction=rules.Reduction(_norm_and_dot, "grad_squares", "alignment",
                                  finish=rules.PerStep(_inverse, "inverse_norm", "steps_aligned"))))
    rng = np.random.default_rng(1)
    start = rng.normal(size=20).astype(np.float32)
    optimizer = Normalised(start.copy(), lr=0.1, momentum=0.5)
    theta, buffer, aligned = start.astype(np.float64), np.zeros(20), 0
    for step in range(10):
        grad = np.sin(np.arange(20) + step).astype(np.float32)
        optimizer.step(grad)
        aligned += float(np.dot(grad.astype(np.float64), buffer)) > 0
        buffer = 0.5 * buffer + grad / np.linalg.norm(grad.astype(np.float64))
        theta = theta - 0.1 * buffer
    assert optimizer.params.dtype == np.float32 and optimizer.state["momentum_buffer"].dtype == np.float32
    np.testing.assert_allclose(optimizer.params, theta, rtol=1e-5)
    assert optimizer.state["steps_aligned"] == aligned > 0


def test_serial_and_prange_sums_agree_bitwise_over_several_blocks(registered, monkeypatch):
    SGDClipped = registered(rules.Rule("sgd_clipped_blocks", **CLIPPED))
    size = 2 * REDUCTION_BLOCK + 123  # three blocks, the last one short
    rng = np.random.default_rng(2)
    start = rng.normal(size=size).astype(np.float32)
    results = []
    for threshold in (1 << 40, 1):
        monkeypatch.setattr(_config, "PARALLEL_THRESHOLD", threshold)
        optimizer = SGDClipped(start.copy(), lr=0.1, max_norm=1.0)
        for step in range(5):
            optimizer.step(np.cos(optimizer.params * (step + 1)))
        results.append(optimizer.params)
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], start)


def test_a_reduction_switched_off_by_its_flag_gives_zero_sums(registered):
    def element(param, grad, lr, grad_squares):
        return param - lr * (grad + grad_squares)

    Flagged = registered(rules.Rule(
        "flagged_sum", element=element,
        hyperparameters={"lr": rules.LearningRate(0.1), "summing": rules.Flag(False)},
        reduction=rules.Reduction(_squares, "grad_squares", when="summing")))
    params = np.ones(4)
    Flagged(params, lr=0.5).step(np.full(4, 2.0))
    np.testing.assert_array_equal(params, np.zeros(4))  # 1 - 0.5·2: no sum
    params = np.ones(4)
    Flagged(params, lr=0.5, summing=True).step(np.full(4, 2.0))
    np.testing.assert_array_equal(params, np.full(4, 1 - 0.5 * (2 + 16)))


def test_proximal_weight_decay_divides_after_the_element(registered):
    def element(param, grad, lr):
        return param - lr * grad

    Proximal = registered(rules.Rule("sgd_proximal", element=element, hyperparameters={
        "lr": rules.LearningRate(0.1), "weight_decay": rules.WeightDecay(0.0, "proximal")}))
    params = np.array([1.0, -2.0])
    Proximal(params, lr=0.1, weight_decay=0.5).step(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(params, (np.array([1.0, -2.0]) - 0.1) / (1 + 0.1 * 0.5))


def _refused(name, message, **declaration):
    declaration.setdefault("hyperparameters", {"lr": rules.LearningRate(0.1)})
    declaration.setdefault("element", _clipped_element)
    with pytest.raises(rules.RuleError) as info:
        rules.register(rules.Rule(name, **declaration))
    text = str(info.value)
    assert "\n" not in text and message in text and repr(name) in text, text
    assert name not in rules.RULES


SQUARE_ROOT_OF_TWO = np.float64(math.sqrt(2.0))  # a float64 global: it widens float32 arithmetic


def _three(param, grad):
    return grad, grad, grad


def _vector(param, grad):
    return np.array([grad, grad])


@pytest.mark.parametrize("function, message", [
    (_three, "the reduction function returns 3 values, it declares 2 outputs (grad_squares, clip_factor)"),
    (_vector, "the reduction function's term for 'grad_squares' must be one number per parameter, got shape (2,)"),
])
def test_a_reduction_returning_the_wrong_number_or_shape_of_values_is_refused(function, message):
    outputs = ("grad_squares", "clip_factor") if function is _three else ("grad_squares",)
    _refused("bad_reduction", message, reduction=rules.Reduction(function, *outputs))


@pytest.mark.parametrize("outputs, declaration, message", [
    (("lr",), {}, "reduction output 'lr' clashes with a hyperparameter"),
    (("grad_squares",), dict(per_step=rules.PerStep(lambda lr: lr, "grad_squares")),
     "reduction output 'grad_squares' clashes"),
    (("buffer",), dict(state={"buffer": rules.State()}), "reduction output 'buffer' clashes"),
    (("params",), {}, "reduction output 'params' is a name the generated code uses"),
    (("_hidden",), {}, "reduction output '_hidden' is not an identifier"),
])
def test_a_reduction_name_clashing_with_another_name_is_refused(outputs, declaration, message):
    _refused("clashing_reduction", message, reduction=rules.Reduction(lambda param, grad: grad, *outputs),
             **declaration)


def test_a_finish_output_clashing_with_a_sum_is_refused():
    _refused("clashing_finish", "the reduction's finish output 'grad_squares' clashes",
             hyperparameters={"lr": rules.LearningRate(0.1), "max_norm": rules.Real(1.0)},
             reduction=rules.Reduction(_squares, "grad_squares", finish=rules.PerStep(_clip, "grad_squares")))


def test_a_reduction_taking_an_unknown_name_or_switched_by_an_unknown_flag_is_refused():
    _refused("unknown_input", "the reduction function's parameter 'momentum' is not",
             reduction=rules.Reduction(lambda param, grad, momentum: grad, "total"))
    _refused("unknown_flag", "the reduction is taken 'when' 'summing', which is not a flag",
             reduction=rules.Reduction(_squares, "total", when="summing"))


def test_a_reduction_returning_float64_terms_for_float32_is_refused_at_registration():
    def widening(param, grad):
        return grad * SQUARE_ROOT_OF_TWO

    _refused("widening_reduction", "its reduction function widening returns the term of 'clip_factor' as float64 "
             "for float32 parameters", reduction=rules.Reduction(widening, "clip_factor"))


def test_proximal_decay_on_a_per_tensor_rule_is_refused():
    def tensor(params, grad, lr):
        params -= lr * grad

    _refused("proximal_tensor", "proximal weight decay follows the element", element=None,
             per_tensor=rules.PerTensor(tensor),
             hyperparameters={"lr": rules.LearningRate(0.1), "weight_decay": rules.WeightDecay(0.0, "proximal")})


def test_the_cuda_module_of_a_step_with_a_reduction_sums_on_the_device_and_finishes_on_the_host():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from fastgd.cuda import rules as cuda_rules

    source = cuda_rules._source(optim.OPTIMIZERS["prodigy"](np.ones(4)).packed().variant.plan, "")
    assert "def reduction_kernel(" in source and "reduction_inputs(" in source
    assert "loop_scalars(step, dtype_eps, d, d_max, d_numerator" in source and "*_sums)" in source
    # Adan without clipping takes no reduction: no reduction kernel, one host call for its scalars
    adan = cuda_rules._source(optim.OPTIMIZERS["adan"](np.ones(4)).packed().variant.plan, "")
    assert "def packed_launch" in adan and "reduction_kernel" not in adan
    assert cuda_rules.add_in_order(np.array([[1.0, 1e16], [2.0, 1.0], [3.0, -1e16]])) == [6.0, 0.0]


def _halve_tensor(params, grad, lr):
    for i in range(params.size):
        params[i] = params[i] - lr * grad[i] / 2


def test_the_cuda_path_refuses_a_per_tensor_function_marked_cpu_only_in_one_line_naming_the_rule(registered):
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from fastgd.cuda import rules as cuda_rules

    CpuOnly = registered(rules.Rule("sgd_lapack_tensor", per_tensor=rules.PerTensor(_halve_tensor, cuda=False),
                                    hyperparameters={"lr": rules.LearningRate(0.1)}))
    optimizer = CpuOnly(np.ones(4))
    optimizer.step(np.ones(4))
    assert np.allclose(optimizer.params, 0.95)  # the CPU runs it
    with pytest.raises(rules.RuleError, match="^rule 'sgd_lapack_tensor': its per-tensor function has no CUDA form"):
        cuda_rules.compiled(optimizer.packed().variant)
    with pytest.raises(rules.RuleError, match="PerTensor cuda must be True or False"):
        rules.PerTensor(_halve_tensor, cuda="no")
