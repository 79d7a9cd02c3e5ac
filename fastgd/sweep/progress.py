"""Progress of a long job: a bar with ETA on a terminal, plain lines elsewhere (logs, CI)."""

import sys
import time

__all__ = ["Progress"]


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """``update(n)`` after each n finished items; ``close()`` at the end."""

    WIDTH = 30
    LINE_EVERY_SECONDS = 10.0

    def __init__(self, total, enabled=True, label="", stream=None):
        self.total, self.done, self.label = total, 0, label
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.terminal = self.stream.isatty()
        self.started = self._last_line = time.monotonic()

    def _eta(self):
        elapsed = time.monotonic() - self.started
        if not self.done:
            return "?"
        return _clock(elapsed / self.done * (self.total - self.done))

    def update(self, n=1):
        self.done += n
        if not self.enabled:
            return
        if self.terminal:
            filled = self.WIDTH * self.done // self.total
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                              f"{self.done}/{self.total} ETA {self._eta()} ")
            self.stream.flush()
        elif self.done == self.total or time.monotonic() - self._last_line >= self.LINE_EVERY_SECONDS:
            self._last_line = time.monotonic()
            self.stream.write(f"{self.label}: {self.done}/{self.total} done, ETA {self._eta()}\n")
            self.stream.flush()

    def close(self):
        if self.enabled and self.terminal:
            self.stream.write(f"\r{self.label} {self.done}/{self.total} done in "
                              f"{_clock(time.monotonic() - self.started)}{' ' * 20}\n")
            self.stream.flush()
