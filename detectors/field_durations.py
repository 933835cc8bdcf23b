"""Span durations for explanations: exact nanoseconds when the caller has them, else log2 buckets.

A canonical span keeps only its duration bucket ``D<b>`` ([2^(b-1), 2^b) µs; ``D0`` under 1 µs). From
buckets alone a percentile is interpolated inside its bucket on the log scale (the grouped-data median), so
a median that sits at a bucket edge does not jump by x 2 when a few spans cross the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Durations:
    """The durations of a sample of spans: always their buckets, and their exact values when known."""

    buckets: np.ndarray
    """int64 bucket ``b`` of each span."""
    exact_ns: np.ndarray | None = None
    """float64 nanoseconds of each span (same order), or None when only buckets are known."""

    @property
    def size(self) -> int:
        return int(self.buckets.size)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile in nanoseconds (exact, or interpolated on the log scale in its bucket).

        >>> round(Durations(np.array([16, 16, 16, 16])).percentile(50.0) / 1e6, 1)  # D16: [32.8, 65.5) ms
        46.3
        """
        if self.exact_ns is not None:
            return float(np.percentile(self.exact_ns, q))
        counts = np.bincount(np.clip(self.buckets, 0, 127))
        rank = q / 100.0 * self.size
        below = np.concatenate(([0], np.cumsum(counts)))
        b = int(np.searchsorted(below[1:], rank, side="left"))
        b = min(b, counts.size - 1)
        inside = (rank - below[b]) / counts[b] if counts[b] else 0.5
        # bucket b spans log2(us) in [b-1, b); D0 (under 1 us) is given [-1, 0)
        return 1_000.0 * 2.0 ** (b - 1 + float(np.clip(inside, 0.0, 1.0)))

    def beyond(self, edge_ns: float, slower: bool) -> int:
        """How many spans are surely slower (faster) than ``edge_ns``: from buckets, whole buckets only."""
        if self.exact_ns is not None:
            return int(np.sum(self.exact_ns > edge_ns) if slower else np.sum(self.exact_ns < edge_ns))
        lower_ns = np.where(self.buckets > 0, 1_000.0 * 2.0 ** (self.buckets - 1.0), 0.0)
        upper_ns = 1_000.0 * 2.0 ** self.buckets.astype(np.float64)
        return int(np.sum(lower_ns >= edge_ns) if slower else np.sum(upper_ns <= edge_ns))

    def bucket_counts(self) -> dict[int, int]:
        values, counts = np.unique(self.buckets, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


__all__ = ["Durations"]
