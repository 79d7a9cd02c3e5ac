"""fastgd: gradient-descent optimizers, models and training loops compiled with Numba.

Three ways in:

* scikit-learn estimators: :class:`fastgd.MLPClassifier`, :class:`fastgd.MLPRegressor`, and for any declared
  network (:mod:`fastgd.networks`) :class:`fastgd.NetworkClassifier`, :class:`fastgd.NetworkRegressor`;
* torch-style optimizers over NumPy arrays: :mod:`fastgd.optim`;
* the compiled kernels, callable from your own ``@njit`` code: :mod:`fastgd.rules.kernels` (every rule's
  update) and :mod:`fastgd.kernels` (networks, epochs, products).

Submodules load on first use, so ``import fastgd`` stays cheap.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "MLP": "fastgd.models",
    "MLPClassifier": "fastgd.estimators",
    "MLPRegressor": "fastgd.estimators",
    "NetworkClassifier": "fastgd.network_estimators",
    "NetworkRegressor": "fastgd.network_estimators",
    "Training": "fastgd.training",
    "gradcheck": "fastgd.gradcheck",
}
_SUBMODULES = {"optim", "kernels", "reference", "models", "training", "estimators", "network_estimators", "networks",
               "gradcheck", "landscape", "functions", "datasets", "cuda", "threads"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"fastgd.{name}")
    raise AttributeError(f"module 'fastgd' has no attribute {name!r}")


def __dir__():
    return __all__
