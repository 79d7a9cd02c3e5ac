r"""The built-in rules, declared on :class:`fastgd.rules.Rule`: the lecture's rules, AdamW and Lion.

Names, defaults, hyperparameter checks and results are torch.optim's (FORMULAS.md
is the contract); each docstring carries the rule's math and becomes the
optimizer class's docstring (:mod:`fastgd.optim`).
"""

from fastgd import reference
from fastgd.kernels import updates
from fastgd.rules.definition import (Betas, Derived, Flag, LearningRate, LogUniform, PerStep, Real, Rule, ScalarState,
                                     State, Uniform, WeightDecay)

__all__ = ["BUILTIN_RULES"]

# search spaces for tuning (the learning rate's is LearningRate's default)
_MOMENTUM_SPACE = Uniform(0.0, 0.99)
_EPS_SPACE = LogUniform(1e-10, 1e-4)


def _eps(default):
    return Real(default, label="epsilon value", search=_EPS_SPACE)


def _sgd_family(name, momentum, nesterov, class_name, doc):
    def check(hp):
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError(f"Nesterov momentum requires a momentum and zero dampening, got momentum="
                             f"{hp['momentum']}, dampening={hp['dampening']}")

    return Rule(
        name, class_name=class_name, doc=doc,
        element=updates.sgd_element,
        hyperparameters={
            "lr": LearningRate(1e-3),
            "momentum": Real(momentum, search=_MOMENTUM_SPACE if momentum else None),
            "dampening": Real(0.0, 0.0, 1.0, high_open=False),
            "weight_decay": WeightDecay(0.0, "coupled"),
            "nesterov": Flag(nesterov),
        },
        derived={"use_momentum": Derived("momentum", lambda momentum: momentum != 0)},
        state={"momentum_buffer": State(when="use_momentum")},
        per_step=PerStep(updates.sgd_step, "first_step", "one_minus_dampening"),
        check=check, reference=reference.sgd,
    )


SGD = _sgd_family("sgd", 0.0, False, "SGD", r"""
    Stochastic gradient descent, optionally with momentum, as torch.optim.SGD.

    .. math::
        g \leftarrow g + \lambda\theta; \quad \text{if } \mu \ne 0:\
        b \leftarrow g\ (t=1),\ b \leftarrow \mu b + (1-\tau) g\ (t>1),\
        g \leftarrow g + \mu b \text{ (Nesterov) or } b; \quad \theta \leftarrow \theta - \gamma g

    Batch GD, SGD and mini-batch SGD are this one rule: they differ in how many
    samples formed the gradient.

    >>> import numpy as np
    >>> params = np.array([1.0])
    >>> SGD(params, lr=0.25).step(2 * params)
    >>> params
    array([0.5])
    """)

MOMENTUM = _sgd_family("momentum", 0.9, False, "Momentum", r"""
    SGD with heavy-ball momentum μ = 0.9 by default (torch.optim.SGD(momentum=μ)).

    .. math::
        b \leftarrow g\ (t=1), \quad b \leftarrow \mu b + (1-\tau) g\ (t>1), \quad
        \theta \leftarrow \theta - \gamma b

    The lecture's v ← μv − γg, θ ← θ + v is the same trajectory for a constant γ.
    """)

NESTEROV = _sgd_family("nesterov", 0.9, True, "Nesterov", r"""
    Nesterov accelerated gradient (torch.optim.SGD(momentum=μ, nesterov=True)).

    .. math::
        b \leftarrow g\ (t=1), \quad b \leftarrow \mu b + g\ (t>1), \quad
        \theta \leftarrow \theta - \gamma (g + \mu b)
    """)

ADAGRAD = Rule(
    "adagrad", class_name="Adagrad",
    element=updates.adagrad_element,
    hyperparameters={
        "lr": LearningRate(1e-2),
        "lr_decay": Real(0.0),
        "weight_decay": WeightDecay(0.0, "coupled"),
        "initial_accumulator_value": Real(0.0),
        "eps": _eps(1e-10),
    },
    state={"sum": State(initial="initial_accumulator_value")},
    per_step=PerStep(updates.adagrad_step, "clr"),
    reference=reference.adagrad,
    doc=r"""
    Adagrad (torch.optim.Adagrad).

    .. math::
        \tilde\gamma = \frac{\gamma}{1 + (t-1)\eta}, \quad s \leftarrow s + g^2, \quad
        \theta \leftarrow \theta - \tilde\gamma \frac{g}{\sqrt{s} + \epsilon}

    s starts at ``initial_accumulator_value``.
    """)

