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

    ``seconds``: where the items' own time is measured where they ran (a sweep's chunks, in their worker
    processes), each update gives it with the part spent compiling (``compile_seconds``) and the number of
    ``groups`` of items that compile code of their own it started (``new_groups``; a sweep's rules, see
    :func:`fastgd.sweep.runner.compile_group`). The ETA is then a model of those times, not a rate of the wall
    clock: an update's seconds less its compiling are fitted, by non-negative least squares over the updates, as
    a cost per item plus a cost per unit of work (a chunk's start, its data and its store, then its epochs), and
    the ETA is that cost of the items and work left, plus a group's mean compiling for each group still to start,
    shared by ``workers`` working side by side, and stretched by how much longer the wall clock took since the
    start than the items' own seconds say (the parent storing results, the processes' traffic). A cold
    sweep of 29 rules spends minutes compiling its first chunks and seconds on the rest: a rate of the wall clock
    first promised it ages, then seconds once the compiled runs raced ahead.
    """

    WIDTH = 30
    # the work-per-item spread from which the chunks tell a run's cost from its work's, and the most a unit of work
    # (a multiply-add of a sweep's epochs) is taken to cost until they do: about a nanosecond on these machines
    # (the 2c2d's runs in the suite: 3.6 s a run and epoch for 2e9 multiply-adds)
    IDENTIFIED_SPREAD = 2.0
    PRIOR_SECONDS_PER_WORK = 1e-9
    LINE_EVERY_SECONDS = 10.0
    MIN_ITEMS_FOR_ETA = 3

    def __init__(self, total, enabled=True, label="", stream=None, work=None, groups=None, workers=1):
        self.total, self.done, self.label = total, 0, label
        self.total_work = float(total if work is None else work)
        self.work_done = 0.0
        self.groups, self.groups_started, self.workers = groups, 0, max(int(workers), 1)
        self.compile_seconds = 0.0
        self._measured = []  # (items, work, seconds less compiling, compiling) of each update that gave its seconds
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.terminal = self.stream.isatty()
        self.started = self._last_line = time.monotonic()
        self._first = None  # (items done, time, work done) at the first update: the rate is measured from there
        self._first_chunk_began = self.started  # when the first update's items began (with their ``seconds``)

    def _eta(self):
        """The time left, or None while there are too few items to tell."""
        if self.done >= self.total:
            return _clock(0)
        if self._measured:
            return self._modelled_eta()
        if self._first is None:
            return None
        if self.done - self._first[0] < self.MIN_ITEMS_FOR_ETA:
            return None
        work = self.work_done - self._first[2]
        if not work > 0:
            return None
        return _clock((time.monotonic() - self._first[1]) / work * max(self.total_work - self.work_done, 0.0))

    def _modelled_eta(self):
        """The ETA from the items' own seconds (see the class's docstring); None until MIN_ITEMS_FOR_ETA updates."""
        import numpy as np
        from scipy.optimize import nnls

        if len(self._measured) < self.MIN_ITEMS_FOR_ETA:
            return None
        items, work, seconds, _ = (np.array(column, dtype=float) for column in zip(*self._measured))
        ratios = work / np.maximum(items, 1.0)
        if ratios.max() > self.IDENTIFIED_SPREAD * ratios.min():
            columns = np.column_stack([items, work])
            scale = np.linalg.norm(columns, axis=0)
            scale[scale == 0] = 1.0
            per_item, per_work = nnls(columns / scale, seconds)[0] / scale
        else:
            # chunks of one kind so far (a sweep starts on its smallest data set): a fit cannot tell a run's
            # cost from its work's (putting it all on the work promised half an hour for 90 s of iris, then
            # digits; all on the runs, seconds for the suite's 2c2d): a unit of work costs the prior, the rest is
            # the runs'. The prior is at most what the chunks cost a unit of work in all: a sweep now starts on its
            # largest chunks (the suite's 2c2d, float32: 7e-11 s a unit, AMD EPYC Zen 4), whose cost at the prior
            # put 58 minutes on the 6 minutes of the suite's final runs
            per_work = min(self.PRIOR_SECONDS_PER_WORK, float(np.sum(seconds) / np.sum(work))) if np.sum(work) > 0 \
                else self.PRIOR_SECONDS_PER_WORK
            per_item = max(float(np.sum(seconds - per_work * work) / np.sum(items)), 0.0)
        left = per_item * (self.total - self.done) + per_work * max(self.total_work - self.work_done, 0.0)
        if self.groups is not None and self.groups_started:
            left += self.compile_seconds / self.groups_started * max(self.groups - self.groups_started, 0)
        # what the chunks' own clocks miss (the parent storing results, the processes' traffic, a load that keeps
        # a worker waiting): the wall clock since the start over every chunk's seconds, compiling included (from
        # the first update only, a worker still compiling its first chunk, unreported, made the ratio explode)
        # The clock starts when the first chunk reported began, not at the phase's start: the workers' own start
        # (a new process's imports, its data) before any chunk runs is a one-off, which spread over a phase's first
        # three chunks made a 6 s phase promise 3:29 (make demo's final runs, AMD EPYC)
        measured = sum(seconds + compiling for _, _, seconds, compiling in self._measured) / self.workers
        wall = time.monotonic() - max(self.started, self._first_chunk_began)
        slower = wall / measured if measured > 0 and wall > measured else 1.0
        return _clock(left / self.workers * slower)

    def update(self, n=1, work=None, compile_seconds=0.0, new_groups=0, seconds=None):
        self.done += n
        self.work_done += n if work is None else work
        self.compile_seconds += compile_seconds
        self.groups_started += new_groups
        if seconds is not None:
            self._measured.append((n, n if work is None else work, max(seconds - compile_seconds, 0.0),
                                   min(compile_seconds, seconds)))
        if self._first is None:
            self._first = (self.done, time.monotonic(), self.work_done)
            self._first_chunk_began = time.monotonic() - (seconds or 0.0)
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
