"""The rules beyond the lecture's, against the implementations their docstrings name as the contract.

RAdam, Rprop and ASGD meet torch.optim in test_optim's table-driven torch test (one tensor is
enough for element-wise rules). Here: the per-tensor rules over a layout of several tensors,
against torch.optim (Adafactor, Muon with AdamW on its vectors) and pytorch-optimizer (LAMB),
and Schedule-Free AdamW against the schedulefree package, its training and its evaluation point.
Float64 to 1e-10 after 200 steps; float32 within rounding.
"""

import numpy as np
import pytest

from fastgd import optim
from rule_cases import LAYOUT_37, problem

torch = pytest.importorskip("torch", reason="PyTorch (the compare extra) is not installed")

N_STEPS = 200
FLOAT32_RTOL = 1e-4  # 200 steps of float32 rounding, both sides


def torch_tensors(flat, layout):
    """One torch tensor per shape of ``layout``, holding ``flat``'s values (its dtype)."""
    tensors, start = [], 0
    for shape in layout:
        size = int(np.prod(shape))
        tensors.append(torch.tensor(flat[start:start + size].reshape(shape), requires_grad=True))
        start += size
    return tensors


def flat(tensors):
    return np.concatenate([tensor.detach().numpy().ravel() for tensor in tensors])


def set_gradients(tensors, gradient):
    start = 0
    for tensor in tensors:
        size = tensor.numel()
        tensor.grad = torch.from_numpy(gradient[start:start + size].reshape(tensor.shape).copy())
        start += size


def train_both(ours, tensors, theirs, gradient, n_steps=N_STEPS):
    for step in range(n_steps):
        ours.step(gradient(ours.params, step))
        set_gradients(tensors, gradient(flat(tensors), step))
        theirs.step()


def assert_close(actual, desired, dtype):
    rtol = 1e-10 if dtype == np.float64 else FLOAT32_RTOL
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * 1e-3 * max(1.0, np.abs(desired).max()))


@pytest.fixture
def float64_scalars():
    """torch keeps some per-step scalars in its default dtype: float64, as fastgd computes them."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hyperparameters", [{}, dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-3), d=2.0,
                                                      weight_decay=0.1)])
def test_adafactor_matches_torch_per_tensor(dtype, hyperparameters):
    start, gradient = problem(37, dtype)
    ours = optim.Adafactor(start.copy(), layout=LAYOUT_37, **hyperparameters)
    tensors = torch_tensors(start, LAYOUT_37)
    theirs = torch.optim.Adafactor(tensors, foreach=False, **hyperparameters)
    train_both(ours, tensors, theirs, gradient)
    assert_close(ours.params, flat(tensors), dtype)
    # the factored moments: a row and a column factor per matrix, the full variance of the vector
    moments = []
    for tensor in tensors:
        state = theirs.state[tensor]
        moments += ([state["row_var"].numpy().ravel(), state["col_var"].numpy().ravel()] if tensor.dim() == 2
                    else [state["variance"].numpy().ravel()])
    assert_close(ours.state["aux"], np.concatenate(moments), dtype)


def newton_schulz_without_bfloat16(grad, ns_coefficients, ns_steps, eps):
    """torch's _zeropower_via_newtonschulz, in the gradient's own dtype (torch casts to bfloat16 first)."""
    a, b, c = ns_coefficients
    ortho_grad = grad.T if grad.size(0) > grad.size(1) else grad
    ortho_grad = ortho_grad / ortho_grad.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram_matrix = ortho_grad @ ortho_grad.T
        gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
        ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
    return ortho_grad.T if grad.size(0) > grad.size(1) else ortho_grad


MUON_CASES = [
    {},
    dict(lr=0.01, momentum=0.8, nesterov=False, weight_decay=0.05, adjust_lr_fn="match_rms_adamw", ns_steps=3,
         adamw_lr=0.01, adamw_betas=(0.8, 0.99), adamw_weight_decay=0.1),
]


def torch_muon(tensors, hyperparameters):
    """torch's Muon on the matrices and torch's AdamW on the rest, as Muon's reference usage pairs them."""
    settings = dict(optim.Muon.default_hyperparameters(), **hyperparameters)
    matrices = [tensor for tensor in tensors if tensor.dim() == 2]
    vectors = [tensor for tensor in tensors if tensor.dim() != 2]
    muon = torch.optim.Muon(matrices, lr=settings["lr"], weight_decay=settings["weight_decay"],
                            momentum=settings["momentum"], nesterov=settings["nesterov"],
                            ns_coefficients=settings["ns_coefficients"], eps=settings["eps"],
                            ns_steps=settings["ns_steps"], adjust_lr_fn=settings["adjust_lr_fn"])
    adamw = torch.optim.AdamW(vectors, lr=settings["adamw_lr"], betas=settings["adamw_betas"],
                              eps=settings["adamw_eps"], weight_decay=settings["adamw_weight_decay"])

    class Both:
        def step(self):
            muon.step()
            adamw.step()

    return Both()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hyperparameters", MUON_CASES)
