"""Progress of a long job: a bar with ETA on a terminal, plain lines elsewhere (logs, CI)."""

import sys
import time

__all__ = ["Progress"]


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """``update(n)`` after each n finished items; ``close()`` at the end.

    The ETA is the rate of the items finished since the first update, over those left. The first update is left
    out of the rate: its items carry the one-off costs (compiling, loading the data, starting the workers), which
    made a sweep of 108 s first promise 1:09:30. Until :data:`MIN_ITEMS_FOR_ETA` items have finished after it, no
    ETA is shown.
    """

    WIDTH = 30
    LINE_EVERY_SECONDS = 10.0
    MIN_ITEMS_FOR_ETA = 3

    def __init__(self, total, enabled=True, label="", stream=None):
        self.total, self.done, self.label = total, 0, label
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.terminal = self.stream.isatty()
        self.started = self._last_line = time.monotonic()
        self._first = None  # (items done, time) at the first update: the rate is measured from there

    def _eta(self):
        """The time left, or None while there are too few items to tell."""
        if self.done >= self.total:
            return _clock(0)
        if self._first is None:
            return None
        items = self.done - self._first[0]
        if items < self.MIN_ITEMS_FOR_ETA:
            return None
        return _clock((time.monotonic() - self._first[1]) / items * (self.total - self.done))

    def update(self, n=1):
        self.done += n
        if self._first is None:
            self._first = (self.done, time.monotonic())
        if not self.enabled:
            return
        eta = self._eta()
        if self.terminal:
            filled = self.WIDTH * self.done // self.total
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                              f"{self.done}/{self.total}" + (f" ETA {eta} " if eta else " " * 13))
            self.stream.flush()
        elif self.done == self.total or time.monotonic() - self._last_line >= self.LINE_EVERY_SECONDS:
            self._last_line = time.monotonic()
            self.stream.write(f"{self.label}: {self.done}/{self.total} done" + (f", ETA {eta}" if eta else "")
                              + "\n")
            self.stream.flush()

    def close(self):
        if self.enabled and self.terminal:
            self.stream.write(f"\r{self.label} {self.done}/{self.total} done in "
                              f"{_clock(time.monotonic() - self.started)}{' ' * 20}\n")
            self.stream.flush()
