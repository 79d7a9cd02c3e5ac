"""The STREAM triad (McCalpin), the yardstick of memory bandwidth that update rules are held to."""

from numba import prange

from fastgd._config import jit


@jit(parallel=True)
def triad(a, b, c, scalar):
    """a ← b + scalar·c over every element, all threads."""
    for i in prange(a.size):
        a[i] = b[i] + scalar * c[i]
