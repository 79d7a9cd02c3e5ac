r"""The built-in rules, declared on :class:`fastgd.rules.Rule`: the lecture's, AdamW, Lion, pytorch-optimizer's.

Names, defaults, hyperparameter checks and results are torch.optim's (FORMULAS.md
is the contract); each docstring carries the rule's math and becomes the
optimizer class's docstring (:mod:`fastgd.optim`).
"""

from fastgd import reference
from fastgd.kernels import kron, preconditioners, updates
from fastgd.rules.definition import (Betas, Choice, Derived, EvaluationPoint, Flag, Integer, LearningRate, LogUniform,
                                     OneMinusLogUniform, PerStep, PerTensor, Real, Reals, Reduction, Rule, ScalarState,
                                     State, Uniform, WeightDecay)
from fastgd.rules.definition import Closure

__all__ = ["BUILTIN_RULES"]

# search spaces for tuning (the learning rate's is LearningRate's default); momenta and betas on the 1 - β log
# scale of Choi et al. (2019): β1 in [0.5, 0.98], β2 in [0.9, 0.9999], momentum in [0.5, 0.99]
_MOMENTUM_SPACE = OneMinusLogUniform(1e-2, 0.5)
_BETAS_SPACE = (OneMinusLogUniform(2e-2, 0.5), OneMinusLogUniform(1e-4, 0.1))
_EPS_SPACE = LogUniform(1e-10, 1e-4)
_DECOUPLED_DECAY_SPACE = LogUniform(1e-4, 0.3)


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
            "betas": Betas((0.9, 0.999), search=_BETAS_SPACE),
            "eps": _eps(1e-8),
            "weight_decay": WeightDecay(weight_decay, mode,
                                        search=_DECOUPLED_DECAY_SPACE if mode == "decoupled" else None),
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
        "betas": Betas((0.9, 0.999), search=_BETAS_SPACE),
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
        "betas": Betas((0.9, 0.999), search=_BETAS_SPACE),
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
        "betas": Betas((0.9, 0.99), search=_BETAS_SPACE),
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

RADAM = Rule(
    "radam", class_name="RAdam",
    element=updates.radam_element,
    hyperparameters={
        "lr": LearningRate(1e-3),
        "betas": Betas((0.9, 0.999), search=_BETAS_SPACE),
        "eps": _eps(1e-8),
        "weight_decay": WeightDecay(0.0, "coupled", decoupled_when="decoupled_weight_decay"),
        "decoupled_weight_decay": Flag(False),
    },
    state={"exp_avg": State(), "exp_avg_sq": State()},
    per_step=PerStep(updates.radam_step, "bias_correction1", "sqrt_bias_correction2", "rectification", "rectify",
                     "one_minus_beta1", "one_minus_beta2"),
    reference=reference.radam,
    doc=r"""
    RAdam (torch.optim.RAdam; Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond").

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        \rho_\infty = \frac{2}{1-\beta_2} - 1, \quad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t}

        \rho_t > 5:\ \theta \leftarrow \theta - \gamma \frac{m}{1-\beta_1^t}
        \frac{\sqrt{1-\beta_2^t}}{\sqrt{v}+\epsilon}
        \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}};
        \quad \text{else } \theta \leftarrow \theta - \gamma \frac{m}{1-\beta_1^t}

    Weight decay is coupled, or decoupled (θ ← θ(1 − γλ)) with ``decoupled_weight_decay=True``.
    """)


def _rprop_check(hp):
    etaminus, etaplus = hp["etas"]
    if not 0.0 < etaminus < 1.0 < etaplus:
        raise ValueError(f"Invalid eta values: {etaminus}, {etaplus}")


RPROP = Rule(
    "rprop", class_name="Rprop",
    element=updates.rprop_element,
    hyperparameters={
        "lr": LearningRate(1e-2),
        "etas": Reals((0.5, 1.2), ("etaminus", "etaplus"), None, None, label="eta value"),
        "step_sizes": Reals((1e-6, 50.0), ("step_size_min", "step_size_max"), None, None, label="step size"),
    },
    state={"prev": State(), "step_size": State(initial="lr")},
    per_step=PerStep(updates.rprop_step, "zero", "one"),
    check=_rprop_check, reference=reference.rprop,
    doc=r"""
    Rprop (torch.optim.Rprop; Riedmiller & Braun 1993, "A Direct Adaptive Method for Faster Backpropagation
    Learning: The RPROP Algorithm").

    .. math::
        \eta = \eta_+ \text{ if } g\, g_{t-1} > 0,\ \eta_- \text{ if } < 0,\ 1 \text{ if } = 0; \quad
        s \leftarrow \operatorname{clip}(\eta s, s_{\min}, s_{\max})

        g \leftarrow 0 \text{ where } g\, g_{t-1} < 0; \quad
        \theta \leftarrow \theta - s \operatorname{sign}(g), \quad g_{t-1} \leftarrow g

    The step sizes s start at γ (``lr``): a schedule does not change them.
    """)

