"""The data every benchmark, sweep and report uses by default: no network needed.

scikit-learn's bundled sets (iris, wine, breast_cancer, digits for
classification; diabetes for regression) and synthetic sets of any size from
``make_classification`` / ``make_regression``. Each comes split once
(75 % train, 25 % test, stratified for classification, ``random_state=0``) and
standardised with the training part's mean and deviation (the targets too, for
regression), so a learning rate means the same on every set.

    >>> from fastgd import datasets
    >>> digits = datasets.load("digits")
    >>> digits.X_train.shape, digits.n_outputs, digits.output
    ((1347, 64), 10, 'softmax')
"""

import functools
import numbers
import os
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "BUNDLED", "load", "synthetic", "check_name", "physical_memory_bytes"]

BUNDLED = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
TEST_SIZE = 0.25
SPLIT_SEED = 0
# a synthetic set needs a few rows in each part of the split, and of each class in the test part
MIN_SYNTHETIC_SAMPLES = 8
# peak memory of making, splitting and standardising a synthetic set, in copies of its float64 X
_SYNTHETIC_COPIES = 5
SYNTHETIC_NAME = re.compile(r"synthetic-(classification|regression)-([0-9]+)x([0-9]+)", re.ASCII)


def physical_memory_bytes():
    """This machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_synthetic(task, n_samples, n_features, n_classes=2):
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    for name, value, low in (("n_samples", n_samples, MIN_SYNTHETIC_SAMPLES),
                             ("n_features", n_features, 2 if task == "classification" else 1),
                             ("n_classes", n_classes, 2)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"a synthetic {task} set needs {name} >= {low}, got {value!r}")
    memory = physical_memory_bytes()
    needed = _SYNTHETIC_COPIES * 8 * n_samples * n_features
    if memory is not None and needed > memory:
        raise ValueError(f"a synthetic set of {n_samples} x {n_features} needs about {needed / 2 ** 30:.3g} GiB to "
                         f"make; this machine has {memory / 2 ** 30:.3g} GiB")
    if task == "classification":
        # make_classification: two clusters per class, at most 2**informative clusters; and a
        # stratified split needs every class in the test quarter
        most = min(2 ** min(_informative(task, n_features), 62) // 2, n_samples // 4)
        if n_classes > most:
            raise ValueError(f"a synthetic classification set of {n_samples} samples and {n_features} features can "
                             f"have at most {most} classes, got {n_classes}")


def _informative(task, n_features):
    return max(2, n_features // 2) if task == "classification" else max(1, n_features // 2)


def check_name(name):
    """Check a data set name (bundled, or ``synthetic-<task>-<n>x<features>``) without loading it.

    Returns ``(task, n_features, n_outputs)``; raises ValueError naming the problem.
    """
    if not isinstance(name, str):
        raise ValueError(f"a data set name must be a string, got {name!r}")
    match = SYNTHETIC_NAME.fullmatch(name)
    if match:
        if any(len(part) > 1 and part.startswith("0") for part in match.group(2, 3)):
            raise ValueError(f"dataset {name!r}: write the sizes without leading zeros")
        task, n_samples, n_features = match.group(1), int(match.group(2)), int(match.group(3))
        _check_synthetic(task, n_samples, n_features)
        return task, n_features, 2 if task == "classification" else 1
    if name not in BUNDLED:
        raise ValueError(f"unknown dataset {name!r}: use one of {sorted(BUNDLED)} or "
                         "'synthetic-classification-<n>x<features>' / 'synthetic-regression-<n>x<features>'")
    data = load(name)
    return data.task, data.n_features, data.n_outputs


@dataclass(frozen=True)
class Dataset:
    """A standardised train/test split. Arrays are read-only float64.

    ``y_*`` are labels (classification) or targets (regression); ``Y_*`` are
    what the network trains on: one-hot rows for classification (softmax
    output, also for two classes), one column of targets for regression.
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
    def Y_train(self):
        return self._targets(self.y_train)

    @property
    def Y_test(self):
        return self._targets(self.y_test)

    def _targets(self, y):
        if self.task == "classification":
            return np.eye(self.n_classes)[y]
        return y.reshape(-1, 1)

    def __repr__(self):
        return (f"Dataset({self.name!r}, {self.task}, train {self.X_train.shape}, test {self.X_test.shape}"
                f"{f', {self.n_classes} classes' if self.n_classes else ''})")


def _split_and_scale(name, task, X, y):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    stratify = y if task == "classification" else None
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=TEST_SIZE, random_state=SPLIT_SEED,
                                                        stratify=stratify)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    n_classes = None
    if task == "classification":
        classes, y_train = np.unique(y_train, return_inverse=True)
        y_test = np.searchsorted(classes, y_test)
        n_classes = len(classes)
    else:
        mean, deviation = y_train.mean(), y_train.std()
        y_train, y_test = (y_train - mean) / deviation, (y_test - mean) / deviation
    arrays = [np.ascontiguousarray(a, dtype=np.float64 if a.dtype.kind == "f" else np.int64)
              for a in (X_train, X_test, y_train, y_test)]
    for array in arrays:
        array.flags.writeable = False
    return Dataset(name, task, *arrays, n_classes=n_classes)


@functools.lru_cache(maxsize=None)
def load(name):
    """One of ``BUNDLED``, split and standardised (cached: the arrays are shared and read-only)."""
    from sklearn import datasets as sk

    if name not in BUNDLED:
        raise ValueError(f"unknown dataset {name!r}; bundled: {sorted(BUNDLED)} (synthetic sets: datasets.synthetic)")
    X, y = getattr(sk, f"load_{name}")(return_X_y=True)
    return _split_and_scale(name, BUNDLED[name], X, y)


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
    return _split_and_scale(f"synthetic_{task}_{n_samples}x{n_features}", task, X, y)
