"""PSGD-Kron (``psgd_kron``) against pytorch-optimizer's ``Kron``, its probability schedule and its random draws.

The reference draws its probe vectors with ``torch.randn_like`` and its balancing coin with
``np.random.random()``; fastgd draws both from a generator keyed on (seed, step, tensor). The parity tests
monkeypatch the reference's draws to return the numbers fastgd drew (``kron_probe``, ``kron_uniform``, the pure
helpers its compiled step calls with the same keys): given the same draws, the two must agree. In float64 they
also patch ``solve_triangular_right``, which pytorch-optimizer runs in float32 whatever the dtype, to solve in the
tensors' own dtype (the solve is the same, its float32 rounding would swamp 1e-10).
"""

import numpy as np
import pytest

from fastgd import optim, reference
from fastgd.kernels import kron
from fastgd.networks import Conv2D, Dense, Flatten, MaxPool2D, Network, ReLU
from torch_layouts import flat, set_gradients, torch_tensors
from rule_cases import problem

torch = pytest.importorskip("torch", reason="PyTorch (the compare extra) is not installed")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer", reason="pytorch-optimizer (the oracles extra) is not "
                                                                    "installed")
from pytorch_optimizer.optimizer import psgd  # noqa: E402

# 50 steps: every one updates the preconditioners (the probability stays 1 for the first 500), with a balancing
# draw each; 200 took minutes of CI for nothing the first 50 do not reach
N_STEPS = 50
MLP_LAYOUT = reference.mlp_layout([12, 10, 6, 3])  # (in, out) weights, then the biases
# a small CNN's: kernels as (out, in·kh·kw) = (4, 9) and (6, 36), their biases, the dense layer (3, 24)
CNN_LAYOUT = Network([Conv2D(4, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(6, 3, padding="same"), ReLU(),
                      MaxPool2D(2), Flatten(), Dense(3)], input_shape=(1, 8, 8), loss="cross_entropy").layout


def solve_triangular_in_own_dtype(x, a):
    """pytorch-optimizer's solve_triangular_right without its cast to float32."""
    return torch.linalg.solve_triangular(a, x.reshape(-1, x.size(-1)), upper=True, left=False).reshape_as(x)


class FastgdDraws:
    """Stands in for the reference's torch.randn_like and np.random.random: fastgd's numbers for the step."""

    def __init__(self, seed, layout, dtype):
        self.seed, self.layout, self.dtype = seed, layout, dtype
        self.probes, self.uniform = [], None

    def prepare(self, step):
        self.uniform = kron.kron_uniform(self.seed, step)
        self.probes = []
        for tensor, shape in enumerate(self.layout):
            out = np.empty(int(np.prod(shape)), self.dtype)
            kron.kron_probe(self.seed, step, tensor, out)
            self.probes.append(out.reshape(shape))

    def randn_like(self, like, dtype=None):
        probe = self.probes.pop(0)
        assert probe.shape == tuple(like.shape)
        return torch.from_numpy(probe).to(dtype or like.dtype)

    def random(self):
        return self.uniform


def train_both(layout, dtype, hyperparameters, monkeypatch, n_steps=N_STEPS):
    size = sum(int(np.prod(shape)) for shape in layout)
    start, gradient = problem(size, dtype)
    ours = optim.OPTIMIZERS["psgd_kron"](start.copy(), layout=layout, **hyperparameters)
    tensors = torch_tensors(start, layout)
    settings = dict(ours.hyperparameters)
    theirs_settings = {key: settings[key] for key in (
        "lr", "momentum", "weight_decay", "weight_decouple", "pre_conditioner_update_probability",
        "max_size_triangular", "min_ndim_triangular", "momentum_into_precondition_update", "balance_prob",
        "maximize")}
    theirs_settings["memory_save_mode"] = None if settings["memory_save_mode"] == "none" else settings[
        "memory_save_mode"]
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    theirs = pytorch_optimizer.Kron(tensors, precondition_dtype=torch_dtype, **theirs_settings)
    theirs.param_groups[0]["precondition_lr"] = settings["precondition_lr"]
    theirs.param_groups[0]["precondition_init_scale"] = settings["precondition_init_scale"]
    draws = FastgdDraws(settings["seed"], layout, dtype)
    monkeypatch.setattr(torch, "randn_like", draws.randn_like)
    monkeypatch.setattr(np.random, "random", draws.random)
    if dtype == np.float64:
        monkeypatch.setattr(psgd, "solve_triangular_right", solve_triangular_in_own_dtype)
    for step in range(n_steps):
        ours.step(gradient(ours.params, step))
        set_gradients(tensors, gradient(flat(tensors), step))
        draws.prepare(step + 1)
        theirs.step()
    return ours, tensors, theirs


def theirs_factors(theirs, tensors, dtype):
    """The reference's factors in fastgd's aux layout: a square block per side, a diagonal in its first entries."""
    blocks = []
    for tensor in tensors:
        for side, q in zip(tensor.shape, theirs.state[tensor]["Q"]):
            block = np.zeros(side * side, dtype)
            block[:q.numel()] = q.numpy().ravel()
            blocks.append(block)
    return np.concatenate(blocks)


CASES = [
    {},
    dict(lr=0.01, momentum=0.8, weight_decay=0.1, balance_prob=0.5, pre_conditioner_update_probability=0.3,
         precondition_lr=0.2, precondition_init_scale=2.0, seed=7),
    dict(weight_decouple=False, weight_decay=0.1, min_ndim_triangular=1, momentum_into_precondition_update=False,
         maximize=True, max_size_triangular=12, balance_prob=1.0),
    dict(memory_save_mode="one_diag", pre_conditioner_update_probability=1.0),
    dict(memory_save_mode="smart_one_diag", lr=0.01),
]


@pytest.mark.parametrize("hyperparameters", CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("layout", [MLP_LAYOUT, CNN_LAYOUT], ids=["mlp", "cnn"])
def test_matches_pytorch_optimizer_in_float64(layout, hyperparameters, monkeypatch):
    ours, tensors, theirs = train_both(layout, np.float64, hyperparameters, monkeypatch)
    np.testing.assert_allclose(ours.params, flat(tensors), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.state["momentum_buffer"],
                               np.concatenate([theirs.state[t]["momentum_buffer"].numpy().ravel() for t in tensors]),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.state["aux"], theirs_factors(theirs, tensors, np.float64), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("hyperparameters", CASES[:2], ids=["0", "1"])
@pytest.mark.parametrize("layout", [MLP_LAYOUT, CNN_LAYOUT], ids=["mlp", "cnn"])
def test_float32_agrees_with_pytorch_optimizer_to_rounding(layout, hyperparameters, monkeypatch):
    ours, tensors, theirs = train_both(layout, np.float32, hyperparameters, monkeypatch)
    assert ours.params.dtype == ours.state["aux"].dtype == np.float32
    theirs_params = flat(tensors)
    moved = np.abs(theirs_params - problem(theirs_params.size, np.float32)[0]).max()
    np.testing.assert_allclose(ours.params, theirs_params, rtol=0, atol=1e-4 * moved)


def test_the_update_schedule_is_pytorch_optimizers():
    """Every 1 / p steps, p = 1 for 500 steps then decaying to 0.03: the same steps update, over 6000."""
    schedule = psgd.precondition_update_prob_schedule()
    counter, expected, ours = 0, [], []
    ours_counter = 0.0
    for step in range(1, 6001):
        probability = schedule(step - 1)
        counter += 1
        update = bool(probability > 0 and counter >= 1 / probability)
        counter = 0 if update else counter
        expected.append(update)
        ours_counter, update, _, _, _ = kron.kron_step(step, 0.9, float("nan"), ours_counter, 0.01, 0)
        ours.append(update)
    assert ours == expected
    assert all(expected[:500]) and 80 < sum(expected[3000:]) < 130  # every 34th step at p = 0.03


def test_draws_are_fixed_by_seed_step_and_tensor():
    first, again, other_tensor, other_step = (np.empty(20001) for _ in range(4))
    kron.kron_probe(3, 5, 0, first)
    kron.kron_probe(3, 5, 0, again)
    kron.kron_probe(3, 5, 1, other_tensor)
    kron.kron_probe(3, 6, 0, other_step)
    np.testing.assert_array_equal(first, again)
    assert not np.any(first == other_tensor) and not np.any(first == other_step)
    assert abs(first.mean()) < 0.03 and abs(first.std() - 1.0) < 0.03
    # the NumPy reference's own SplitMix64 and Box–Muller give the same numbers
    uniform, normals = reference.kron_draws(3, 5, 0, 20001)
    assert uniform == kron.kron_uniform(3, 5)
    np.testing.assert_allclose(first, normals, rtol=1e-14, atol=1e-14)
    uniforms = [kron.kron_uniform(0, step) for step in range(1, 2001)]
    assert 0.0 <= min(uniforms) and max(uniforms) < 1.0 and abs(np.mean(uniforms) - 0.5) < 0.03


def test_same_seed_same_run_other_seed_other_run():
    start, gradient = problem(sum(int(np.prod(s)) for s in MLP_LAYOUT), np.float64)
    runs = []
    for seed in (0, 0, 1):
        optimizer = optim.OPTIMIZERS["psgd_kron"](start.copy(), layout=MLP_LAYOUT, seed=seed)
        for step in range(5):
            optimizer.step(gradient(optimizer.params, step))
        runs.append(optimizer.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize("hyperparameters, message", [
    (dict(pre_conditioner_update_probability=0.0), "pre_conditioner_update_probability must be in (0, 1]"),
    (dict(pre_conditioner_update_probability=1.5), "pre_conditioner_update_probability must be in (0, 1]"),
    (dict(max_size_triangular=0), "max_size_triangular must be an integer >= 1"),
    (dict(max_size_triangular=10000), "max_size_triangular must be at most 8192"),
    (dict(memory_save_mode="some_diag"), "invalid memory_save_mode some_diag"),
    (dict(momentum=1.0), "momentum must be in the range [0.0, 1.0)"),
    (dict(seed=-1), "seed must be an integer in [0, 2**24)"),
])
def test_bad_input_is_refused_in_one_line_before_anything_changes(hyperparameters, message):
    params = np.ones(12)
    with pytest.raises(ValueError) as raised:
        optim.OPTIMIZERS["psgd_kron"](params, layout=[(3, 4)], **hyperparameters)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    np.testing.assert_array_equal(params, np.ones(12))


def test_the_cuda_path_refuses_it_in_one_line_naming_the_rule():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from fastgd import rules
    from fastgd.cuda import rules as cuda_rules

    optimizer = optim.OPTIMIZERS["psgd_kron"](np.ones(12), layout=[(3, 4)])
    with pytest.raises(rules.RuleError, match="^rule 'psgd_kron': its per-tensor function has no CUDA form") as raised:
        cuda_rules.compiled(optimizer.packed().variant)
    assert "\n" not in str(raised.value)
