"""Whole epochs of a declared network's training in one compiled call: shuffle, gather, pass, update.

The network enters as its plan (:mod:`fastgd.kernels.network`), the rule as its ``packed_step_entry``
C callback with its packed arguments, as :func:`fastgd.kernels.train.train_epoch` takes them for the
MLP (a 2-D state array, an auxiliary vector, float64 hyperparameters whose last entry the schedule
sets, float64 counters, the layout of θ's tensors). Every buffer comes from the caller; an epoch
allocates nothing.
"""

import math

import numpy as np

from fastgd._config import jit
from fastgd.kernels.network import loss_and_gradient
from fastgd.kernels.schedules import learning_rate_scale
from fastgd.kernels.shuffle import shuffle_for_epoch

__all__ = ["train_epoch"]


@jit(inline=True)
def _gather_rows(source, order, start, stop, buffer):
    """Rows order[start:stop] of ``source`` (n × columns), one after another into ``buffer``."""
    n_columns = source.shape[1]
    for row in range(stop - start):
        line = source[order[start + row]]
        block = buffer[row * n_columns:(row + 1) * n_columns]
        for column in range(n_columns):
            block[column] = line[column]


@jit(exact=True)
def train_epoch(theta, X, Y, plan, loss, rule_step, hyper, base_lr, states, aux, counters, layout, schedule,
                batch_size, shuffle, seed, epoch, order, grad, activations, deltas, columns, batch_X, batch_Y):
    """One epoch over (X, Y), X (n × input size) and Y (n × outputs); returns the mean of its batches' losses.

    Each batch's loss is taken before its update and weighted by its rows. The batches are the rows
    in :func:`fastgd.kernels.shuffle.shuffle_for_epoch`'s order for (``seed``, ``epoch``) when
    ``shuffle``, else in order; a batch of all n rows takes them in order. Stops at the first batch
    whose loss is not finite and returns it. Workspaces: ``order`` (n int64), ``grad`` (θ's size),
    ``activations``, ``deltas`` and ``columns`` (:func:`fastgd.kernels.network.workspace_elements`
    for ``batch_size`` rows), ``batch_X`` and ``batch_Y`` (``batch_size`` rows each).
    """
    n_samples = X.shape[0]
    if shuffle and batch_size < n_samples:
        shuffle_for_epoch(order, seed, epoch)
    else:
        for i in range(n_samples):
            order[i] = i
    total = 0.0
    for start in range(0, n_samples, batch_size):
        stop = min(start + batch_size, n_samples)
        _gather_rows(X, order, start, stop, batch_X)
        _gather_rows(Y, order, start, stop, batch_Y)
        value = loss_and_gradient(theta, batch_X, batch_Y, stop - start, plan, loss, grad, activations, deltas,
                                  columns)
        if not math.isfinite(value):
            return value
        total += value * (stop - start)
        # the last hyperparameter slot scales every learning rate of the rule
        hyper[hyper.size - 1] = learning_rate_scale(base_lr, schedule, epoch, np.int64(counters[0]) + 1)
        rule_step(theta, grad, states, aux, hyper, counters, layout)
    return total / n_samples