ASGD = Rule(
    "asgd", class_name="ASGD",
    element=updates.asgd_element,
    hyperparameters={
        "lr": LearningRate(1e-2),
        "lambd": Real(1e-4, None),
        "alpha": Real(0.75, None),
        "t0": Real(1e6, None),
        "weight_decay": WeightDecay(0.0, "coupled"),
    },
    state={"ax": State()},
    per_step=PerStep(updates.asgd_step, "eta", "decay", "mu", "averaging"),
    evaluation=EvaluationPoint(updates.asgd_evaluation),
    reference=reference.asgd,
    doc=r"""
    Averaged SGD (torch.optim.ASGD; Polyak & Juditsky 1992).

    .. math::
        \theta \leftarrow \theta(1 - \lambda\eta_t) - \eta_t g, \quad
        \bar\theta \leftarrow \bar\theta + \mu_t(\theta - \bar\theta) \ (\bar\theta \leftarrow \theta
        \text{ while } \mu_t = 1)

        \eta_t = \frac{\gamma}{(1 + \lambda\gamma (t-1))^\alpha}, \quad \mu_t = \frac{1}{\max(1, t - 1 - t_0)}

    The averaged parameters θ̄ (``state["ax"]``) are the evaluation point: predictions and reported losses use
    them. Weight decay is coupled.
    """)

SCHEDULE_FREE_ADAMW = Rule(
    "schedule_free_adamw", class_name="AdamWScheduleFree",
    element=updates.schedule_free_element,
    hyperparameters={
        "lr": LearningRate(2.5e-3),
        "betas": Betas((0.9, 0.999), search=_BETAS_SPACE),
        "eps": _eps(1e-8),
        "weight_decay": Real(0.0, label="weight_decay value"),
        "warmup_steps": Integer(0),
        "r": Real(0.0),
        "weight_lr_power": Real(2.0),
    },
    state={"z": State(initial=lambda params, hyperparameters: params.copy()), "exp_avg_sq": State()},
    scalar_state={"lr_max": ScalarState(-1.0), "weight_sum": ScalarState(0.0)},
    per_step=PerStep(updates.schedule_free_step, "lr_max", "weight_sum", "ckp1", "adaptive_y_lr", "scheduled_lr",
                     "bias_correction2", "one_minus_beta2"),
    evaluation=EvaluationPoint(updates.schedule_free_evaluation,
                               PerStep(updates.schedule_free_evaluation_weight, "evaluation_weight")),
    reference=reference.schedule_free_adamw,
    doc=r"""
    Schedule-Free AdamW (schedulefree's ``AdamWScheduleFree``; Defazio et al. 2024, "The Road Less Scheduled").

    .. math::
        v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        \hat g = \frac{g}{\sqrt{v / (1-\beta_2^t)} + \epsilon} + \lambda y

        \gamma_t = \gamma \min(1, t / \text{warmup}), \quad w_t = t^r \max_{s \le t}\gamma_s^{p}, \quad
        c_{t+1} = w_t / \textstyle\sum_{s \le t} w_s

        y \leftarrow y + c_{t+1}(z - y) + \gamma_t(\beta_1(1 - c_{t+1}) - 1)\hat g, \quad
        z \leftarrow z - \gamma_t \hat g

    The parameters are the training point y (the gradient is taken there); z starts as θ. The evaluation point
    x = y + (1 − 1/β1)(z − y) is what predictions and reported losses use (schedulefree's ``eval()``). No
    schedule is needed: set ``warmup_steps``.
    """)

LAMB = Rule(
    "lamb", class_name="Lamb",
    per_tensor=PerTensor(updates.lamb_tensor),
    hyperparameters={
        "lr": LearningRate(1e-3, message="learning rate must be positive. ({value} > 0)"),
        "betas": Reals((0.9, 0.999), messages=("beta1 must be in the range [0.0, 1.0)",
                                               "beta2 must be in the range [0.0, 1.0)"),
                       search=_BETAS_SPACE),
        "weight_decay": WeightDecay(0.0, "decoupled", message="weight_decay must be non-negative"),
        "grad_averaging": Flag(True),
        "adam": Flag(False),
        "eps": Real(1e-6, message="eps must be non-negative", search=_EPS_SPACE),
        "clamp": Real(10.0, low_open=True),
    },
    state={"exp_avg": State(), "exp_avg_sq": State()},
    per_step=PerStep(updates.lamb_step, "lamb_step_size", "beta3", "one_minus_beta2"),
    reference=reference.lamb,
    doc=r"""
    LAMB (pytorch-optimizer's ``Lamb``; You et al. 2020, "Large Batch Optimization for Deep Learning: Training
    BERT in 76 Minutes"), version 3 of the paper: the second moment without bias correction.

    .. math::
        m \leftarrow \beta_1 m + \beta_3 g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        u = \frac{m}{\sqrt{v} + \epsilon}, \quad \theta \leftarrow \theta(1 - \gamma\lambda)

        \theta \leftarrow \theta - \frac{\gamma}{1 - \beta_1^t}\, r\, u, \quad
        r = \frac{\min(\lVert\theta\rVert, c)}{\lVert u\rVert + \epsilon} \text{ per tensor}
        \ (1 \text{ if either norm is } 0, \text{ or with } \texttt{adam=True})

    β3 = 1 − β1 with ``grad_averaging``, else 1; c = ``clamp``. The norms are taken per weight matrix and bias
    vector: give the optimizer the layout (``layout=net.layout``).
    """)

