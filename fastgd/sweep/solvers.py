"""Whole-batch solvers that a sweep lists beside the rules: ``lbfgs``.

A rule of :mod:`fastgd.rules` takes one step per batch; L-BFGS evaluates the loss and gradient many times a step
(its line search), over the whole training set. A sweep names it in ``rules`` like a rule
(``rules = ["adam", "lbfgs"]``; ``"all"`` stays the registered rules), with the same axes, store, curves and
report, under these terms:

* **the full batch only**: its data sets' ``batch_sizes`` must be ``["full"]``, and it takes no learning-rate
  schedule (``schedules`` ``"constant"`` alone);
* **an epoch is one** ``torch.optim.LBFGS.step`` of ``max_iter`` iterations (torch's default 20, at most
  ``max_eval`` = 5/4 of that evaluations) on the full batch, the state carrying over from epoch to epoch
  (:func:`fastgd.training.lbfgs_epochs`, each step one compiled call). Its epoch's loss is the step's first
  evaluation, at θ as the epoch found it: what a full-batch rule's epoch records. Its seconds are the steps'
  wall-clock time, as a rule's are its epochs'. So the report's curves per epoch compare one L-BFGS step with
  one full-batch gradient step (an L-BFGS epoch costs about ``max_iter`` gradients), and its curves per second
  compare the work itself;
* hyperparameters (:data:`LBFGS`): the learning rate (``learning_rates``: the line search's first trial step, or
  the fixed step without one), ``history_size``, ``max_iter``, and ``line_search``: 1 for torch's strong-Wolfe
  line search (the default here; torch's is none), 0 for none. Its tuning space: a log-uniform learning rate in
  [0.05, 2], a log-uniform history size in [3, 100] (rounded), and line search on or off, even odds;
* it trains alone (never in a shared compiled call), on the CPU.

:func:`definition` gives a sweep's run the rule or the solver of its name.
"""

import hashlib
import inspect
import math
from dataclasses import dataclass, field
from functools import cached_property

from fastgd.rules.definition import LogUniform
from fastgd.validation import is_integer, is_real

__all__ = ["Solver", "LBFGS", "SOLVERS", "is_solver", "definition"]


@dataclass(frozen=True)
class Solver:
    """A whole-batch solver as a sweep sees it: ``name``, ``defaults`` (name → value, ``lr`` first), a search space
    (name → distribution over [0, 1] draws; :meth:`from_unit`), and :meth:`check` on a setting."""

    name: str
    defaults: dict
    search_space: dict = field(default_factory=dict)
    evaluation: object = None  # as a Rule's: no evaluation point

    @property
    def search_dimensions(self):
        """How many numbers one point of the search space takes."""
        return len(self.search_space)

    def default_hyperparameters(self):
        """The defaults (as an optimizer class's ``default_hyperparameters``)."""
        return dict(self.defaults)

    def from_unit(self, point):
        """The searched hyperparameters at ``point``, one number in [0, 1] per entry of the search space."""
        values = {}
        for (name, distribution), unit in zip(self.search_space.items(), point):
            value = distribution.from_unit(float(unit))
            values[name] = value if name == "lr" else int(round(value))
        return values

    def check(self, setting):
        """The setting (the defaults completed) if this solver takes it; else ValueError in one line naming it."""
        unknown = sorted(set(setting) - set(self.defaults))
        if unknown:
            raise ValueError(f"{self.name} has no hyperparameter {unknown[0]!r} (it has {sorted(self.defaults)})")
        values = {**self.defaults, **setting}
        lr = values["lr"]
        if not is_real(lr) or not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"{self.name}: the learning rate must be a positive finite number, got {lr!r}")
        for name in ("history_size", "max_iter"):
            if not is_integer(values[name]) or values[name] < 1:
                raise ValueError(f"{self.name}: {name} must be an integer >= 1, got {values[name]!r}")
        if isinstance(values["line_search"], bool) or values["line_search"] not in (0, 1):
            raise ValueError(f"{self.name}: line_search must be 1 (strong Wolfe) or 0 (a fixed step of the learning "
                             f"rate), got {values['line_search']!r}")
        return values

    @cached_property
    def hash(self):
        """The solver's definition: its L-BFGS kernel's source, the epoch's driver and these terms (an edit makes
        new runs, as a rule's does)."""
        from fastgd import training
        from fastgd.kernels import lbfgs

        text = "\n".join([inspect.getsource(lbfgs), inspect.getsource(training.lbfgs_epochs), repr(self.defaults),
                          repr(sorted(self.search_space.items()))])
        return hashlib.sha256(text.encode()).hexdigest()

    def optimizer_settings(self, setting):
        """``setting`` (a run's learning rate and hyperparameters) as :func:`fastgd.training.lbfgs_epochs` takes
        it."""
        values = self.check(setting)
        return dict(lr=float(values["lr"]), max_iter=int(values["max_iter"]), history_size=int(values["history_size"]),
                    line_search_fn="strong_wolfe" if values["line_search"] else None)


class _Choice:
    """Even odds between 0 and 1 (line search off or on) from a draw u in [0, 1]."""

    def from_unit(self, u):
        return 0.0 if u < 0.5 else 1.0

    def __repr__(self):
        return "_Choice(0, 1)"


LBFGS = Solver("lbfgs", {"lr": 1.0, "history_size": 100, "max_iter": 20, "line_search": 1},
               {"lr": LogUniform(0.05, 2.0), "history_size": LogUniform(3.0, 100.0), "line_search": _Choice()})
"""torch's L-BFGS, an epoch one ``step`` (see the module)."""

SOLVERS = {"lbfgs": LBFGS}

def is_solver(name):
    """Whether ``name`` is a whole-batch solver (:data:`SOLVERS`), not a rule."""
    return name in SOLVERS


def definition(name):
    """The solver of that name, else the registered rule (:func:`fastgd.rules.get`)."""
    if name in SOLVERS:
        return SOLVERS[name]
    from fastgd import rules

    return rules.get(name)
