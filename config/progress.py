"""A progress bar for long management commands: redrawn in place on a terminal, a line per step otherwise."""

import sys
import time


class Progress:
    def __init__(self, total: int, label: str, stream=None, width: int = 30):
        self.total = max(total, 0)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.started = time.monotonic()
        self._interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_reported = -1

    def advance(self, step: int = 1) -> None:
        self.done += step
        self._draw()

    def reach(self, done: int) -> None:
        """Where a step that counts by itself has got to (more than the total estimated stays full)."""
        self.done = done
        self._draw()

    def _draw(self) -> None:
        share = min(1.0, self.done / self.total) if self.total else 1.0
        rate = self.done / max(time.monotonic() - self.started, 1e-6)
        line = (
            f"{self.label} [{'#' * int(share * self.width):<{self.width}}] "
            f"{self.done}/{self.total} {share:4.0%} {rate:6.1f}/s"
        )
        if self._interactive:
            self.stream.write("\r" + line)
            self.stream.flush()
        elif int(share * 10) > self._last_reported:  # every tenth, for logs
            self._last_reported = int(share * 10)
            self.stream.write(line + "\n")

    def close(self) -> None:
        if self._interactive:
            self.stream.write("\n")
        self.stream.flush()