ADAFACTOR = Rule(
    "adafactor", class_name="Adafactor",
    per_tensor=PerTensor(updates.adafactor_tensor, aux_size=updates.adafactor_aux_size),
    hyperparameters={
        "lr": LearningRate(1e-2, message="Learning rate should be >= 0 but is: {value}"),
        "beta2_decay": Real(-0.8, None, 0.0, high_open=False, message="beta2_decay should be <= 0 but is: {value}"),
        "eps": Reals((None, 1e-3), ("eps1", "eps2"), 0.0, None, optional=("eps1",),
                     messages=("epsilon1 should be >= 0 but is: {value}", "epsilon2 should be >= 0 but is: {value}")),
        "d": Real(1.0, 1.0, message="Clipping threshold d should be >= 1 but is: {value}"),
        "weight_decay": Real(0.0, message="weight_decay should be >= 0 but is: {value}"),
    },
    per_step=PerStep(updates.adafactor_step, "one_minus_beta2_t", "rho_t", "epsilon1", "adafactor_decay"),
    reference=reference.adafactor,
    doc=r"""
    Adafactor (torch.optim.Adafactor; Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear
    Memory Cost").

    .. math::
        \hat\beta_{2t} = 1 - t^{c}, \quad \rho_t = \min(\gamma, 1/\sqrt t), \quad
        \alpha_t = \max(\epsilon_2, \operatorname{RMS}(\theta))\rho_t, \quad \theta \leftarrow \theta(1-\gamma\lambda)

        R \leftarrow \hat\beta_{2t} R + (1-\hat\beta_{2t})\,\overline{g^2}_{\text{rows}}, \quad
        C \leftarrow \hat\beta_{2t} C + (1-\hat\beta_{2t})\,\overline{g^2}_{\text{columns}}, \quad
        \hat V = \frac{R C^\top}{\max(\overline R, \epsilon_1)}

        U = \frac{g}{\sqrt{\max(\hat V, \epsilon_1^2)}}, \quad
        \theta \leftarrow \theta - \frac{\alpha_t}{\max(1, \operatorname{RMS}(U)/d)} U

    c = ``beta2_decay``; a vector keeps its full second moment instead of R and C. ε₁ None is the dtype's
    machine ε. The factored moments (``state["aux"]``) follow the layout: give the optimizer
    ``layout=net.layout``.
    """)

MUON = Rule(
    "muon", class_name="Muon",
    element=updates.muon_vector_element,
    per_tensor=PerTensor(updates.muon_tensor, where="matrices", aux_size=updates.muon_aux_size, aux_is_state=False),
    hyperparameters={
        "lr": LearningRate(1e-3, message="Learning rate should be >= 0 but is: {value}"),
        "weight_decay": Real(0.1, message="weight decay should be >= 0 but is: {value}"),
        "momentum": Real(0.95, message="momentum should be >= 0 but is: {value}", search=Uniform(0.8, 0.99)),
        "nesterov": Flag(True),
        "ns_coefficients": Reals((3.4445, -4.775, 2.0315), ("ns_a", "ns_b", "ns_c"), None, None,
                                 label="ns_coefficients value"),
        "eps": Real(1e-7),
        "ns_steps": Integer(5, 0, 99, message="Number of steps must be less than 100 for computational efficiency"),
        "adjust_lr_fn": Choice("original", ("original", "match_rms_adamw"), aliases={None: "original"},
                               message="Adjust learning rate function {value} is not supported"),
        "adamw_lr": LearningRate(1e-3),
        "adamw_betas": Betas((0.9, 0.999), ("adamw_beta1", "adamw_beta2")),
        "adamw_eps": _eps(1e-8),
        "adamw_weight_decay": Real(1e-2, label="adamw_weight_decay value"),
    },
    state={"momentum_buffer": State(), "exp_avg": State(), "exp_avg_sq": State()},
    per_step=PerStep(updates.muon_step, "muon_decay", "one_minus_momentum", "adamw_step_size",
                     "adamw_bias_correction2_sqrt", "adamw_one_minus_beta1", "adamw_one_minus_beta2", "adamw_decay"),
    reference=reference.muon,
    doc=r"""
    Muon (torch.optim.Muon; Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"), with
    AdamW on the tensors that are not matrices, as its reference usage pairs them.

    .. math::
        B \leftarrow \mu B + (1-\mu) G, \quad U = G + \mu(B - G) \text{ (Nesterov) or } B, \quad
        \theta \leftarrow \theta(1 - \gamma\lambda) - \gamma\, s\, \operatorname{NS}_5(U)

        \operatorname{NS}: X \leftarrow U / \max(\lVert U\rVert_F, \epsilon), \text{ then }
        X \leftarrow aX + (bA + cA^2)X,\ A = XX^\top, \text{ five times}

    for every weight matrix (transposed when taller than wide), s = √max(1, rows/columns) (``"original"``) or
    0.2√max(rows, columns) (``"match_rms_adamw"``). The bias vectors take AdamW with ``adamw_lr``,
    ``adamw_betas``, ``adamw_eps`` and ``adamw_weight_decay``; a schedule scales both learning rates. torch
    runs Newton–Schulz in bfloat16; fastgd in the parameters' dtype. Give the optimizer the layout
    (``layout=net.layout``): without one the whole vector is one vector, all AdamW.
    """)

# pytorch-optimizer's messages (BaseOptimizer.validate_*)
_PO_LR = "learning rate must be positive. ({value} > 0)"
_PO_BETAS = ("beta1 must be in the range [0.0, 1.0)", "beta2 must be in the range [0.0, 1.0)",
             "beta3 must be in the range [0.0, 1.0)")
# D-Adaptation and Prodigy run at lr = 1 and adapt the step: a multiplier near 1 is what is tuned
_MULTIPLIER_SPACE = LogUniform(0.1, 10.0)


