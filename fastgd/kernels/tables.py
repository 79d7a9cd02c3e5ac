"""A table of numbers made into a standardised train/test split, each output array written once.

pandas keeps a table's numeric columns as one block, ``columns`` of shape
(n_columns, n_rows), C-ordered: a column is contiguous. A network trains on
rows, (n_rows, n_columns) C-ordered, in the order the split drew them. Taking
rows from the block with NumPy (``block.T[train]``) gathers each row from
n_columns places far apart, in the split's random order, and standardising
the rows afterwards is another pass and, with a scaler that copies, another
array. Here the block is read three times and each output written once:
:func:`training_moments` reads each column twice (its training rows'
mean, then their squared deviations), and :func:`scatter_standardised` reads
every row once and writes it, standardised, where the split puts it. Nothing
the size of the table is allocated besides the two outputs: writing fresh
memory costs more than this arithmetic (0.2 to 3 s per GB on the machine
fastgd is benchmarked on, by the size of its pages).

``destination[r]`` is where source row ``r`` goes: row ``destination[r]`` of
the training part when it is below ``n_train``, else row
``destination[r] - n_train`` of the test part.
"""

import numpy as np
from numba import prange

from fastgd._config import jit

__all__ = ["SUM_BLOCK_ROWS", "training_moments", "scatter_standardised"]

# rows summed on their own before their sum joins the column's: the rounding error of a mean then grows with
# the block's length plus the number of blocks, not with the number of rows
SUM_BLOCK_ROWS = 4096


@jit(parallel=True, exact=True)
def training_moments(columns, destination, n_train):
    """Each column's mean over its training rows, and the sum of their squared deviations from that mean.

    Two passes per column, as scikit-learn's ``StandardScaler`` takes them: the
    mean, then the squared deviations less the square of the deviations' sum
    over ``n_train`` (the corrected two-pass algorithm, Chan, Golub and LeVeque
    1983), which takes back most of the mean's own rounding error. A column is
    one thread's, so the sums do not depend on the number of threads. The
    values must be finite: a test row counts as its value times 0.
    ``(mean, squares)``, each of length n_columns; the variance is
    ``squares / n_train``.
    """
    n_columns, n_rows = columns.shape
    # 1 for a training row, 0 for a test row: multiplied in rather than branched on, since the split
    # draws rows at random and a branch on it is mispredicted a quarter of the time (4x slower here)
    in_training = np.empty(n_rows)
    for row in prange(n_rows):
        in_training[row] = 1.0 if destination[row] < n_train else 0.0
    mean = np.empty(n_columns)
    squares = np.empty(n_columns)
    for column in prange(n_columns):
        values = columns[column]
        total = 0.0
        for start in range(0, n_rows, SUM_BLOCK_ROWS):
            block = 0.0
            for row in range(start, min(start + SUM_BLOCK_ROWS, n_rows)):
                block += in_training[row] * values[row]
            total += block
        column_mean = total / n_train
        deviations = 0.0
        squared = 0.0
        for start in range(0, n_rows, SUM_BLOCK_ROWS):
            block_deviations = 0.0
            block_squared = 0.0
            for row in range(start, min(start + SUM_BLOCK_ROWS, n_rows)):
                deviation = in_training[row] * (values[row] - column_mean)
                block_deviations += deviation
                block_squared += deviation * deviation
            deviations += block_deviations
            squared += block_squared
        mean[column] = column_mean
        squares[column] = squared - deviations * deviations / n_train
    return mean, squares


@jit(parallel=True, exact=True)
def scatter_standardised(columns, destination, mean, scale, X_train, X_test):
    """Write each source row, standardised (``(value - mean) / scale`` per column), to its place in X_train or X_test.

    The source rows are read in order (a thread takes a run of them), so each
    column's values stream through the cache; a row is written whole, its
    values side by side. The arithmetic is the scaler's (subtract, then divide),
    so a value comes out as ``StandardScaler.transform`` makes it from the same
    mean and scale. True when every value written is finite: a value near the
    largest float less a mean of the other sign overflows.
    """
    n_columns, n_rows = columns.shape
    n_train = X_train.shape[0]
    overflow = 0.0  # stays 0 while every value is finite: inf * 0 and nan * 0 are nan
    for row in prange(n_rows):
        place = destination[row]
        written = X_train[place] if place < n_train else X_test[place - n_train]
        row_overflow = 0.0
        for column in range(n_columns):
            value = (columns[column, row] - mean[column]) / scale[column]
            written[column] = value
            row_overflow += value * 0.0
        overflow += row_overflow
    return overflow == 0.0
