"""A monotonic wall clock readable from compiled code (``clock_gettime``), for per-epoch timings
of runs trained inside one compiled call. Linux and macOS."""

import sys

from numba import types

from fastgd._config import jit

_clock_gettime = types.ExternalFunction("clock_gettime", types.intc(types.intc, types.voidptr))
# CLOCK_MONOTONIC: 1 on Linux, 6 on macOS
_MONOTONIC = 6 if sys.platform == "darwin" else 1


@jit
def monotonic_seconds(timespec):
    """Seconds on a monotonic clock; ``timespec`` is a scratch int64 array of length 2."""
    _clock_gettime(_MONOTONIC, timespec.ctypes)
    return timespec[0] + timespec[1] * 1e-9