def _po_real(default, name, **kwargs):
    return Real(default, message=f"{name} must be non-negative", **kwargs)


ADOPT = Rule(
    "adopt", class_name="ADOPT",
    element=updates.adopt_element,
    hyperparameters={
        "lr": LearningRate(1e-3, message=_PO_LR),
        "betas": Reals((0.9, 0.9999), messages=_PO_BETAS[:2], search=_BETAS_SPACE),
        "weight_decay": WeightDecay(0.0, "coupled", decoupled_when="weight_decouple",
                                    message="weight_decay must be non-negative"),
        "weight_decouple": Flag(False),
        "eps": _po_real(1e-6, "eps", search=_EPS_SPACE),
    },
    state={"exp_avg": State(), "exp_avg_sq": State()},
    per_step=PerStep(updates.adopt_step, "first_step", "clip", "one_minus_beta1", "one_minus_beta2"),
    reference=reference.adopt,
    doc=r"""
    ADOPT (pytorch-optimizer's ``ADOPT``; Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any β2
    with the Optimal Rate"): the gradient is normalised by the second moment of the steps *before* it, clipped,
    then averaged.

    .. math::
        t = 1:\ v \leftarrow g^2 \text{ (no step)}; \quad t > 1:\
        \hat g = \operatorname{clip}\Big(\frac{g}{\max(\sqrt v, \epsilon)}, \pm t^{1/4}\Big), \quad
        m \leftarrow m + (1-\beta_1)(\hat g - m),

        \theta \leftarrow \theta - \gamma m, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2

    Weight decay is coupled, or decoupled (θ ← θ(1 − γλ)) with ``weight_decouple=True``. The clip is
    pytorch-optimizer's default ``clip_lambda`` (t^¼).
    """)

ADAN = Rule(
    "adan", class_name="Adan",
    element=updates.adan_element,
    hyperparameters={
        "lr": LearningRate(1e-3, message=_PO_LR),
        "betas": Reals((0.98, 0.92, 0.99), ("beta1", "beta2", "beta3"), messages=_PO_BETAS,
                       search=(OneMinusLogUniform(5e-3, 0.2), OneMinusLogUniform(2e-2, 0.5),
                               OneMinusLogUniform(1e-3, 0.1))),
        "weight_decay": WeightDecay(0.0, "proximal", decoupled_when="weight_decouple",
                                    message="weight_decay must be non-negative"),
        "weight_decouple": Flag(False),
        "max_grad_norm": _po_real(0.0, "max_grad_norm"),
        "eps": _po_real(1e-8, "eps", search=_EPS_SPACE),
    },
    derived={"clip_global_norm": Derived("max_grad_norm", lambda norm: norm > 0)},
    state={"exp_avg": State(), "exp_avg_sq": State(), "exp_avg_diff": State(), "previous_grad": State()},
    per_step=PerStep(updates.adan_step, "first_step", "adan_step_size", "adan_diff_step_size",
                     "adan_bias_correction3_sqrt", "one_minus_beta1", "one_minus_beta2", "one_minus_beta3"),
    reduction=Reduction(updates.adan_grad_squares, "grad_squares",
                        finish=PerStep(updates.adan_clip, "clip_factor"), when="clip_global_norm"),
    reference=reference.adan,
    doc=r"""
    Adan (pytorch-optimizer's ``Adan``; Xie et al. 2022, "Adan: Adaptive Nesterov Momentum Algorithm for Faster
    Optimizing Deep Models").

    .. math::
        g \leftarrow c\,g, \quad \Delta = g - g_{t-1}\ (0 \text{ at } t = 1), \quad
        m \leftarrow m + (1-\beta_1)(g - m), \quad n_\Delta \leftarrow n_\Delta + (1-\beta_2)(\Delta - n_\Delta)

        u = g + \beta_2\Delta, \quad v \leftarrow \beta_3 v + (1-\beta_3) u^2, \quad
        \rho = \frac{\sqrt v}{\sqrt{1-\beta_3^t}} + \epsilon

        \theta \leftarrow \theta - \frac{\gamma}{1-\beta_1^t}\frac{m}{\rho}
        - \frac{\gamma\beta_2}{1-\beta_2^t}\frac{n_\Delta}{\rho}, \quad
        \theta \leftarrow \frac{\theta}{1 + \gamma\lambda}

    The weight decay is proximal (Adan's default), or decoupled (θ ← θ(1 − γλ) before the step) with
    ``weight_decouple=True``. With ``max_grad_norm`` > 0 every gradient is scaled by
    c = min(1, max_grad_norm / (‖g‖ + ε)), ‖g‖ the norm over every parameter of the model (a reduction); else
    c = 1. ``state["previous_grad"]`` holds −g_{t−1}, as pytorch-optimizer keeps it.
    """)

