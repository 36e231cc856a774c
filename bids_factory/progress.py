"""Progress: a one-line bar on a terminal, plain log lines in CI, containers and pipes."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("bids_factory")


class Progress:
    def __init__(self, total: int, unit: str, stream=None):
        self.total, self.unit, self.done = total, unit, 0
        self.stream = stream or sys.stderr
        self.bar = bool(getattr(self.stream, "isatty", lambda: False)()) and log.isEnabledFor(logging.INFO)

    def step(self, message: str) -> None:
        self.done += 1
        if self.bar:
            width = 30
            filled = width * self.done // max(self.total, 1)
            line = f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.unit} {message}"
            self.stream.write(line[:120].ljust(120))
            self.stream.flush()
        else:
            log.info("%s %d/%d: %s", self.unit, self.done, self.total, message)

    def close(self) -> None:
        if self.bar and self.done:
            self.stream.write("\n")
            self.stream.flush()
