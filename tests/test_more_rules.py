"""The rules beyond the lecture's, against the implementations their docstrings name as the contract.

RAdam, Rprop and ASGD meet torch.optim in test_optim's table-driven torch test (one tensor is
enough for element-wise rules). Here: the per-tensor rules over a layout of several tensors,
against torch.optim (Adafactor, Muon with AdamW on its vectors) and pytorch-optimizer (LAMB),
and Schedule-Free AdamW against the schedulefree package, its training and its evaluation point.
Float64 to 1e-10 after 200 steps; float32 within rounding.
"""

import numba
import numpy as np
import pytest

from fastgd import optim
from torch_layouts import flat, set_gradients, torch_tensors
from rule_cases import LAYOUT_37, problem

torch = pytest.importorskip("torch", reason="PyTorch (the compare extra) is not installed")

N_STEPS = 200
FLOAT32_RTOL = 1e-4  # 200 steps of float32 rounding, both sides








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


# -- pytorch-optimizer's Shampoo and SOAP, on an MLP's and a CNN's layouts -------------------------------------

def _preconditioner_layouts():
    from fastgd.networks import Conv2D, Dense, Flatten, Network, ReLU

    mlp = Network([Dense(6), ReLU(), Dense(4)], input_shape=(5,), loss="cross_entropy")
    # a conv kernel is the matrix (out, in·kh·kw), as the reference is given it here
    cnn = Network([Conv2D(3, 3), ReLU(), Flatten(), Dense(4)], input_shape=(2, 5, 5), loss="cross_entropy")
    return {"mlp": mlp.layout, "cnn": cnn.layout}


PRECONDITIONER_LAYOUTS = _preconditioner_layouts()
# Shampoo's and SOAP's parity runs: 50 steps recompute the roots and bases 16 times at a frequency of 3 (the
# reference's SVDs and QRs on the CNN's tensors took minutes of CI over 200 steps)
PRECONDITIONER_STEPS = 50

# Roots recomputed every k > 1 steps meet the gradients of the steps between in directions where L is still
# ε·I: at ε = 1e-6 they multiply them by 1e6^(1/4) and their rounding by far more, and two implementations part
# (by 1e-5 to 20 here, pytorch-optimizer against itself on another LAPACK alike). The variants take a larger ε.
SHAMPOO_CASES = [
    {},
    dict(lr=0.01, momentum=0.5, weight_decay=0.1, preconditioning_compute_steps=3, matrix_eps=1.0),
    dict(lr=0.01, momentum=0.9, weight_decay=0.1, weight_decouple=True, matrix_eps=1e-2),
    dict(weight_decay=0.01, weight_decouple=True, fixed_decay=True, matrix_eps=1.0),
]


def _matrix_layout_problem(layout, dtype):
    start, gradient = problem(int(sum(np.prod(shape) for shape in layout)), dtype)
    return start, gradient


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout_name", sorted(PRECONDITIONER_LAYOUTS))
@pytest.mark.parametrize("hyperparameters", SHAMPOO_CASES)
def test_shampoo_matches_pytorch_optimizer(hyperparameters, layout_name, dtype):
    """fastgd takes the inverse roots from ``eigh``, pytorch-optimizer from the SVD: the same matrix function, to
    1e-10 in float64. Float32 cannot resolve L's eigenvalues of ε = 1e-6 beside ‖L‖ ~ 1e5 (pytorch-optimizer's own
    float32 run on the CNN ends in an SVD of NaNs): there ε is at least 1."""
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer", reason="pytorch-optimizer (the oracles extra) is "
                                                                        "not installed")
    layout = PRECONDITIONER_LAYOUTS[layout_name]
    if dtype == np.float32:
        hyperparameters = dict(hyperparameters, matrix_eps=max(hyperparameters.get("matrix_eps", 0.0), 1.0))
    start, gradient = _matrix_layout_problem(layout, dtype)
    ours = optim.Shampoo(start.copy(), layout=layout, **hyperparameters)
    tensors = torch_tensors(start, layout)
    theirs = pytorch_optimizer.Shampoo(tensors, **hyperparameters)
    train_both(ours, tensors, theirs, gradient, n_steps=PRECONDITIONER_STEPS)
    rtol = 1e-10 if dtype == np.float64 else FLOAT32_RTOL
    np.testing.assert_allclose(ours.params, flat(tensors), rtol=rtol, atol=rtol * 1e-3 * np.abs(start).max())
    statistics = []
    for tensor in tensors:
        state = theirs.state[tensor]
        for k in range(tensor.dim()):
            statistics += [state[f"pre_cond_{k}"].numpy().ravel(), state[f"inv_pre_cond_{k}"].numpy().ravel()]
    statistics = np.concatenate(statistics)
    np.testing.assert_allclose(ours.state["aux"], statistics, rtol=rtol, atol=rtol * np.abs(statistics).max())
    if hyperparameters.get("momentum", 0) > 0:
        # the buffer is the last preconditioned step L̃ G R̃: in float32 its small entries keep the rounding of the
        # roots, which depends on the BLAS's threads on either side (2e-5 of its scale seen beside 2e-6): float32
        # compares at 1e-3 of the scale, float64 at 1e-10
        buffers = np.concatenate([theirs.state[t]["momentum_buffer"].numpy().ravel() for t in tensors])
        scale = 1e-10 if dtype == np.float64 else 1e-3
        np.testing.assert_allclose(ours.state["momentum_buffer"], buffers, rtol=rtol,
                                   atol=scale * np.abs(buffers).max())


