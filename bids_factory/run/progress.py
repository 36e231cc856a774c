"""Progress: a one-line bar on a terminal, plain log lines in CI, containers and pipes."""

from __future__ import annotations

import logging
import sys
import time

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


class Phases:
    """The run's phases by name (discover, convert, place, EHR, dataset files, validator, report).

    Each phase is announced when it starts, so no step of a run is silent: on a terminal on the progress
    line (overwritten by the next), elsewhere as a plain log line. ``durations`` keeps seconds per phase.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bar = bool(getattr(self.stream, "isatty", lambda: False)()) and log.isEnabledFor(logging.INFO)
        self.durations: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def start(self, name: str, detail: str = "") -> None:
        self._finish()
        self._current = (name, time.monotonic())
        text = f"{name}: {detail}" if detail else f"{name}..."
        if self.bar:
            self.stream.write(f"\r{text}"[:120].ljust(120))
            self.stream.flush()
        else:
            log.info("%s", text)

    def done(self, name: str, detail: str) -> None:
        """Announce a phase that has already run (its line says what it found)."""
        self.start(name, detail)

    def _finish(self) -> None:
        if self._current:
            name, began = self._current
            self.durations[name] = self.durations.get(name, 0.0) + time.monotonic() - began
            self._current = None

    def close(self) -> None:
        self._finish()
        if self.bar:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()
        log.debug("phases: %s", ", ".join(f"{n} {s:.1f} s" for n, s in self.durations.items()))
