"""How late the receivers' event loop runs its callbacks.

Every OTLP request is handled on the event loop; when the loop falls behind (its thread waits for the GIL
behind decoding and detection, or too many requests arrived at once), a request waits there before its
handler runs, and a refusal given only then reaches the client late. A timer re-armed every ``interval``
measures that wait: ``seconds()`` is how late the pending timer already is, or the last one was.
"""

from __future__ import annotations

import asyncio


class LoopLag:
    """Created on the loop it watches; the timer is a plain handle, so a closed loop simply drops it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.05):
        self._loop = loop
        self._interval = interval
        self._last = 0.0
        self._due = loop.time() + interval
        self._handle = loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        now = self._loop.time()
        self._last = max(0.0, now - self._due)
        self._due = now + self._interval
        self._handle = self._loop.call_later(self._interval, self._tick)

    def seconds(self) -> float:
        """Seconds the loop is behind (callable from any thread: the loop's clock is the monotonic one)."""
        return max(self._last, self._loop.time() - self._due)

    def stop(self) -> None:
        self._handle.cancel()
