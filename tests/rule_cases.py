"""Per-rule test data: one table per property, every rule of OPTIMIZERS in each.

``test_optim.test_every_rule_has_every_case`` fails when a rule of
``fastgd.optim.OPTIMIZERS`` is missing from any table here, so a new rule
cannot land untested.
"""

import re
from pathlib import Path

import numpy as np

from fastgd import optim

ROOT = Path(__file__).resolve().parents[1]
SKLEARN_ADAM = ROOT / "tests" / "plugins" / "sklearn_adam.py"  # a user's rule, as a plugin file


def readme_plugin(directory):
    """The README's worked example, ``my_rules.py``, written into ``directory``; returns its path."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(# my_rules\.py.*?)```", text, re.S).group(1)
    path = Path(directory) / "my_rules.py"
    path.write_text(block)
    return path

# Non-default hyperparameters that exercise every option of each rule; the
# defaults ({}) are always tested too.
VARIANTS = {
    "sgd": [dict(lr=0.05, weight_decay=0.1)],
    "momentum": [dict(lr=0.01, momentum=0.5, dampening=0.3, weight_decay=0.05)],
    "nesterov": [dict(lr=0.01, momentum=0.8, weight_decay=0.05)],
    "adagrad": [dict(lr=0.05, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)],
    "rmsprop": [dict(lr=1e-3, momentum=0.9), dict(centered=True),
                dict(lr=1e-3, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1, eps=1e-6)],
    "adadelta": [dict(lr=0.5, rho=0.95, eps=1e-4, weight_decay=0.1)],
    "adam": [dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)],
    "amsgrad": [dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.1)],
    "adamax": [dict(lr=0.01, betas=(0.8, 0.99), eps=1e-5, weight_decay=0.1)],
    "nadam": [dict(lr=0.01, betas=(0.8, 0.99), momentum_decay=0.01, weight_decay=0.1)],
    "adamw": [dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, weight_decay=0.1, amsgrad=True)],
    "lion": [dict(lr=1e-3, betas=(0.8, 0.95), weight_decay=0.1)],
    "radam": [dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
              dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)],
    "rprop": [dict(lr=0.01, etas=(0.4, 1.5), step_sizes=(1e-4, 1.0))],
    "asgd": [dict(lr=0.01, lambd=1e-3, alpha=0.5, t0=20.0, weight_decay=0.1)],
    "schedule_free_adamw": [dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, warmup_steps=10, r=0.5,
                                 weight_lr_power=1.0)],
    "lamb": [dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, grad_averaging=False, eps=1e-5), dict(adam=True)],
    "adafactor": [dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-3), d=2.0, weight_decay=0.1)],
    "muon": [dict(lr=0.01, momentum=0.8, nesterov=False, weight_decay=0.05, adjust_lr_fn="match_rms_adamw",
                  ns_steps=3, adamw_lr=0.01, adamw_betas=(0.8, 0.99), adamw_weight_decay=0.1)],
    "adopt": [dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, eps=1e-4),
              dict(weight_decay=0.1, weight_decouple=True)],
    "adan": [dict(lr=0.01, max_grad_norm=5.0, weight_decay=0.05), dict(lr=0.01, betas=(0.9, 0.8, 0.95),
                                                                        weight_decay=0.1),
             dict(lr=0.01, weight_decay=0.1, weight_decouple=True)],
    "prodigy": [dict(lr=0.2, betas=(0.8, 0.99), beta3=0.95, d0=1e-4, d_coef=0.5, growth_rate=1.05, weight_decay=0.1,
                     bias_correction=True, safeguard_warmup=True, eps=1e-6), dict(weight_decay=0.01, fixed_decay=True)],
    "dadapt_adam": [dict(lr=0.5, betas=(0.8, 0.99), d0=1e-4, growth_rate=1.1, weight_decay=0.1, bias_correction=True,
                         eps=1e-6), dict(lr=0.1, weight_decay=0.1, weight_decouple=True, fixed_decay=True)],
    "shampoo": [dict(lr=0.01, momentum=0.5, weight_decay=0.1, preconditioning_compute_steps=3, matrix_eps=1e-4),
                dict(lr=0.01, momentum=0.9, weight_decay=0.1, weight_decouple=True),
                dict(weight_decay=0.01, weight_decouple=True, fixed_decay=True)],
    # max_precondition_dim=4 rotates the (4, 5) matrix's rows, the (5, 3) one's columns and the vector alone
    "soap": [dict(lr=0.01, betas=(0.9, 0.99), shampoo_beta=0.9, weight_decay=0.1, precondition_frequency=3,
                  max_precondition_dim=4, precondition_1d=True, normalize_gradient=True, eps=1e-6),
             # every rotated side full-rank from the first step (the (4, 5) matrix's rows, the (5, 3) one's columns;
             # an MLP 4-6-3's alike): the bases are then the same whichever LAPACK computes them
             dict(correct_bias=False, weight_decay=0.0, betas=(0.6, 0.9), max_precondition_dim=4)],
    # PSGD-Kron: its probes and balancing draws come from the seed; tests/test_kron.py meets pytorch-optimizer
    "psgd_kron": [dict(lr=0.01, momentum=0.8, weight_decay=0.1, balance_prob=0.5,
                       pre_conditioner_update_probability=0.3, precondition_lr=0.2, precondition_init_scale=2.0,
                       seed=7),
                  dict(weight_decouple=False, weight_decay=0.1, min_ndim_triangular=1, maximize=True,
                       momentum_into_precondition_update=False, memory_save_mode="one_diag")],
}

# The shapes the 37 parameters of ``problem(37)`` hold, for the rules that act per tensor (LAMB, Adafactor,
# Muon): two matrices, one of them taller than wide, and a vector. Element-wise rules ignore it.
LAYOUT_37 = [(4, 5), (5, 3), (2,)]

# The torch.optim class of each rule and the arguments it needs beside ours
# (the names are the same). Lion is not in torch.optim: it has no torch case.
TORCH_EQUIVALENTS = {
    "sgd": ("SGD", {}), "momentum": ("SGD", {}), "nesterov": ("SGD", {}), "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}), "adadelta": ("Adadelta", {}), "adam": ("Adam", {}), "amsgrad": ("Adam", {}),
    "adamax": ("Adamax", {}), "nadam": ("NAdam", {}), "adamw": ("AdamW", {}), "lion": None, "radam": ("RAdam", {}),
    "rprop": ("Rprop", {}), "asgd": ("ASGD", {}),
    # tests/test_more_rules.py: per-tensor oracles and the packages named by their docstrings
    "schedule_free_adamw": None, "lamb": None, "adafactor": None, "muon": None,
    "adopt": None, "adan": None, "prodigy": None, "dadapt_adam": None, "shampoo": None, "soap": None,
    "psgd_kron": None,
}

# Rosenbrock from (-1.5, 2): hyperparameters, steps, and how close to (1, 1)
# the end point must be in both dtypes. Tuned once by a grid over lr. Rules whose
# steps keep their size (trust ratios, orthogonalised or relative updates) get there
# with the learning rate decaying linearly to zero (DECAYING).
ROSENBROCK = {
    "sgd": (dict(lr=1e-3), 20000, 1e-3),
    "momentum": (dict(lr=1e-3), 3000, 1e-3),
    "nesterov": (dict(lr=1e-3), 3000, 1e-3),
    "adagrad": (dict(lr=1.0), 15000, 1e-3),
    "rmsprop": (dict(lr=1e-3), 12000, 1e-3),
    # Adadelta crawls along the valley and settles into a small orbit around the minimum
    "adadelta": (dict(lr=0.3, eps=1e-8), 15000, 2e-2),
    "adam": (dict(lr=1e-2), 6000, 1e-3),
    "amsgrad": (dict(lr=0.1), 3000, 1e-3),
    "adamax": (dict(lr=0.03), 6000, 1e-3),
    "nadam": (dict(lr=3e-3), 10000, 1e-3),
    "adamw": (dict(lr=1e-2, weight_decay=0.0), 6000, 1e-3),
    "lion": (dict(lr=3e-4), 15000, 1e-3),
    "radam": (dict(lr=3e-3), 12000, 1e-3),
    # Rprop's step sizes settle into an orbit of about 1e-3
    "rprop": (dict(lr=1e-3), 5000, 2e-3),
    "asgd": (dict(lr=1e-3), 20000, 2e-3),
    # checked, as every rule, at its evaluation point (here x, not the training point y)
    "schedule_free_adamw": (dict(lr=1e-2), 16000, 1e-3),
    "lamb": (dict(lr=1e-2), 15000, 1e-3),
    "adafactor": (dict(lr=1e-2), 15000, 1e-3),
    "muon": (dict(lr=1e-3, adamw_lr=1e-2), 15000, 1e-3),
    "adopt": (dict(lr=0.3), 6000, 1e-3),
    "adan": (dict(lr=1e-3), 6000, 1e-3),
    # the distance estimates make the step large: they get there with the multiplier decaying to zero
    "prodigy": (dict(lr=1.0), 6000, 1e-3),
    "dadapt_adam": (dict(lr=1.0), 6000, 1e-3),
    # Shampoo's sums of outer products shrink its steps as AdaGrad's do; ε = 1e-2 keeps the float32 roots finite
    "shampoo": (dict(lr=1.0, matrix_eps=1e-2), 15000, 1e-3),
    "soap": (dict(lr=3e-3), 6000, 1e-3),
    "psgd_kron": (dict(lr=1e-2), 6000, 1e-3),
}
DECAYING = {"lamb", "adafactor", "muon", "prodigy", "dadapt_adam", "psgd_kron"}

# The layout of Rosenbrock's two parameters: one 1 × 2 matrix, so that Muon orthogonalises it.
ROSENBROCK_LAYOUT = [(1, 2)]

# After some steps with non-zero gradients, does a zero gradient (and no
# weight decay) still move the parameters? Rules that carry a velocity do.
MOVES_ON_ZERO_GRADIENT = {
    "sgd": False, "momentum": True, "nesterov": True, "adagrad": False, "rmsprop": False, "adadelta": False,
    "adam": True, "amsgrad": True, "adamax": True, "nadam": True, "adamw": True, "lion": True, "radam": True,
    "rprop": False, "asgd": False, "schedule_free_adamw": True, "lamb": True, "adafactor": False, "muon": True,
    "adopt": True, "adan": True, "prodigy": True, "dadapt_adam": True, "shampoo": False, "soap": True,
    "psgd_kron": True,
}

# Settings that switch off every pull other than the gradient's (weight decay, ASGD's λ decay).
NEUTRAL = {name: dict(weight_decay=0.0) for name in MOVES_ON_ZERO_GRADIENT}
NEUTRAL.update(rprop={}, asgd=dict(weight_decay=0.0, lambd=0.0),
               muon=dict(weight_decay=0.0, adamw_weight_decay=0.0))

# --- rules with a closure (SAM): a second gradient per step, at another point ---------------------------------
VARIANTS.update({
    "sam_sgd": [dict(lr=0.05, momentum=0.9, weight_decay=0.1, rho=0.1), dict(lr=0.05, rho=0.5, adaptive=True)],
    "sam_adam": [dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, rho=0.1, adaptive=True,
                      perturb_eps=1e-8)],
})
# tests/test_closures.py: against pytorch_optimizer.SAM wrapping torch.optim's SGD and Adam
TORCH_EQUIVALENTS.update(sam_sgd=None, sam_adam=None)
# SAM's normalised ascent keeps θ' a distance ρ from θ however small g is: it settles within about ρ of (1, 1)
ROSENBROCK.update(sam_sgd=(dict(lr=1e-3, rho=1e-4), 20000, 1e-3), sam_adam=(dict(lr=1e-2, rho=1e-4), 6000, 1e-3))
MOVES_ON_ZERO_GRADIENT.update(sam_sgd=False, sam_adam=True)
NEUTRAL.update(sam_sgd=dict(weight_decay=0.0), sam_adam=dict(weight_decay=0.0))


# --- rules that take the loss (a Polyak step) ------------------------------------------------------------------
# with take_step's loss, ‖g‖²/100, AliG's Polyak step is 0.01: the first variant takes it, the second its cap
VARIANTS.update(alig=[dict(lr=0.05, momentum=0.9), dict(lr=0.005, momentum=0.5, adjusted_momentum=True)])
TORCH_EQUIVALENTS.update(alig=None)  # tests/test_closures.py: against pytorch_optimizer.AliG
# capped by lr = 1e-3 below that 0.01: SGD's settings
ROSENBROCK.update(alig=(dict(lr=1e-3), 20000, 1e-3))
MOVES_ON_ZERO_GRADIENT.update(alig=False)
NEUTRAL.update(alig={})


def stand_in_loss(grad):
    """The loss ``take_step`` gives a rule that takes one with the gradient ``grad``: ‖g‖²/100, a function of the test
    problem's gradient that both fastgd and the NumPy reference receive (the problems have no loss of their own), so
    that a Polyak step loss/‖g‖² is about 0.01, stable on their curvatures up to 10."""
    return float(0.01 * np.sum(np.square(np.asarray(grad, dtype=np.float64))))


def take_step(optimizer, gradient_at):
    """One step of ``optimizer`` (fastgd's or the NumPy reference) with ``gradient_at(params)``, the gradient at its
    params as they are: a rule with a closure (SAM) gets a closure that evaluates it again where it asks, a rule that
    takes the loss :func:`stand_in_loss`."""
    def closure():
        grad = gradient_at(optimizer.params)
        return stand_in_loss(grad), grad

    if isinstance(optimizer, optim.Optimizer):
        if optimizer.rule.closure is not None:
            optimizer.step(closure)
        else:
            loss, grad = closure()
            optimizer.step(grad, loss=loss if optimizer.rule.uses_loss else None)
    else:
        loss, grad = closure()
        optimizer.step(grad, closure=closure if optimizer.takes_closure else None, loss=loss)


def reduces(name, hyperparameters):
    """Whether the rule ``name`` with ``hyperparameters`` (the others at their defaults) sums over every parameter
    before its element pass (a :class:`fastgd.rules.Reduction` its flags switch on): such steps accumulate in
    float64 on purpose."""
    rule = optim.OPTIMIZERS[name].rule
    return rule.reduces(rule.flags(rule.check(dict(rule.defaults, **hyperparameters))))


def cpu_only(name, hyperparameters):
    """Whether the rule ``name`` with ``hyperparameters`` has no CUDA form: its per-tensor function calls LAPACK
    (``PerTensor(..., cuda=False)``), it has a closure (SAM) or it takes the loss (AliG). The device refuses such
    steps. ``hyperparameters``: for rules whose CUDA form may one day depend on their flags."""
    rule = optim.OPTIMIZERS[name].rule
    return ((rule.per_tensor is not None and not rule.per_tensor.cuda) or rule.closure is not None
            or rule.uses_loss)


# Hyperparameters each rule must refuse, with a fragment of the message.
INVALID = {
    "sgd": [(dict(lr=-0.1), "Invalid learning rate: -0.1"), (dict(weight_decay=-1.0), "Invalid weight_decay"),
            (dict(momentum=-0.5), "Invalid momentum value: -0.5"), (dict(nesterov="yes"), "nesterov must be")],
    "momentum": [(dict(dampening=1.5), "Invalid dampening value: 1.5"), (dict(lr=float("nan")), "learning rate")],
    "nesterov": [(dict(momentum=0.0), "Nesterov momentum requires"), (dict(dampening=0.1), "Nesterov momentum")],
    "adagrad": [(dict(lr_decay=-1.0), "Invalid lr_decay value: -1.0"), (dict(eps=-1e-3), "Invalid epsilon value"),
                (dict(initial_accumulator_value=-1.0), "initial_accumulator_value")],
    "rmsprop": [(dict(alpha=1.5), "Invalid alpha value: 1.5"), (dict(momentum=-1.0), "Invalid momentum value"),
                (dict(eps=-1.0), "Invalid epsilon value")],
    "adadelta": [(dict(rho=1.01), "Invalid rho value: 1.01"), (dict(lr=-1.0), "Invalid learning rate")],
    "adam": [(dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
             (dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
             (dict(betas=0.9), "Invalid betas"), (dict(eps=-1e-8), "Invalid epsilon value: -1e-08")],
    "amsgrad": [(dict(lr="fast"), "learning rate must be a real number")],
    "adamax": [(dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0")],
    "nadam": [(dict(momentum_decay=-0.1), "Invalid momentum_decay value: -0.1")],
    "adamw": [(dict(weight_decay=-0.01), "Invalid weight_decay value: -0.01")],
    "lion": [(dict(betas=(-0.1, 0.99)), "Invalid beta parameter at index 0: -0.1")],
    "radam": [(dict(eps=-1.0), "Invalid epsilon value: -1.0"), (dict(betas=(0.9, 1.0)), "Invalid beta parameter at "
              "index 1: 1.0"), (dict(decoupled_weight_decay="yes"), "decoupled_weight_decay must be True or False")],
    "rprop": [(dict(etas=(1.5, 2.0)), "Invalid eta values: 1.5, 2.0"), (dict(etas=(0.5, 0.9)), "Invalid eta values: "
              "0.5, 0.9"), (dict(lr=-1.0), "Invalid learning rate: -1.0")],
    "asgd": [(dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"), (dict(lr=-0.1), "Invalid learning rate")],
    "schedule_free_adamw": [(dict(lr=-0.1), "Invalid learning rate"), (dict(warmup_steps=-1), "Invalid warmup_steps "
                            "value: -1"), (dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5")],
    "lamb": [(dict(lr=-1.0), "learning rate must be positive. (-1.0 > 0)"), (dict(betas=(1.0, 0.999)), "beta1 must be "
             "in the range [0.0, 1.0)"), (dict(eps=-1.0), "eps must be non-negative"), (dict(weight_decay=-1.0),
                                                                                        "weight_decay must be "
                                                                                        "non-negative")],
    "adafactor": [(dict(lr=-1.0), "Learning rate should be >= 0 but is: -1.0"), (dict(beta2_decay=0.5), "beta2_decay "
                  "should be <= 0 but is: 0.5"), (dict(eps=(-1.0, 1e-3)), "epsilon1 should be >= 0 but is: -1.0"),
                  (dict(eps=(None, -1.0)), "epsilon2 should be >= 0 but is: -1.0"), (dict(d=0.5), "Clipping threshold "
                  "d should be >= 1 but is: 0.5"),
                 (dict(weight_decay=-1.0), "weight_decay should be >= 0 but is: -1.0")],
    "muon": [(dict(lr=-1.0), "Learning rate should be >= 0 but is: -1.0"), (dict(momentum=-0.5), "momentum should be "
             ">= 0 but is: -0.5"), (dict(weight_decay=-1.0), "weight decay should be >= 0 but is: -1.0"),
             (dict(ns_steps=100), "Number of steps must be less than 100"), (dict(adjust_lr_fn="other"), "Adjust "
             "learning rate function other is not supported")],
    "adopt": [(dict(lr=-1.0), "learning rate must be positive. (-1.0 > 0)"), (dict(betas=(0.9, 1.0)), "beta2 must "
              "be in the range [0.0, 1.0)"), (dict(eps=-1.0), "eps must be non-negative")],
    "adan": [(dict(betas=(0.9, 0.9, 1.5)), "beta3 must be in the range"), (dict(betas=(0.9, 0.9)), "Invalid betas"),
             (dict(max_grad_norm=-1.0), "max_grad_norm must be non-negative"),
             (dict(weight_decay=-0.1), "weight_decay must be non-negative")],
    "prodigy": [(dict(beta3=1.5), "beta3 must be in the range"), (dict(d0=0.0), "Invalid d0 value: 0.0"),
                (dict(growth_rate=0.5), "Invalid growth_rate value: 0.5"), (dict(eps=None), "eps value must be a real "
                "number")],
    "dadapt_adam": [(dict(lr=-1.0), "learning rate must be positive"), (dict(d0=-1.0), "Invalid d0 value: -1.0"),
                    (dict(growth_rate=float("nan")), "Invalid growth_rate value: nan")],
    "shampoo": [(dict(preconditioning_compute_steps=0), "preconditioning_compute_steps must be positive. (0 > 0)"),
                (dict(momentum=1.0), "momentum must be in the range [0.0, 1.0)"),
                (dict(matrix_eps=-1.0), "matrix_eps must be non-negative"),
                (dict(lr=-1.0), "learning rate must be positive. (-1.0 > 0)")],
    "soap": [(dict(precondition_frequency=0), "precondition_frequency must be positive"),
             (dict(max_precondition_dim=0), "max_precondition_dim must be positive"),
             (dict(max_precondition_dim=20000), "max_precondition_dim must be at most 10000"),
             (dict(betas=(0.9, 1.0)), "beta2 must be in the range [0.0, 1.0)"),
             (dict(shampoo_beta=-0.1), "shampoo_beta must be non-negative"), (dict(eps=-1.0), "eps must be "
                                                                                         "non-negative")],
    "psgd_kron": [(dict(pre_conditioner_update_probability=0.0), "psgd_kron: pre_conditioner_update_probability "
                   "must be in (0, 1]"), (dict(max_size_triangular=0), "psgd_kron: max_size_triangular must be"),
                  (dict(momentum=1.0), "momentum must be in the range [0.0, 1.0)"),
                  (dict(lr=-1.0), "learning rate must be positive")],
}

INVALID.update(sam_sgd=[(dict(rho=-0.1), "rho must be non-negative"), (dict(adaptive="yes"), "adaptive must be")],
               sam_adam=[(dict(perturb_eps=-1.0), "perturb_eps must be non-negative")],
               alig=[(dict(lr=-1.0), "learning rate must be positive"),
                     (dict(momentum=1.5), "momentum must be in the range [0.0, 1.0]")])


def problem(size, dtype, seed=0):
    """A start point and a gradient function ``gradient(theta, step)``.

    g = d ⊙ (θ − c) + 0.1 sin θ + ξₜ, d in [0.1, 10], c in [2, 4]: a badly
    scaled bowl with a wiggle, so every option of every rule changes the
    trajectory, and the iterates stay away from zero. ξₜ is fixed noise, one
    draw per step, as from mini-batches: it keeps the gradient's variance well
    above rounding, which centered RMSprop divides by.
    """
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 10.0, size).astype(dtype)
    centre = rng.uniform(2.0, 4.0, size).astype(dtype)
    start = rng.uniform(1.0, 5.0, size).astype(dtype)
    noise = rng.normal(0.0, 0.5, (64, size)).astype(dtype)

    def gradient(theta, step):
        return (scale * (theta - centre) + dtype(0.1) * np.sin(theta) + noise[step % 64]).astype(dtype)

    return start, gradient


def rosenbrock_gradient(theta, step=0):
    x, y = theta
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)], dtype=theta.dtype)


def run(optimizer, gradient, n_steps):
    """``n_steps`` steps of ``optimizer`` (fastgd's or the NumPy reference) on ``gradient(params, step)``."""
    for _ in range(n_steps):
        step = optimizer.state["step"] if isinstance(optimizer, optim.Optimizer) else optimizer.t
        take_step(optimizer, lambda params, step=step: gradient(params, step))


def cases():
    """(rule name, hyperparameters) for the defaults and every variant."""
    return [(name, {}) for name in VARIANTS] + [(name, v) for name, vs in VARIANTS.items() for v in vs]


def case_id(case):
    name, hyperparameters = case
    return name + "".join(f"-{k}={v}" for k, v in hyperparameters.items())
