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
from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "BUNDLED", "load", "synthetic"]

BUNDLED = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
TEST_SIZE = 0.25
SPLIT_SEED = 0


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

    if task == "classification":
        X, y = sk.make_classification(n_samples=n_samples, n_features=n_features,
                                      n_informative=max(2, n_features // 2), n_classes=n_classes,
                                      random_state=random_state)
    elif task == "regression":
        X, y = sk.make_regression(n_samples=n_samples, n_features=n_features, n_informative=max(1, n_features // 2),
                                  noise=0.1, random_state=random_state)
    else:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    return _split_and_scale(f"synthetic_{task}_{n_samples}x{n_features}", task, X, y)