PRODIGY = Rule(
    "prodigy", class_name="Prodigy",
    element=updates.prodigy_element,
    hyperparameters={
        "lr": LearningRate(1.0, message=_PO_LR, search=_MULTIPLIER_SPACE),
        "betas": Reals((0.9, 0.999), messages=_PO_BETAS[:2], search=_BETAS_SPACE),
        "beta3": Real(None, 0.0, 1.0, optional=True, message=_PO_BETAS[2]),
        "d0": Real(1e-6, low_open=True, label="d0 value"),
        "d_coef": Real(1.0, low_open=True, label="d_coef value"),
        "growth_rate": Real(float("inf"), 1.0, infinite=True, label="growth_rate value"),
        "weight_decay": _po_real(0.0, "weight_decay"),
        "fixed_decay": Flag(False),
        "bias_correction": Flag(False),
        "safeguard_warmup": Flag(False),
        "eps": _po_real(1e-8, "eps", search=_EPS_SPACE),
    },
    state={"p0": State(initial=lambda params, hyperparameters: params.copy()), "exp_avg": State(),
           "exp_avg_sq": State(), "s": State()},
    scalar_state={"d": ScalarState(0.0), "d_max": ScalarState(0.0), "d_numerator": ScalarState(0.0)},
    per_step=PerStep(updates.prodigy_step, "d", "d_max", "d_numerator", "s_decay", "d_lr", "m_weight", "v_weight",
                     "s_weight", "numerator_weight", "decay"),
    reduction=Reduction(updates.prodigy_sums, "numerator_sum", "s_sum",
                        finish=PerStep(updates.prodigy_finish, "d", "d_max", "d_numerator", "d_new", "skip")),
    reference=reference.prodigy,
    doc=r"""
    Prodigy (pytorch-optimizer's ``Prodigy``; Mishchenko & Defazio 2023, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner"): Adam whose step γd estimates the distance to the solution, from sums over every
    parameter of the model (a reduction).

    .. math::
        \eta = \gamma d / c_t, \quad r \leftarrow \beta_3 r + \tfrac{d}{d_0}\eta\, \textstyle\sum g(\theta_0 - \theta),
        \quad m \leftarrow \beta_1 m + d(1-\beta_1) g, \quad v \leftarrow \beta_2 v + d^2(1-\beta_2) g^2

        s \leftarrow \beta_3 s + \tfrac{d}{d_0}\eta\, g, \quad \hat d = d_{coef} \frac{r}{\sum|s|}, \quad
        d_{\max} \leftarrow \max(d_{\max}, \hat d), \quad d \leftarrow \min(d_{\max}, d \cdot \text{growth})

        \theta \leftarrow \theta(1 - \eta\lambda), \quad
        \theta \leftarrow \theta - \eta \frac{m}{\sqrt v + d\epsilon}

    with d ← max(d, d̂) first while d = d₀; β3 = √β2 where None; c_t = (1 − β1ᵗ)/√(1 − β2ᵗ) with
    ``bias_correction``, else 1; ``safeguard_warmup`` uses d for η in s's update. The decay is decoupled
    (pytorch-optimizer's default ``weight_decouple=True``; λ without η with ``fixed_decay``). A step with
    Σ|s| = 0 leaves θ and d as they are. ``state["d"]`` is the estimate (d₀ before the first step).
    """)

DADAPT_ADAM = Rule(
    "dadapt_adam", class_name="DAdaptAdam",
    element=updates.dadapt_adam_element,
    hyperparameters={
        "lr": LearningRate(1.0, message=_PO_LR, search=_MULTIPLIER_SPACE),
        "betas": Reals((0.9, 0.999), messages=_PO_BETAS[:2], search=_BETAS_SPACE),
        "d0": Real(1e-6, low_open=True, label="d0 value"),
        "growth_rate": Real(float("inf"), 1.0, infinite=True, label="growth_rate value"),
        "weight_decay": _po_real(0.0, "weight_decay"),
        "weight_decouple": Flag(False),
        "fixed_decay": Flag(False),
        "bias_correction": Flag(False),
        "eps": _po_real(1e-8, "eps", search=_EPS_SPACE),
    },
    state={"exp_avg": State(), "exp_avg_sq": State(), "s": State()},
    scalar_state={"d": ScalarState(0.0), "numerator_weighted": ScalarState(0.0)},
    per_step=PerStep(updates.dadapt_adam_step, "d", "beta2_sqrt", "d_lr", "m_weight", "one_minus_beta2", "s_weight",
                     "one_minus_beta2_sqrt", "decay"),
    reduction=Reduction(updates.dadapt_adam_sums, "numerator_sum", "s_sum",
                        finish=PerStep(updates.dadapt_adam_finish, "d", "numerator_weighted", "skip")),
    reference=reference.dadapt_adam,
    doc=r"""
    D-Adaptation Adam (pytorch-optimizer's ``DAdaptAdam``; Defazio & Mishchenko 2023, "Learning-Rate-Free
    Learning by D-Adaptation", version 3): Adam at the step γd, d estimated from sums over every parameter of
    the model (a reduction).

    .. math::
        \eta = \gamma d / c_t, \quad a = \eta \textstyle\sum g \frac{s}{\sqrt v + \epsilon} \text{ (old } s, v),
        \quad m \leftarrow \beta_1 m + \eta(1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2

        s \leftarrow \sqrt{\beta_2} s + \eta(1-\sqrt{\beta_2}) g, \quad
        r \leftarrow r + (1-\sqrt{\beta_2})(a - r), \quad
        d \leftarrow \max\Big(d, \min\Big(\frac{r}{(1-\sqrt{\beta_2})\sum|s|}, d\cdot\text{growth}\Big)\Big)

        \theta \leftarrow \theta - \frac{m}{\sqrt v + \epsilon}

    c_t = (1 − β1ᵗ)/√(1 − β2ᵗ) with ``bias_correction``, else 1. Weight decay is coupled (g ← g + λθ), or
    decoupled (θ ← θ(1 − ηλ), λ alone with ``fixed_decay``) with ``weight_decouple=True``. A step with Σ|s| = 0
    leaves θ and d as they are; d does not move when γ = 0. ``state["d"]`` is the estimate (d₀ before the first
    step).
    """)

