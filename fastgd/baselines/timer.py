"""The measurement layer's one timer, and the check that what it timed did not diverge."""

import math
import time

import numpy as np

__all__ = ["seconds_per_call", "per_call_seconds", "finite"]


def seconds_per_call(function, budget_seconds, min_repeats=3, statistic=np.median):
    """Median (or ``statistic``) seconds of one call of an already warmed ``function``, over
    :func:`per_call_seconds`'s batches."""
    return float(statistic(per_call_seconds(function, budget_seconds, min_repeats)))


def per_call_seconds(function, budget_seconds, min_repeats=3):
    """Seconds of one call of an already warmed ``function``, one value per batch of calls.

    Calls are timed in batches, ten times longer until a batch lasts a millisecond (well above
    the clock's resolution); batches repeat until ``budget_seconds`` have passed, at least
    ``min_repeats`` times. Their spread is the timing's noise.
    """
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= 1e-3:
            break
        number *= 10
    deadline = start + budget_seconds
    per_call = [elapsed / number]
    while len(per_call) < min_repeats or time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(number):
            function()
        per_call.append((time.perf_counter() - start) / number)
    return per_call


def finite(loss):
    """``loss``, or RuntimeError: a diverged epoch times nothing meaningful (fastgd's stops at the first NaN)."""
    if not math.isfinite(loss):
        raise RuntimeError(f"training diverged (loss {loss}): lower the learning rate")
    return loss
