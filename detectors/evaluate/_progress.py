"""A one-line progress indicator on stderr for long evaluation runs."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int, enabled: bool = True) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.done = 0
        self._t0 = time.monotonic()
        self._last = 0.0

    def step(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.5 or self.done >= self.total):
            self._last = now
            elapsed = now - self._t0
            sys.stderr.write(f"\r{self.label}: {self.done}/{self.total} ({elapsed:.0f}s) {note[:40]:40s}")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