def test_muon_matches_torch_with_adamw_on_the_vectors(dtype, hyperparameters, monkeypatch):
    from torch.optim import _muon

    monkeypatch.setattr(_muon, "_zeropower_via_newtonschulz", newton_schulz_without_bfloat16)
    start, gradient = problem(37, dtype)
    ours = optim.Muon(start.copy(), layout=LAYOUT_37, **hyperparameters)
    tensors = torch_tensors(start, LAYOUT_37)
    train_both(ours, tensors, torch_muon(tensors, hyperparameters), gradient)
    assert_close(ours.params, flat(tensors), dtype)


def test_muon_follows_torchs_own_bfloat16_iteration_to_its_precision():
    # unpatched: torch orthogonalises in bfloat16 (8 bits of mantissa), fastgd in the parameters' dtype
    start, gradient = problem(37, np.float64)
    ours = optim.Muon(start.copy(), layout=LAYOUT_37)
    tensors = torch_tensors(start, LAYOUT_37)
    train_both(ours, tensors, torch_muon(tensors, {}), gradient, n_steps=1)
    ours_move, theirs_move = ours.params - start, flat(tensors) - start
    matrices = slice(0, 35)
    cosine = ours_move[matrices] @ theirs_move[matrices] / (np.linalg.norm(ours_move[matrices])
                                                           * np.linalg.norm(theirs_move[matrices]))
    assert cosine > 0.999
    # bfloat16 keeps about 3 significant digits of each entry of the orthogonalised matrix, at its scale
    scale = np.abs(theirs_move[matrices]).max()
    np.testing.assert_allclose(ours_move[matrices], theirs_move[matrices], rtol=0, atol=0.05 * scale)


LAMB_CASES = [{}, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, grad_averaging=False, eps=1e-5),
              dict(adam=True), dict(clamp=2.0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hyperparameters", LAMB_CASES)
def test_lamb_matches_pytorch_optimizer_per_tensor(dtype, hyperparameters):
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer", reason="pytorch-optimizer (the oracles extra) is "
                                                                        "not installed")
    start, gradient = problem(37, dtype)
    ours = optim.Lamb(start.copy(), layout=LAYOUT_37, **hyperparameters)
    tensors = torch_tensors(start, LAYOUT_37)
    theirs_settings = {key: value for key, value in hyperparameters.items() if key != "clamp"}
    theirs = pytorch_optimizer.Lamb(tensors, foreach=False, **theirs_settings)
    theirs.clamp = hyperparameters.get("clamp", 10.0)  # a class attribute there
    train_both(ours, tensors, theirs, gradient)
    assert_close(ours.params, flat(tensors), dtype)
    assert_close(ours.state["exp_avg"], np.concatenate([theirs.state[t]["exp_avg"].numpy().ravel()
                                                        for t in tensors]), dtype)