SOAP_CASES = [
    {},
    # the CNN's dense matrix (4, 27) keeps its columns unrotated; vectors rotated; the bases refreshed every 7 steps
    # (a refresh while a statistic is still rank-deficient would orthogonalise rounding noise: the 3 × 18 kernel's
    # 18 × 18 GᵀG takes rank 3 a step, a vector's g gᵀ rank 1)
    dict(lr=0.01, betas=(0.9, 0.99), shampoo_beta=0.9, weight_decay=0.1, precondition_frequency=7,
         max_precondition_dim=20, precondition_1d=True, normalize_gradient=True, eps=1e-6),
    dict(correct_bias=False, weight_decay=0.0, betas=(0.6, 0.99)),
]


@numba.njit(cache=False)
def _lapack_eigh(matrix):
    return np.linalg.eigh(matrix)


@numba.njit(cache=False)
def _lapack_qr(matrix):
    return np.linalg.qr(matrix)


class _TorchInOneDtype:
    """The ``torch`` SOAP's module sees, with ``torch.float32`` meaning float64: its QR then runs in the parameters'
    dtype, as fastgd's does (pytorch-optimizer casts to float32 for the sake of bfloat16)."""

    def __init__(self, torch_module):
        self._torch = torch_module
        self.float32 = torch_module.float64

    def __getattr__(self, name):
        return getattr(self._torch, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout_name", sorted(PRECONDITIONER_LAYOUTS))
@pytest.mark.parametrize("hyperparameters", SOAP_CASES)
def test_soap_matches_pytorch_optimizer(hyperparameters, layout_name, dtype, monkeypatch):
    """Float64 to 1e-8, not 1e-10: the eigenbases come from ``eigh`` and QR. The first statistic of a non-square
    matrix is rank-deficient (G Gᵀ of a 3 × 18 kernel has rank 3 on 18 columns): its null space has no canonical
    basis, and MKL's and OpenBLAS's LAPACK pick different ones, which SOAP's Adam in that basis then follows. So
    the reference is given the LAPACK fastgd calls (SciPy's, through Numba), the first gradient has integer entries
    (both sides' first statistics are then exact, the same bits), and its QR runs in the parameters' dtype as
    fastgd's does; everything around them is pytorch-optimizer's."""
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer", reason="pytorch-optimizer (the oracles extra) is "
                                                                        "not installed")
    from pytorch_optimizer.optimizer import soap

    def eigh(matrix):
        values, vectors = _lapack_eigh(matrix.numpy())
        return torch.from_numpy(values), torch.from_numpy(np.ascontiguousarray(vectors))

    def qr(matrix):
        q, r = _lapack_qr(matrix.numpy())
        return torch.from_numpy(np.ascontiguousarray(q)), torch.from_numpy(np.ascontiguousarray(r))

    monkeypatch.setattr(torch.linalg, "eigh", eigh)
    monkeypatch.setattr(torch.linalg, "qr", qr)
    if dtype == np.float64:
        monkeypatch.setattr(soap, "torch", _TorchInOneDtype(torch))
    layout = PRECONDITIONER_LAYOUTS[layout_name]
    start, noisy = _matrix_layout_problem(layout, dtype)

    def gradient(theta, step):
        return np.round(noisy(theta, step)) if step == 0 else noisy(theta, step)

    ours = optim.SOAP(start.copy(), layout=layout, **hyperparameters)
    tensors = torch_tensors(start, layout)
    theirs = pytorch_optimizer.SOAP(tensors, **hyperparameters)
    train_both(ours, tensors, theirs, gradient, n_steps=PRECONDITIONER_STEPS)
    rtol = 1e-8 if dtype == np.float64 else FLOAT32_RTOL
    np.testing.assert_allclose(ours.params, flat(tensors), rtol=rtol, atol=rtol * 1e-3 * np.abs(start).max())
    for key in ("exp_avg", "exp_avg_sq"):
        theirs_state = np.concatenate([theirs.state[t][key].numpy().ravel() for t in tensors])
        np.testing.assert_allclose(ours.state[key], theirs_state, rtol=rtol, atol=rtol * np.abs(theirs_state).max())
    # the statistics and their bases (QR-refreshed: no sign left to choose), zeros where a side is not rotated;
    # then the first moment in the bases, Q_Lᵀ m Q_R, which fastgd keeps where the reference rotates m each step
    expected = []
    for tensor in tensors:
        state = theirs.state[tensor]
        moment = state["exp_avg"].numpy().reshape(tensor.shape if tensor.dim() == 2 else (-1, 1))
        for k, (side, statistic, basis) in enumerate(zip(tensor.shape, state["GG"], state["Q"])):
            expected += ([np.zeros(2 * side * side, dtype)] if len(statistic) == 0
                         else [statistic.numpy().ravel(), basis.numpy().ravel()])
            if len(statistic):
                moment = basis.numpy().T @ moment if k == 0 else moment @ basis.numpy()
        expected.append(moment.ravel())
    expected = np.concatenate(expected)
    np.testing.assert_allclose(ours.state["aux"], expected, rtol=rtol, atol=rtol * np.abs(expected).max())
