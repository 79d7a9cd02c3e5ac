"""A user's rule for the tests: Adam as scikit-learn's MLP writes it, ε outside the bias correction.

    step_size = γ √(1 − β2ᵗ) / (1 − β1ᵗ),   θ ← θ − step_size · m / (√v + ε)

It exercises what the README's example does not: a per-step function of the
step count, two state slots, a flag that adds a third (``amsgrad``, as
AMSGrad's running maximum), a derived flag, an initial state taken from the
parameters, and scikit-learn's own optimizer as the independent oracle.
"""

import math

import numpy as np

from fastgd import rules


def sklearn_adam_element(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, anchor, beta1, one_minus_beta1, beta2,
                         one_minus_beta2, eps, step_size, amsgrad, pull, pull_strength):
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * grad * grad
    second = exp_avg_sq
    if amsgrad:
        if not exp_avg_sq <= max_exp_avg_sq:
            max_exp_avg_sq = exp_avg_sq
        second = max_exp_avg_sq
    param = param - step_size * exp_avg / (math.sqrt(second) + eps)
    if pull:
        param = param - pull_strength * (param - anchor)
    return param, exp_avg, exp_avg_sq, max_exp_avg_sq, anchor


def sklearn_adam_step(step, lr, beta1, beta2):
    return lr * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step), 1.0 - beta1, 1.0 - beta2


def sklearn_adam_reference(params, grad, state, t, lr, betas, eps, amsgrad, pull_strength):
    """The NumPy oracle of the same rule (with amsgrad and the pull towards the start)."""
    beta1, beta2 = betas
    if t == 1:
        state["exp_avg"] = np.zeros_like(params)
        state["exp_avg_sq"] = np.zeros_like(params)
        if amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(params)
        if pull_strength != 0:
            state["anchor"] = params.copy()
    state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * grad
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
    second = state["exp_avg_sq"]
    if amsgrad:
        state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], state["exp_avg_sq"])
        second = state["max_exp_avg_sq"]
    step_size = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    params -= step_size * state["exp_avg"] / (np.sqrt(second) + eps)
    if pull_strength != 0:
        params -= pull_strength * (params - state["anchor"])


rules.register(rules.Rule(
    "sklearn_adam",
    element=sklearn_adam_element,
    hyperparameters={
        "lr": rules.LearningRate(1e-3),
        "betas": rules.Betas((0.9, 0.999)),
        "eps": rules.Real(1e-8, label="epsilon value"),
        "amsgrad": rules.Flag(False),
        "pull_strength": rules.Real(0.0, 0.0, 1.0),
    },
    derived={"pull": rules.Derived("pull_strength", lambda strength: strength != 0)},
    state={"exp_avg": rules.State(), "exp_avg_sq": rules.State(), "max_exp_avg_sq": rules.State(when="amsgrad"),
           "anchor": rules.State(initial=lambda params, hyperparameters: params.copy(), when="pull")},
    per_step=rules.PerStep(sklearn_adam_step, "step_size", "one_minus_beta1", "one_minus_beta2"),
    reference=sklearn_adam_reference,
    doc="Adam with scikit-learn's ε placement (sklearn.neural_network's AdamOptimizer).",
), replace=True)