SCHEDULE_FREE_CASES = [{}, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, warmup_steps=10, r=0.5,
                                weight_lr_power=1.0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hyperparameters", SCHEDULE_FREE_CASES)
def test_schedule_free_adamw_matches_schedulefree_at_both_points(dtype, hyperparameters, float64_scalars):
    schedulefree = pytest.importorskip("schedulefree", reason="schedulefree (the oracles extra) is not installed")
    start, gradient = problem(37, dtype)
    ours = optim.AdamWScheduleFree(start.copy(), **hyperparameters)
    tensors = torch_tensors(start, [(37,)])
    theirs = schedulefree.AdamWScheduleFree(tensors, foreach=False, **hyperparameters)
    theirs.train()
    train_both(ours, tensors, theirs, gradient)
    assert_close(ours.params, flat(tensors), dtype)  # the training point y
    assert_close(ours.state["z"], theirs.state[tensors[0]]["z"].numpy(), dtype)
    theirs.eval()
    training_point = ours.params.copy()
    assert_close(ours.evaluation_params(), flat(tensors), dtype)  # the evaluation point x
    np.testing.assert_array_equal(ours.params, training_point)  # evaluating does not move the training point


# -- pytorch-optimizer's ADOPT, Adan, Prodigy and D-Adaptation Adam, over the layout's several tensors ----------

def float64_global_norm(param_groups, device=None, *, weight_adaptive=False):
    """pytorch-optimizer's squared global gradient norm, in the gradients' dtype (it rounds it to float32)."""
    return torch.stack([p.grad.norm() for group in param_groups for p in group["params"]]).square().sum().reshape(1)


PYTORCH_OPTIMIZER_CASES = [
    ("adopt", "ADOPT", {}),
    ("adopt", "ADOPT", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, eps=1e-4)),
    ("adopt", "ADOPT", dict(lr=0.01, weight_decay=0.1, weight_decouple=True)),
    ("adan", "Adan", {}),
    ("adan", "Adan", dict(lr=0.01, betas=(0.9, 0.8, 0.95), weight_decay=0.1)),  # proximal decay
    ("adan", "Adan", dict(lr=0.01, weight_decay=0.1, weight_decouple=True)),
    ("adan", "Adan", dict(lr=0.01, max_grad_norm=5.0, weight_decay=0.05)),  # clipped by the global norm
    ("prodigy", "Prodigy", {}),
    ("prodigy", "Prodigy", dict(lr=0.2, betas=(0.8, 0.99), beta3=0.95, d0=1e-4, d_coef=0.5, growth_rate=1.05,
                                weight_decay=0.1, bias_correction=True, safeguard_warmup=True, eps=1e-6)),
    ("prodigy", "Prodigy", dict(weight_decay=0.01, fixed_decay=True)),
    ("dadapt_adam", "DAdaptAdam", {}),
    ("dadapt_adam", "DAdaptAdam", dict(lr=0.5, betas=(0.8, 0.99), d0=1e-4, growth_rate=1.1, weight_decay=0.1,
                                       bias_correction=True, eps=1e-6)),
    ("dadapt_adam", "DAdaptAdam", dict(lr=0.1, weight_decay=0.1, weight_decouple=True)),
    ("dadapt_adam", "DAdaptAdam", dict(lr=0.1, weight_decay=0.01, weight_decouple=True, fixed_decay=True)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, class_name, hyperparameters", PYTORCH_OPTIMIZER_CASES,
                         ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(PYTORCH_OPTIMIZER_CASES)])
def test_matches_pytorch_optimizer_over_several_tensors(name, class_name, hyperparameters, dtype, float64_scalars,
                                                        monkeypatch):
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer", reason="pytorch-optimizer (the oracles extra) is "
                                                                        "not installed")
    from pytorch_optimizer.optimizer import adan

    monkeypatch.setattr(adan, "get_global_gradient_norm", float64_global_norm)
    start, gradient = problem(37, dtype)
    ours = optim.OPTIMIZERS[name](start.copy(), layout=LAYOUT_37, **hyperparameters)
    tensors = torch_tensors(start, LAYOUT_37)
    foreach = {} if name == "prodigy" else dict(foreach=False)  # Prodigy's CPU path is its per-tensor loop
    theirs = getattr(pytorch_optimizer, class_name)(tensors, **foreach, **hyperparameters)
    train_both(ours, tensors, theirs, gradient)
    assert_close(ours.params, flat(tensors), dtype)
    for key in ("exp_avg", "exp_avg_sq", "s", "exp_avg_diff"):
        if key in ours.state:
            theirs_state = np.concatenate([theirs.state[t][key].numpy().ravel() for t in tensors])
            if dtype == np.float64:
                assert_close(ours.state[key], theirs_state, dtype)
            else:  # float32: a moment passing near 0 keeps the rounding of its scale, not its own
                np.testing.assert_allclose(ours.state[key], theirs_state, rtol=FLOAT32_RTOL,
                                           atol=FLOAT32_RTOL * np.abs(theirs_state).max())
    if name in ("prodigy", "dadapt_adam"):  # the distance estimate, a float64 scalar on both sides
        rtol = 1e-10 if dtype == np.float64 else FLOAT32_RTOL
        assert ours.state["d"] == pytest.approx(theirs.param_groups[0]["d"], rel=rtol)
        assert ours.state["d"] > hyperparameters.get("d0", 1e-6)  # it moved: the sums took part
