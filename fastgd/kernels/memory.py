"""Yardsticks of memory bandwidth that update rules are held to.

``in_place_streams`` is the ceiling of a step: an update rule reads θ, g and its
state arrays and writes θ and the state back in place, so the fastest it can go
is what a loop that does only that (x ← x + s·g over as many arrays, read-only
g) streams over the same working set. ``triad`` is STREAM's (McCalpin)
a ← b + s·c: on this project's machines its 480 MB working set spills out of a
260 MiB L3 while a 10⁷-parameter step's does not, so it measures main memory,
not a step's ceiling (an Adam step would "reach" 200–300 % of it).
"""

from numba import prange

from fastgd._config import jit

MAX_STREAMS = 5  # θ and four state arrays (Adan, Prodigy): the most a built-in rule writes in place


@jit(parallel=True)
def triad(a, b, c, scalar):
    """a ← b + scalar·c over every element, all threads."""
    for i in prange(a.size):
        a[i] = b[i] + scalar * c[i]


@jit(parallel=True)
def in_place_streams(arrays, grad, scalar):
    """arrays[j] ← arrays[j] + scalar·grad for each row j in one pass, all threads: a step's memory traffic alone.

    ``arrays`` is (k, n) with 1 ≤ k ≤ MAX_STREAMS; it moves (2k + 1) elements per
    index, as a rule writing k arrays in place does. The rows are taken apart
    before the loop, one branch per k, so that each loop vectorises like a
    step's (an inner loop over rows does not).
    """
    k = arrays.shape[0]
    a = arrays[0]
    if k == 1:
        for i in prange(grad.size):
            a[i] += scalar * grad[i]
        return
    b = arrays[1]
    if k == 2:
        for i in prange(grad.size):
            g = scalar * grad[i]
            a[i] += g
            b[i] += g
        return
    c = arrays[2]
    if k == 3:
        for i in prange(grad.size):
            g = scalar * grad[i]
            a[i] += g
            b[i] += g
            c[i] += g
        return
    d = arrays[3]
    if k == 4:
        for i in prange(grad.size):
            g = scalar * grad[i]
            a[i] += g
            b[i] += g
            c[i] += g
            d[i] += g
        return
    e = arrays[4]
    for i in prange(grad.size):
        g = scalar * grad[i]
        a[i] += g
        b[i] += g
        c[i] += g
        d[i] += g
        e[i] += g
