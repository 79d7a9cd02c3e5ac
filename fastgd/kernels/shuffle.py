"""Reproducible shuffling inside compiled code.

A counter-based generator (SplitMix64, Steele et al. 2014) keyed by
(seed, epoch): the order of an epoch depends on nothing else, not on the
thread that runs it nor on what ran before, so runs trained side by side in a
``prange`` loop give bit-for-bit the runs trained one at a time.
"""

import numpy as np

from fastgd._config import jit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@jit(inline=True)
def splitmix64(state):
    """(next state, 64 random bits)."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@jit
def shuffle_for_epoch(order, seed, epoch):
    """Fill ``order`` with a permutation of 0..n-1 fixed by (seed, epoch) (Fisher-Yates)."""
    n = order.size
    for i in range(n):
        order[i] = i
    state, _ = splitmix64(np.uint64(seed) * _GOLDEN ^ np.uint64(epoch))
    for i in range(n - 1, 0, -1):
        state, bits = splitmix64(state)
        j = np.int64(bits % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
