r"""Update rules, declared once: the built-ins and your own.

A rule is a :class:`Rule`: hyperparameters (with defaults and torch-style
checks), state, an optional per-step function and an element function, the
math of one parameter. Everything else is derived from it: the optimizer
class (``optim.OPTIMIZERS[name]``), the serial and ``prange`` kernels, the
compiled training loops, the estimators (``MLPClassifier(optimizer=name)``),
sweeps, the report, the asv suite and the CUDA kernels. Sign-SGD with momentum
(Signum) in a dozen lines:

>>> import numpy as np
>>> from fastgd import optim, rules
>>> @rules.register("signum_example", replace=True,
...                 hyperparameters={"lr": rules.LearningRate(1e-3), "momentum": rules.Real(0.9, 0.0, 1.0)},
...                 state={"momentum_buffer": rules.State()},
...                 per_step=rules.PerStep(lambda momentum: 1.0 - momentum, "one_minus_momentum"))
... def signum_element(param, grad, momentum_buffer, lr, momentum, one_minus_momentum):
...     momentum_buffer = momentum * momentum_buffer + one_minus_momentum * grad
...     if momentum_buffer > 0:
...         return param - lr, momentum_buffer
...     if momentum_buffer < 0:
...         return param + lr, momentum_buffer
...     return param, momentum_buffer
>>> params = np.array([1.0, -1.0])
>>> opt = optim.OPTIMIZERS["signum_example"](params, lr=0.25)
>>> opt.step(2 * params)
>>> params
array([ 0.75, -0.75])
>>> rules.unregister("signum_example")

A plugin is a Python file (or module) that registers rules; ``fastgd compare
--plugin my_rules.py``, ``plugins = ["my_rules.py"]`` in a sweep
configuration and ``FASTGD_PLUGINS`` (paths or module names separated by
``os.pathsep``, loaded with fastgd) bring them to the command, to sweep
workers and to the asv suite. See :mod:`fastgd.rules.definition` for the
pieces of a declaration and :mod:`fastgd.rules.compile` for what is derived.
"""

import os

from fastgd.rules.definition import (GENERATOR_VERSION, Betas, Choice, Closure, Derived, EvaluationPoint, Flag,
                                     Hyperparameter, Integer, LearningRate, LogUniform, OneMinusLogUniform, PerStep,
                                     PerTensor, Real, Reals, Reduction, Rule, RuleError, ScalarState, State, Uniform,
                                     WeightDecay)
from fastgd.rules.registry import (RULES, Plugin, PluginError, get, is_builtin, load_plugin, load_plugins, plugin_of,
                                   rebuild, register, resolve_plugin, unregister)

__all__ = ["Rule", "RuleError", "Hyperparameter", "Real", "LearningRate", "Reals", "Betas", "Integer", "Flag",
           "Choice", "WeightDecay", "Derived", "State", "ScalarState", "PerStep", "PerTensor", "EvaluationPoint",
           "Reduction", "Closure", "LogUniform", "Uniform", "OneMinusLogUniform", "RULES",
           "register", "unregister", "get", "is_builtin", "Plugin", "PluginError", "load_plugin",
           "load_plugins", "plugin_of", "rebuild", "resolve_plugin", "compiled", "GENERATOR_VERSION"]


def compiled(rule, flags=None):
    """The compiled forms of ``rule`` (a Rule or a name) for ``flags`` (default: its defaults' flags)."""
    from fastgd.rules.compile import compiled as compiled_variant

    rule = get(rule) if isinstance(rule, str) else rule
    if flags is None:
        flags = rule.flags(rule.defaults)
    return compiled_variant(rule, flags)


def _register_builtins():
    from fastgd.rules import registry
    from fastgd.rules.builtin import BUILTIN_RULES

    for rule in BUILTIN_RULES:
        registry._add(rule, builtin=True)


def _load_environment_plugins():
    from fastgd._config import SettingError

    try:
        load_plugins([spec for spec in os.environ.get("FASTGD_PLUGINS", "").split(os.pathsep) if spec.strip()])
    except PluginError as error:
        raise SettingError(f"FASTGD_PLUGINS: {error}") from None


_register_builtins()
_load_environment_plugins()