SHAMPOO = Rule(
    "shampoo", class_name="Shampoo",
    per_tensor=PerTensor(preconditioners.shampoo_tensor, aux_size=preconditioners.shampoo_aux_size, cuda=False),
    hyperparameters={
        "lr": LearningRate(1e-3, message=_PO_LR),
        "momentum": Real(0.0, 0.0, 1.0, message="momentum must be in the range [0.0, 1.0)"),
        "weight_decay": _po_real(0.0, "weight_decay"),
        "weight_decouple": Flag(False),
        "fixed_decay": Flag(False),
        "preconditioning_compute_steps": Integer(1, 1, message="preconditioning_compute_steps must be positive. "
                                                               "({value} > 0)"),
        "matrix_eps": _po_real(1e-6, "matrix_eps"),
    },
    derived={"use_momentum": Derived("momentum", lambda momentum: momentum > 0)},
    state={"momentum_buffer": State(when="use_momentum")},
    per_step=PerStep(preconditioners.shampoo_step, "shampoo_decay", "recompute"),
    reference=reference.shampoo,
    doc=r"""
    Shampoo (pytorch-optimizer's ``Shampoo``; Gupta, Koren & Singer 2018, "Shampoo: Preconditioned Stochastic
    Tensor Optimization"): each weight matrix G is preconditioned on both sides by inverse fourth roots of the
    sums of its gradients' outer products.

    .. math::
        G \leftarrow G + \mu(B - G)\ (t > 1), \quad G \leftarrow G + \lambda\theta \text{ or }
        \theta \leftarrow \theta(1 - \gamma\lambda), \quad
        L \leftarrow L + G G^\top, \quad R \leftarrow R + G^\top G

        \tilde L = L^{-1/4}, \ \tilde R = R^{-1/4} \text{ every } k \text{ steps}, \quad
        U = \tilde L G \tilde R, \quad B \leftarrow U, \quad \theta \leftarrow \theta - \gamma U

    L and R start at ε·I (ε = ``matrix_eps``), their inverse roots at 0; k = ``preconditioning_compute_steps``.
    A vector g takes L ← L + g gᵀ and U = L^{-1/2} g. The momentum B is the last preconditioned step, as in the
    reference (it starts at the first gradient). The decay is coupled, or decoupled with ``weight_decouple=True``
    (λ without γ with ``fixed_decay``). The roots come from ``eigh``, pytorch-optimizer's from the SVD (the
    same matrix: s = |λ|). L, L̃, R and R̃ live in ``state["aux"]``, per tensor of the layout: give the optimizer
    ``layout=net.layout`` (a conv kernel is the matrix (out, in·kh·kw)). CPU only: the roots call LAPACK.
    """)


def _soap_check(hp):
    if hp["max_precondition_dim"] > preconditioners.MAX_SIDE:
        raise ValueError(f"max_precondition_dim must be at most {preconditioners.MAX_SIDE} (fastgd sizes the "
                         f"eigenbases for sides up to it), got {hp['max_precondition_dim']}")


SOAP = Rule(
    "soap", class_name="SOAP",
    per_tensor=PerTensor(preconditioners.soap_tensor, aux_size=preconditioners.soap_aux_size, cuda=False),
    hyperparameters={
        "lr": LearningRate(3e-3, message=_PO_LR),
        "betas": Reals((0.95, 0.95), messages=_PO_BETAS[:2], search=_BETAS_SPACE),
        "shampoo_beta": Real(None, optional=True, message="shampoo_beta must be non-negative"),
        "weight_decay": _po_real(1e-2, "weight_decay", search=_DECOUPLED_DECAY_SPACE),
        "precondition_frequency": Integer(10, 1, message="precondition_frequency must be positive"),
        "max_precondition_dim": Integer(10000, 1, message="max_precondition_dim must be positive"),
        "precondition_1d": Flag(False),
        "correct_bias": Flag(True),
        "normalize_gradient": Flag(False),
        "eps": _po_real(1e-8, "eps", search=_EPS_SPACE),
    },
    state={"exp_avg": State(), "exp_avg_sq": State()},
    per_step=PerStep(preconditioners.soap_step, "first_step", "soap_step_size", "one_minus_beta1", "one_minus_beta2",
                     "one_minus_shampoo_beta", "soap_decay", "refresh"),
    check=_soap_check, reference=reference.soap,
    doc=r"""
    SOAP (pytorch-optimizer's ``SOAP``; Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"):
    Adam in the eigenbases of Shampoo's statistics, per weight matrix.

    .. math::
        S_L \leftarrow \beta_s S_L + (1-\beta_s) G G^\top, \quad S_R \leftarrow \beta_s S_R + (1-\beta_s) G^\top G,
        \quad \hat G = Q_L^\top G Q_R

        m \leftarrow \beta_1 m + (1-\beta_1) G, \quad v \leftarrow \beta_2 v + (1-\beta_2) \hat G^2, \quad
        N = Q_L \frac{Q_L^\top m Q_R}{\sqrt v + \epsilon} Q_R^\top

        \theta \leftarrow \big(\theta - \gamma\tfrac{\sqrt{1-\beta_2^s}}{1-\beta_1^s} N\big)(1 - \gamma\lambda)

    with s = t − 1: the first step only builds S and Q = eigh(S) (by decreasing eigenvalue); the statistics take
    G after each step, and every ``precondition_frequency`` steps each Q takes one power iteration, Q ← QR(S Q)
    with the columns sorted by diag(Qᵀ S Q) (v permuted with them). β_s = ``shampoo_beta`` (β2 where None). A
    side longer than ``max_precondition_dim`` (at most 10000 here) is not rotated; a vector is rotated only
    with ``precondition_1d``, else it takes Adam. ``normalize_gradient`` divides N by RMS(N) + ε; without
    ``correct_bias`` the step is γ. pytorch-optimizer computes the QR in float32 whatever the parameters'
    dtype (for bfloat16); fastgd in the parameters' dtype. ``merge_dims`` is not offered. S and Q live in
    ``state["aux"]``, per tensor of the layout, with the first moment in the bases, Q_Lᵀ m Q_R, which the step
    keeps (lerped with the rotated gradient: a rotation is linear) instead of rotating m every step as the
    reference does; it is rotated afresh when the bases change. Give the optimizer ``layout=net.layout``. CPU
    only: the bases call LAPACK.
    """)


