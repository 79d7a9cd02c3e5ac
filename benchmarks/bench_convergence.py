"""Convergence of every rule on every bundled data set: how low, how fast, and how well it generalises.

fastgd (``Convergence``), and scikit-learn for the rules it has (``SklearnConvergence``), train the network of
``bench_training`` (one
hidden layer of 32 ReLU units, no L2 penalty) in float64 with batches of 32 from the same
initial weights, with ``SEED`` for everything random, for a budget of epochs per data set.
The numbers are deterministic but for ``track_seconds_to_target``.

Each combination trains once, when the first of its four tracks sets up: ``setup_cache`` only
names a directory, and the first ``setup`` of a combination writes its numbers there as JSON
for the other three (under a lock of the combination's own). ``asv run -b`` on one combination
trains that combination alone.
"""

import fcntl
import json
import math
import os

from fastgd import baselines, datasets

from benchmarks import common

HIDDEN = 32
BATCH_SIZE = 32
DTYPE = "float64"
# Per data set: the mean training loss of an epoch to reach (cross-entropy; for diabetes half
# the squared error of the standardised target) and the budget of epochs. Fixed numbers, so
# that they mean the same from commit to commit; most rules reach the target well within the
# budget. digits' budget keeps the final losses around 10⁻², where comparing them with
# scikit-learn's still says something (at 10⁻⁴ the shuffling order decides).
TARGETS = {
    "iris": (0.2, 200),
    "wine": (0.05, 200),
    "breast_cancer": (0.05, 200),
    "digits": (0.05, 50),
    "diabetes": (0.17, 200),
}


def train_for_budget(implementation, dataset, rule):
    """Train for the budget; return the four tracked numbers.

    The epochs to the target come from the losses of that run; the seconds to it from a second,
    identical run from the initial weights that stops there, timed as users of the
    implementation train (``Trainer.fit``: for scikit-learn one ``fit``).
    """
    data = common.load_dataset(dataset)
    target, budget = TARGETS[dataset]
    trainer = common.warmed_trainer(implementation, data, rule, HIDDEN, BATCH_SIZE, DTYPE)
    losses = trainer.fit(budget)
    epochs_to_target = next((epoch for epoch, loss in enumerate(losses, 1) if loss <= target), math.nan)
    seconds_to_target = math.nan
    if not math.isnan(epochs_to_target):
        rerun = baselines.TRAINERS[implementation](data, rule, HIDDEN, BATCH_SIZE, DTYPE)
        seconds_to_target = rerun.fit_seconds(epochs_to_target)
    return {"final_loss": losses[-1] if math.isfinite(losses[-1]) else math.nan,
            "test_score": data.test_metric(trainer.test_outputs()),
            "epochs_to_target": epochs_to_target, "seconds_to_target": seconds_to_target}


def cached_result(directory, rule, dataset, implementation):
    """:func:`train_for_budget`'s numbers, trained at the first call for this combination and read from
    ``directory`` after; NotImplementedError (asv's "skipped") where the implementation lacks the rule."""
    path = os.path.join(directory, f"convergence-{rule}-{dataset}-{implementation}.json")
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another track of this combination, set up at once, waits for its numbers
        if not os.path.exists(path):
            try:
                result = train_for_budget(implementation, dataset, rule)
            except NotImplementedError as unsupported:
                result = {"unsupported": str(unsupported)}
            with open(path, "w") as file:
                json.dump(result, file)  # NaN is written as NaN, which json reads back
    with open(path) as file:
        result = json.load(file)
    if "unsupported" in result:
        raise NotImplementedError(result["unsupported"])
    return result


class Convergence:
    """Final training loss, test score, and epochs and seconds to the data set's target loss (``TARGETS``).

    A rule that does not reach the target within the budget reports NaN epochs and seconds
    (asv shows it as n/a); one that diverges reports a NaN final loss.
    """

    params = [common.RULES, list(datasets.BUNDLED), ["fastgd"]]
    param_names = ["rule", "dataset", "implementation"]
    timeout = 300  # one combination's training: at most a few seconds warm, the compilation of a rule cold

    def setup_cache(self):
        return os.getcwd()  # asv's scratch directory for this run: the combinations' numbers go there

    def setup(self, directory, rule, dataset, implementation):
        self.result = cached_result(directory, rule, dataset, implementation)

    def track_final_loss(self, directory, rule, dataset, implementation):
        return self.result["final_loss"]

    track_final_loss.unit = "mean training loss of the last epoch"

    def track_test_score(self, directory, rule, dataset, implementation):
        return self.result["test_score"]

    track_test_score.unit = "accuracy, or R² for diabetes, on the test split (higher is better)"

    def track_epochs_to_target(self, directory, rule, dataset, implementation):
        return self.result["epochs_to_target"]

    track_epochs_to_target.unit = "epochs (NaN: not within the budget)"

    def track_seconds_to_target(self, directory, rule, dataset, implementation):
        return self.result["seconds_to_target"]

    track_seconds_to_target.unit = "seconds of training (NaN: target not reached)"


class SklearnConvergence(Convergence):
    """``Convergence`` of scikit-learn's MLP, for the rules it has (``baselines.SKLEARN_SOLVERS``): a grid of its
    own, so that asv spawns no process for the rules scikit-learn lacks."""

    params = [list(baselines.SKLEARN_SOLVERS), list(datasets.BUNDLED), ["sklearn"]]
    setup_cache = Convergence.setup_cache  # one function: one directory of numbers for both
