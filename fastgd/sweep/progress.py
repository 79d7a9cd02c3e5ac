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

    ``work``: the work of each item, in any unit (a sweep's runs: epochs × rows × a sample's multiply-adds, see
    :func:`fastgd.sweep.runner.run_work`), given with ``update(n, work=...)``: the rate is then of work, not of
    items, so that a suite whose last problem costs a thousand times its first is not promised its end a minute
    away. Without it, every item counts as one.

    ``groups``: how many groups of items compile code of their own (a sweep's rules, see
    :func:`fastgd.sweep.runner.compile_group`), each update saying how many it started (``new_groups``) and the
    seconds its items spent compiling (``compile_seconds``, summed over ``workers`` processes working side by
    side). The rate of work then leaves compiling out, and the ETA adds the mean compile of a group for each
    group still to start: a sweep of 29 rules whose first rules ran compiled-and-done in seconds would otherwise
    be promised its end long before the other rules have compiled (and one whose first chunks were all
    compiling, long after).
    """

    WIDTH = 30
    LINE_EVERY_SECONDS = 10.0
    MIN_ITEMS_FOR_ETA = 3

    def __init__(self, total, enabled=True, label="", stream=None, work=None, groups=None, workers=1):
        self.total, self.done, self.label = total, 0, label
        self.total_work = float(total if work is None else work)
        self.work_done = 0.0
        self.groups, self.groups_started, self.workers = groups, 0, max(int(workers), 1)
        self.compile_seconds = 0.0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.terminal = self.stream.isatty()
        self.started = self._last_line = time.monotonic()
        # (items done, time, work done, compile seconds) at the first update: the rate is measured from there
        self._first = None

    def _eta(self):
        """The time left, or None while there are too few items to tell."""
        if self.done >= self.total:
            return _clock(0)
        if self._first is None:
            return None
        if self.done - self._first[0] < self.MIN_ITEMS_FOR_ETA:
            return None
        work = self.work_done - self._first[2]
        if not work > 0:
            return None
        # wall seconds of work alone: the compiling of the updates since the first, shared by the workers
        working = max(time.monotonic() - self._first[1] - (self.compile_seconds - self._first[3]) / self.workers, 0.0)
        seconds = working / work * max(self.total_work - self.work_done, 0.0)
        if self.groups is not None and self.groups_started:
            compiling = self.compile_seconds / self.groups_started  # a group's mean, from every update
            seconds += compiling * max(self.groups - self.groups_started, 0) / self.workers
        return _clock(seconds)

    def update(self, n=1, work=None, compile_seconds=0.0, new_groups=0):
        self.done += n
        self.work_done += n if work is None else work
        self.compile_seconds += compile_seconds
        self.groups_started += new_groups
        if self._first is None:
            self._first = (self.done, time.monotonic(), self.work_done, self.compile_seconds)
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