# --- closures: SAM over a base rule -----------------------------------------------------------------

_SAM_CLOSURE = Closure(updates.sam_ascent, reduction=Reduction(updates.sam_norm_terms, "grad_norm_sq",
                                                                finish=PerStep(updates.sam_scale, "scale")))


def _sam(name, base, class_name, doc):
    """SAM over ``base``: its element, state and checks, with ρ, ``adaptive``, ε and the closure."""
    return Rule(
        name, class_name=class_name, doc=doc,
        element=base.element,
        hyperparameters={**base.hyperparameters, "rho": _po_real(0.05, "rho", search=LogUniform(1e-2, 0.5)),
                         "adaptive": Flag(False), "perturb_eps": _po_real(1e-12, "perturb_eps")},
        derived=base.derived, state=base.state, per_step=base.per_step, check=base.cross_check,
        closure=_SAM_CLOSURE, reference=reference.sam_over(base.reference),
    )


_SAM_MATH = r"""

    .. math::
        s = \frac{\rho}{\lVert g \rVert + \epsilon}, \quad \theta' = \theta + s\, g
        \ (\text{adaptive: } s = \frac{\rho}{\lVert |\theta| g \rVert + \epsilon},\ \theta' = \theta + s\,\theta^2 g),
        \quad g' = \nabla L_B(\theta'), \quad \text{then the base step at } \theta \text{ with } g'

    Sharpness-aware minimisation (Foret et al. 2021; ASAM, Kwon et al. 2021, with ``adaptive=True``), as
    pytorch-optimizer's ``SAM`` wrapping the base optimizer: the gradient is evaluated twice per batch, at θ
    and at θ', both on the batch B. Step it with a closure, ``opt.step(closure)``, ``closure()`` returning
    ``(loss, grad)`` at ``opt.params``; compiled training evaluates the batch twice itself.
    """

SAM_SGD = _sam("sam_sgd", SGD, "SAMSGD", r"""
    SAM over SGD (``pytorch_optimizer.SAM(params, torch.optim.SGD, ...)``), SGD's hyperparameters and ρ.
    """ + _SAM_MATH)

SAM_ADAM = _sam("sam_adam", ADAM, "SAMAdam", r"""
    SAM over Adam (``pytorch_optimizer.SAM(params, torch.optim.Adam, ...)``), Adam's hyperparameters and ρ.
    """ + _SAM_MATH)

# --- PSGD-Kron (pytorch-optimizer's Kron) ------------------------------------------------------------------------

def _kron_check(hp):
    if hp["max_size_triangular"] > kron.KRON_MAX_TRIANGULAR:
        raise ValueError(f"psgd_kron: max_size_triangular must be at most {kron.KRON_MAX_TRIANGULAR} (a longer side "
                         f"is diagonal), got {hp['max_size_triangular']}")