RMSPROP = Rule(
    "rmsprop", class_name="RMSprop",
    element=updates.rmsprop_element,
    hyperparameters={
        "lr": LearningRate(1e-2),
        "alpha": Real(0.99, 0.0, 1.0, high_open=False, search=Uniform(0.9, 0.999)),
        "eps": _eps(1e-8),
        "weight_decay": WeightDecay(0.0, "coupled"),
        "momentum": Real(0.0),
        "centered": Flag(False),
    },
    derived={"use_momentum": Derived("momentum", lambda momentum: momentum > 0)},
    state={"square_avg": State(), "momentum_buffer": State(when="use_momentum"), "grad_avg": State(when="centered")},
    per_step=PerStep(updates.one_minus_alpha_step, "one_minus_alpha"),
    reference=reference.rmsprop,
    doc=r"""
    RMSprop (torch.optim.RMSprop), with its ``momentum`` and ``centered`` options.

    .. math::
        v \leftarrow \alpha v + (1-\alpha) g^2; \quad
        \tilde v = v - a^2,\ a \leftarrow \alpha a + (1-\alpha) g \text{ if centered, else } \tilde v = v;

        \mu > 0:\ b \leftarrow \mu b + \frac{g}{\sqrt{\tilde v}+\epsilon},\ \theta \leftarrow \theta - \gamma b;
        \quad \text{else } \theta \leftarrow \theta - \gamma \frac{g}{\sqrt{\tilde v}+\epsilon}
    """)

ADADELTA = Rule(
    "adadelta", class_name="Adadelta",
    element=updates.adadelta_element,
    hyperparameters={
        "lr": LearningRate(1.0, search=LogUniform(1e-2, 10.0)),
        "rho": Real(0.9, 0.0, 1.0, high_open=False, search=Uniform(0.8, 0.99)),
        "eps": _eps(1e-6),
        "weight_decay": WeightDecay(0.0, "coupled"),
    },
    state={"square_avg": State(), "acc_delta": State()},
    per_step=PerStep(updates.one_minus_rho_step, "one_minus_rho"),
    reference=reference.adadelta,
    doc=r"""
    Adadelta (torch.optim.Adadelta).

    .. math::
        v \leftarrow \rho v + (1-\rho) g^2, \quad
        \Delta = \frac{\sqrt{u+\epsilon}}{\sqrt{v+\epsilon}} g, \quad
        u \leftarrow \rho u + (1-\rho)\Delta^2, \quad \theta \leftarrow \theta - \gamma\Delta
    """)


def _adam_family(name, weight_decay, mode, amsgrad, class_name, reference_function, doc):
    return Rule(
        name, class_name=class_name, doc=doc,
        element=updates.adam_element,
        hyperparameters={
            "lr": LearningRate(1e-3),
            "betas": Betas((0.9, 0.999)),
            "eps": _eps(1e-8),
            "weight_decay": WeightDecay(weight_decay, mode),
            "amsgrad": Flag(amsgrad),
        },
        state={"exp_avg": State(), "exp_avg_sq": State(), "max_exp_avg_sq": State(when="amsgrad")},
        per_step=PerStep(updates.adam_step, "step_size", "bias_correction2_sqrt", "one_minus_beta1",
                         "one_minus_beta2"),
        reference=reference_function,
    )


ADAM = _adam_family("adam", 0.0, "coupled", False, "Adam", reference.adam, r"""
    Adam (torch.optim.Adam); ``amsgrad=True`` gives AMSGrad.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        \theta \leftarrow \theta - \gamma \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    AMSGrad uses w ← max(w, v) in place of v under the root. Weight decay is
    coupled (g ← g + λθ); :class:`AdamW` decouples it.
    """)

