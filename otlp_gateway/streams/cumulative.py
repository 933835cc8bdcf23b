"""Cumulative metric points as per-interval deltas, per series of a stream (what the OpenTelemetry
Collector's ``cumulativetodelta`` processor does, kept inside the gateway's live stream).

Cumulative temporality is the SDKs' default: a counter arrives as its running total, which the numeric
detector would see as a ramp, and a client restart (the total back to 0, a new start time) as a cliff. Per
series (``CumulativePoint.series``) the stream remembers the previous point and feeds the difference:

- the first point of a series is a reference only (skipped, reason ``cumulative_reference``);
- a new start time, or a drop of a monotonic total, is a reset: the point becomes the new reference
  (skipped, ``cumulative_reset``) rather than a negative jump;
- a point not newer than the series' last one (out of order, or sent twice) is skipped (``out_of_order``)
  and leaves the state alone;
- a histogram's ``mean`` is delta sum / delta count, skipped (``empty_interval``) when no value came in.

The state is the previous point of at most ``MAX_SERIES`` series per stream, least recently used first out
(``evicted`` counts them; an evicted series starts again from a reference). It depends only on the points
in arrival order, so the same points split into requests differently give the same deltas, and it is part
of the stream's snapshot.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from otlp_gateway.otlp.extract import CumulativePoint

MAX_SERIES = 4096
"""Series remembered per stream; a restarting client adds one (a new ``service.instance.id``) each time."""
REFERENCE, RESET, OUT_OF_ORDER, EMPTY_INTERVAL = ("cumulative_reference", "cumulative_reset", "out_of_order",
                                                  "empty_interval")


@dataclass(slots=True)
class _Last:
    start_ns: int
    time_ns: int
    total: float
    count: float | None


@dataclass(slots=True)
class Deltas:
    """What one batch became: the indices of the points kept, their values, and why the rest were left out."""

    kept: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    evicted: int = 0


class CumulativeDeltas:
    """The previous point of each cumulative series of one stream (used on the stream's shard thread)."""

    def __init__(self, max_series: int = MAX_SERIES) -> None:
        self.max_series = max(1, max_series)
        self._last: OrderedDict[str, _Last] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def convert(self, values: Sequence[float], times: Sequence[int],
                points: Sequence[CumulativePoint | None]) -> Deltas:
        """The values to score for one batch (lists aligned); points without ``CumulativePoint`` pass as
        they are."""
        out = Deltas()
        for i, (value, time_ns, point) in enumerate(zip(values, times, points, strict=True)):
            if point is None:
                out.kept.append(i)
                out.values.append(value)
                continue
            reason, delta = self._step(point, time_ns, out)
            if reason is None:
                out.kept.append(i)
                out.values.append(delta)
            else:
                out.skipped[reason] = out.skipped.get(reason, 0) + 1
        return out

    def _step(self, p: CumulativePoint, time_ns: int, out: Deltas) -> tuple[str | None, float]:
        for number in (p.total, p.count):
            if number is not None and not math.isfinite(number):
                # fed as it is, so the detector counts it (nan/inf); it must not become a reference
                return None, number
        last = self._last.get(p.series)
        if last is None:
            self._remember(p, time_ns, out)
            return REFERENCE, 0.0
        self._last.move_to_end(p.series)
        if time_ns and last.time_ns and time_ns <= last.time_ns:
            return OUT_OF_ORDER, 0.0
        dropped = p.total < last.total or (p.count is not None and last.count is not None
                                           and p.count < last.count)
        if (p.start_ns and last.start_ns and p.start_ns != last.start_ns) or (p.monotonic and dropped):
            self._remember(p, time_ns, out)
            return RESET, 0.0
        d_total = p.total - last.total
        d_count = 0.0 if p.count is None or last.count is None else p.count - last.count
        self._remember(p, time_ns, out)
        if p.part == "count":
            return None, float(d_count)
        if p.part == "mean":
            return (EMPTY_INTERVAL, 0.0) if d_count <= 0 else (None, d_total / d_count)
        return None, float(d_total)

    def _remember(self, p: CumulativePoint, time_ns: int, out: Deltas) -> None:
        if p.series not in self._last and len(self._last) >= self.max_series:
            self._last.popitem(last=False)
            out.evicted += 1
        self._last[p.series] = _Last(p.start_ns, time_ns, p.total, p.count)
        self._last.move_to_end(p.series)

    # --- persistence (part of the live stream's snapshot header, JSON), least recently used first
    def dump(self) -> list[list[Any]]:
        return [[series, s.start_ns, s.time_ns, s.total, s.count] for series, s in self._last.items()]

    @classmethod
    def load(cls, data: list[list[Any]] | None, max_series: int = MAX_SERIES) -> CumulativeDeltas:
        state = cls(max_series)
        for series, start_ns, time_ns, total, count in (data or [])[-state.max_series:]:
            state._last[str(series)] = _Last(int(start_ns), int(time_ns), total,
                                             None if count is None else count)
        return state