PSGD_KRON = Rule(
    "psgd_kron", class_name="Kron",
    per_tensor=PerTensor(kron.kron_tensor, aux_size=kron.kron_aux_size, cuda=False),
    hyperparameters={
        "lr": LearningRate(1e-3, message=_PO_LR),
        "momentum": Real(0.9, 0.0, 1.0, message="momentum must be in the range [0.0, 1.0)",
                         search=_MOMENTUM_SPACE),
        "weight_decay": _po_real(0.0, "weight_decay"),
        "weight_decouple": Flag(True),
        "pre_conditioner_update_probability": Real(
            None, 0.0, 1.0, low_open=True, high_open=False, optional=True,
            message="psgd_kron: pre_conditioner_update_probability must be in (0, 1] (or None: the schedule), "
                    "got {value}"),
        "max_size_triangular": Integer(8192, 1, message="psgd_kron: max_size_triangular must be an integer >= 1, "
                                                        "got {value}"),
        "min_ndim_triangular": Integer(2, 0, message="psgd_kron: min_ndim_triangular must be an integer >= 0, "
                                                     "got {value}"),
        "memory_save_mode": Choice("none", ("none", "one_diag", "smart_one_diag", "all_diag"),
                                   aliases={None: "none"},
                                   message="invalid memory_save_mode {value}. it must be one of [None, `one_diag`, "
                                           "`smart_one_diag`, `all_diag`]"),
        "momentum_into_precondition_update": Flag(True),
        "precondition_lr": Real(0.1, label="psgd_kron: precondition_lr value"),
        "precondition_init_scale": Real(1.0, low_open=True, label="psgd_kron: precondition_init_scale value"),
        "balance_prob": Real(0.01, 0.0, 1.0, high_open=False, label="psgd_kron: balance_prob value"),
        "maximize": Flag(False),
        "seed": Integer(0, 0, 2**24 - 1, message="psgd_kron: seed must be an integer in [0, 2**24), got {value}"),
    },
    state={"momentum_buffer": State()},
    scalar_state={"update_counter": ScalarState(0.0)},
    per_step=PerStep(kron.kron_step, "update_counter", "do_update", "balance", "bias_correction1",
                     "one_minus_momentum"),
    check=_kron_check,
    reference=reference.psgd_kron,
    doc=r"""
    PSGD-Kron (pytorch-optimizer's ``Kron``; Li 2018, "Preconditioner on Matrix Lie Group for SGD"): SGD on
    momentum preconditioned by P = Q_Lᵀ Q_L ⊗ Q_Rᵀ Q_R, each factor fitted to the curvature from a random probe.

    .. math::
        m \leftarrow \mu m + (1-\mu) g, \quad D = m / (1 - \mu^t), \quad
        A = Q_L D Q_R^\top, \quad B = Q_L^{-\top} V Q_R^{-1},\ V \sim \mathcal N(0, I)

        Q_L \leftarrow Q_L - \frac{\eta_p\, \operatorname{triu}(AA^\top - BB^\top)}
        {\lVert AA^\top + BB^\top\rVert + \epsilon} Q_L \ \text{(and } Q_R \text{ with } A^\top A, B^\top B)

        U = Q_L^\top Q_L D Q_R^\top Q_R, \quad U \leftarrow U \min\Big(1, \frac{1.1}{\operatorname{RMS}(U) +
        10^{-6}}\Big), \quad \theta \leftarrow \theta - \gamma (U + \lambda\theta)

    η_p = ``precondition_lr``; the norm is pytorch-optimizer's lower bound of the spectral norm. A factor is upper
    triangular, or diagonal (its terms are row or column sums of squares) for a side of 1, longer than
    ``max_size_triangular``, of a tensor with fewer than ``min_ndim_triangular`` dimensions, or as
    ``memory_save_mode`` says. The factors update when a counter reaches 1/p, p = ``pre_conditioner_update_probability``
    or, where None, 1 until step 500 then exp(−0.001(t − 500)) down to 0.03; at an update, with probability
    ``balance_prob``, the factors of each matrix are scaled to the geometric mean of their largest entries.
    Weight decay (decoupled as above, or coupled g ← g + λθ with ``weight_decouple=False``) reaches the matrices
    only. The probes and the balancing draws come from a generator keyed on (``seed``, step, tensor)
    (:mod:`fastgd.kernels.kron`): a run is fixed by its seed. The factors live in ``state["aux"]`` (a square block
    per side, the first entries of it for a diagonal one; a side longer than 8192 takes its diagonal only). A weight
    matrix, a convolution's kernel included, is its (rows, columns) view: give the optimizer ``layout=net.layout``;
    without one the whole vector is one vector. CPU only: the triangular solves call the BLAS.
    """)

BUILTIN_RULES = (SGD, MOMENTUM, NESTEROV, ADAGRAD, RMSPROP, ADADELTA, ADAM, AMSGRAD, ADAMAX, NADAM, ADAMW, LION, RADAM,
                 RPROP, ASGD, SCHEDULE_FREE_ADAMW, LAMB, ADAFACTOR, MUON, ADOPT, ADAN, PRODIGY, DADAPT_ADAM,
                 SHAMPOO, SOAP, PSGD_KRON)

# --- the loss as an input: AliG's Polyak step -------------------------------------------------------

ALIG = Rule(
    "alig", class_name="AliG",
    element=updates.alig_element,
    hyperparameters={
        "lr": LearningRate(0.1, message=_PO_LR),
        "momentum": Real(0.0, 0.0, 1.0, high_open=False, message="momentum must be in the range [0.0, 1.0]"),
        "adjusted_momentum": Flag(False),
    },
    derived={"use_momentum": Derived("momentum", lambda momentum: momentum > 0)},
    state={"momentum_buffer": State(when="use_momentum")},
    reduction=Reduction(updates.squared_grad, "grad_norm_sq", finish=PerStep(updates.alig_step_size, "step_size")),
    reference=reference.alig,
    doc=r"""
    AliG (pytorch-optimizer's ``AliG``; Berrada et al. 2020, "Training Neural Networks for and by Interpolation"):
    SGD at a Polyak step from the batch's loss, capped by γ (pytorch-optimizer's ``max_lr``).

    .. math::
        \eta = \min\Big(\frac{L_B(\theta)}{\lVert g \rVert^2 + 10^{-6}}, \gamma\Big), \quad
        \theta \leftarrow \theta - \eta g, \quad
        b \leftarrow \mu b - \eta g, \quad \theta \leftarrow \theta + \mu b

    (``adjusted_momentum``: b ← μb − g, θ ← θ + ημ b). It takes the loss: ``opt.step(grad, loss=...)`` or
    ``opt.step(closure)``; compiled training gives it each batch's loss.
    """)

BUILTIN_RULES += (SAM_SGD, SAM_ADAM)  # its own line: the rules with a closure
BUILTIN_RULES += (ALIG,)  # and the rules that take the loss
