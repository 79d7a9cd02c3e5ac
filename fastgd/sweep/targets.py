"""The target training loss of a data set that no configuration gives one (a user's file on the command line).

A fixed number cannot serve every data set: 0.1 is a fine cross-entropy on iris and out of reach of every rule
on a noisy regression, whose best half squared error may be 0.3. :func:`reference_target` asks the data set
instead. A reference run (Adam at its default learning rate, the configuration's network, batch size and epoch
budget, seed 0) trains once. The target is the loss a given share of the way from the initial training loss to
the best that run reached. The reference then reaches it within the budget by construction, so the target is in
reach on any data set, and the rules are compared on how soon they get there.
"""

import math
from dataclasses import dataclass


__all__ = ["TargetChoice", "reference_target", "REFERENCE_RULE", "REFERENCE_LEARNING_RATE", "SHARE_OF_REDUCTION"]

REFERENCE_RULE = "adam"
REFERENCE_LEARNING_RATE = 1e-3  # Adam's default (Kingma and Ba 2015; torch, optax and fastgd alike)
# 90% of the reduction the reference made: late enough to ask for real training, early enough that a rule does
# not need the reference's very last epochs to get there
SHARE_OF_REDUCTION = 0.9


@dataclass(frozen=True)
class TargetChoice:
    """A target loss and how it was chosen, in words for the report."""

    target_loss: float
    initial_loss: float
    reference_best_loss: float
    how: str


def reference_target(config, dataset):
    """The :class:`TargetChoice` of ``dataset`` (a name of ``config``, a :class:`fastgd.sweep.SweepConfig`).

    The initial loss is the network's training loss at its seed-0 initial weights (an MLP's L2 term included,
    as every epoch's loss is); the reference's best is the lowest loss of its epochs. The network is the
    configuration's for that data set, an MLP or a declared network.
    """
    from fastgd import optim
    from fastgd.datasets import load as load_dataset
    from fastgd.training import Training

    data = load_dataset(dataset, config.sources)
    net, init = config.model(dataset, data)
    theta = init(0)
    initial = float(net.loss(theta, data.X_train, data.Y_train))
    batch_size, n_epochs = config.batch_sizes_of(dataset)[0], config.epochs_of(dataset)
    batch_size = data.X_train.shape[0] if batch_size == "full" else min(int(batch_size), data.X_train.shape[0])
    optimizer = optim.OPTIMIZERS[REFERENCE_RULE](theta, layout=net.layout, lr=REFERENCE_LEARNING_RATE)
    history = Training(net, optimizer, data.X_train, data.Y_train, batch_size, seed=0).run(n_epochs)
    finite = [float(loss) for loss in history.loss if math.isfinite(loss)]
    best = min(finite + [initial])
    # three significant digits: a run's identity holds its target, and a resumed sweep must choose the same one
    # where the reference's last bits differ (a threaded pass agrees with the serial one to rounding only)
    target = float(f"{best + (1 - SHARE_OF_REDUCTION) * (initial - best):.3g}")
    if not target > 0:
        raise ValueError(f"{dataset}: the reference run's losses ({initial:g} initially, best {best:g}) give no "
                         "positive target: give one with --target-loss")
    how = (f"{target:.4g}, chosen for this data set: {SHARE_OF_REDUCTION:.0%} of the way from the initial training "
           f"loss {initial:.4g} to the best, {best:.4g}, that a reference run ({REFERENCE_RULE} at learning rate "
           f"{REFERENCE_LEARNING_RATE:g}, the sweep's network and batch size {batch_size}, seed 0) reached in "
           f"{n_epochs} epochs; no configuration gave one and a fixed number does not fit every data set")
    return TargetChoice(target, initial, best, how)
