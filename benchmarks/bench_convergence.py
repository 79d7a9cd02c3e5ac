"""Convergence of every rule on every bundled data set: how low, how fast, and how well it generalises.

fastgd, and scikit-learn for the rules it has, train the network of ``bench_training`` (one
hidden layer of 32 ReLU units, no L2 penalty) in float64 with batches of 32 from the same
initial weights, with ``SEED`` for everything random, for a budget of epochs per data set.
The numbers are deterministic but for ``track_seconds_to_target``.
"""

import math

from fastgd import datasets

from benchmarks import common

HIDDEN = 32
BATCH_SIZE = 32
DTYPE = "float64"
IMPLEMENTATIONS = ["fastgd", "sklearn"]
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
        rerun = common.TRAINERS[implementation](data, rule, HIDDEN, BATCH_SIZE, DTYPE)
        seconds_to_target = rerun.fit_seconds(epochs_to_target)
    return {"final_loss": losses[-1] if math.isfinite(losses[-1]) else math.nan,
            "test_score": common.score_on_test_split(data, trainer.test_outputs()),
            "epochs_to_target": epochs_to_target, "seconds_to_target": seconds_to_target}


class Convergence:
    """Final training loss, test score, and epochs and seconds to the data set's target loss (``TARGETS``).

    A rule that does not reach the target within the budget reports NaN epochs and seconds
    (asv shows it as n/a); one that diverges reports a NaN final loss.
    """

    params = [common.RULES, list(datasets.BUNDLED), IMPLEMENTATIONS]
    param_names = ["rule", "dataset", "implementation"]

    def setup_cache(self):
        results = {}
        for rule in common.RULES:
            for dataset in datasets.BUNDLED:
                for implementation in IMPLEMENTATIONS:
                    try:
                        results[rule, dataset, implementation] = train_for_budget(implementation, dataset, rule)
                    except NotImplementedError as unsupported:
                        results[rule, dataset, implementation] = unsupported
        return results

    setup_cache.timeout = 900

    def setup(self, results, rule, dataset, implementation):
        self.result = results[rule, dataset, implementation]
        if isinstance(self.result, NotImplementedError):
            raise self.result

    def track_final_loss(self, results, rule, dataset, implementation):
        return self.result["final_loss"]

    track_final_loss.unit = "mean training loss of the last epoch"

    def track_test_score(self, results, rule, dataset, implementation):
        return self.result["test_score"]

    track_test_score.unit = "accuracy, or R² for diabetes, on the test split (higher is better)"

    def track_epochs_to_target(self, results, rule, dataset, implementation):
        return self.result["epochs_to_target"]

    track_epochs_to_target.unit = "epochs (NaN: not within the budget)"

    def track_seconds_to_target(self, results, rule, dataset, implementation):
        return self.result["seconds_to_target"]

    track_seconds_to_target.unit = "seconds of training (NaN: target not reached)"