AMSGRAD = _adam_family("amsgrad", 0.0, "coupled", True, "AMSGrad", reference.adam, r"""
    AMSGrad (torch.optim.Adam(amsgrad=True)): Adam with the running maximum of v.

    .. math::
        w \leftarrow \max(w, v), \quad
        \theta \leftarrow \theta - \gamma \frac{m / (1-\beta_1^t)}{\sqrt{w / (1-\beta_2^t)} + \epsilon}
    """)

ADAMAX = Rule(
    "adamax", class_name="Adamax",
    element=updates.adamax_element,
    hyperparameters={
        "lr": LearningRate(2e-3),
        "betas": Betas((0.9, 0.999)),
        "eps": _eps(1e-8),
        "weight_decay": WeightDecay(0.0, "coupled"),
    },
    state={"exp_avg": State(), "exp_inf": State()},
    per_step=PerStep(updates.adamax_step, "clr", "one_minus_beta1"),
    reference=reference.adamax,
    doc=r"""
    Adamax (torch.optim.Adamax), Adam with the infinity norm.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad u \leftarrow \max(\beta_2 u, |g| + \epsilon), \quad
        \theta \leftarrow \theta - \frac{\gamma}{1-\beta_1^t}\frac{m}{u}
    """)

NADAM = Rule(
    "nadam", class_name="NAdam",
    element=updates.nadam_element,
    hyperparameters={
        "lr": LearningRate(2e-3),
        "betas": Betas((0.9, 0.999)),
        "eps": _eps(1e-8),
        "weight_decay": WeightDecay(0.0, "coupled"),
        "momentum_decay": Real(4e-3),
    },
    state={"exp_avg": State(), "exp_avg_sq": State()},
    scalar_state={"mu_product": ScalarState(1.0)},
    per_step=PerStep(updates.nadam_step, "mu_product", "bias_correction2", "grad_coefficient",
                     "exp_avg_coefficient", "one_minus_beta1", "one_minus_beta2"),
    reference=reference.nadam,
    doc=r"""
    NAdam (torch.optim.NAdam): Adam with Nesterov momentum and a momentum schedule.

    .. math::
        \mu_t = \beta_1(1 - \tfrac12 0.96^{t\psi}), \quad \Pi_t = \Pi_{t-1}\mu_t, \quad
        \hat v = \frac{v}{1-\beta_2^t}

        \theta \leftarrow \theta - \gamma\frac{1-\mu_t}{1-\Pi_t}\frac{g}{\sqrt{\hat v}+\epsilon}
        - \gamma\frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\frac{m}{\sqrt{\hat v}+\epsilon}

    ``state["mu_product"]`` is Π (a float64 scalar).
    """)

ADAMW = _adam_family("adamw", 1e-2, "decoupled", False, "AdamW", reference.adamw, r"""
    AdamW (torch.optim.AdamW): Adam with decoupled weight decay.

    .. math::
        \theta \leftarrow \theta (1 - \gamma\lambda), \text{ then Adam (AMSGrad if amsgrad) with } \lambda = 0
    """)

LION = Rule(
    "lion", class_name="Lion",
    element=updates.lion_element,
    hyperparameters={
        "lr": LearningRate(1e-4, search=LogUniform(1e-6, 1e-1)),
        "betas": Betas((0.9, 0.99)),
        "weight_decay": WeightDecay(0.0, "decoupled"),
    },
    state={"exp_avg": State()},
    per_step=PerStep(updates.lion_step, "one_minus_beta1", "one_minus_beta2"),
    reference=reference.lion,
    doc=r"""
    Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").

    .. math::
        c = \beta_1 m + (1-\beta_1) g, \quad
        \theta \leftarrow \theta - \gamma(\operatorname{sign}(c) + \lambda\theta), \quad
        m \leftarrow \beta_2 m + (1-\beta_2) g

    Weight decay is decoupled. Take γ 3-10x smaller than Adam's: every
    coordinate moves by γ per step.
    """)

BUILTIN_RULES = (SGD, MOMENTUM, NESTEROV, ADAGRAD, RMSPROP, ADADELTA, ADAM, AMSGRAD, ADAMAX, NADAM, ADAMW, LION)
