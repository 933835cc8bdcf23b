"""A stream's score series: every scored window summed into buckets of ``SCORE_BUCKET_SECONDS`` event time.

Kept per live stream on its shard thread. A bucket's values are cumulative (windows, anomalous windows,
lowest p-value, highest score), so the store upserts the latest state of each bucket and a late replay of
an older state (fewer windows) loses: writes stay idempotent. The buckets touched by a batch are handed
out after it (``take``); the incident sink coalesces them before writing.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from otlp_gateway.store.base import SCORE_BUCKET_SECONDS, ScoreBucket

BUCKET_NS = SCORE_BUCKET_SECONDS * 1_000_000_000
KEPT_BUCKETS = 6
"""Recent buckets remembered (windows whose event times step back a little still add to theirs)."""


@dataclass(slots=True)
class _Bucket:
    at: dt.datetime
    """The bucket's start (made once: ``take`` hands it out after every batch)."""
    windows: int = 0
    anomalous: int = 0
    min_p: float = 1.0
    max_score: float = 0.0


class ScoreSeries:
    """The recent buckets of one stream (shard thread only)."""

    def __init__(self, stream_id: str):
        self.stream_id = stream_id
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()
        self._touched: set[int] = set()

    def add(self, time_ns: int, p_value: float, score: float, anomalous: bool) -> None:
        start = time_ns - time_ns % BUCKET_NS
        bucket = self._buckets.get(start)
        if bucket is None:
            bucket = self._buckets[start] = _Bucket(_at(start))
            while len(self._buckets) > KEPT_BUCKETS:
                oldest, _ = self._buckets.popitem(last=False)
                self._touched.discard(oldest)  # already handed out when it was touched
        bucket.windows += 1
        bucket.anomalous += int(anomalous)
        bucket.min_p = min(bucket.min_p, p_value)
        bucket.max_score = max(bucket.max_score, score)
        self._touched.add(start)

    def take(self) -> list[ScoreBucket]:
        """The current state of every bucket touched since the last call."""
        touched = self._touched
        if not touched:
            return []
        out = [ScoreBucket(self.stream_id, b.at, b.windows, b.anomalous, b.min_p, b.max_score)
               for start, b in self._buckets.items() if start in touched]
        self._touched.clear()
        return out

    # --- persistence (part of a stream snapshot)
    def dump(self) -> list[list[Any]]:
        return [[start, b.windows, b.anomalous, b.min_p, b.max_score] for start, b in self._buckets.items()]

    @classmethod
    def load(cls, stream_id: str, data: list[list[Any]] | None) -> ScoreSeries:
        series = cls(stream_id)
        for start, windows, anomalous, min_p, max_score in data or ():
            series._buckets[int(start)] = _Bucket(_at(int(start)), int(windows), int(anomalous), float(min_p),
                                                  float(max_score))
        return series


def _at(start_ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=start_ns // 1000)
