"""Byte events laid out flat, as the kernels read them."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Events(NamedTuple):
    """Event ``i`` is ``buf[starts[i]:ends[i]]`` (its separator is implied, never stored)."""

    buf: np.ndarray
    """uint8: the events' bytes, concatenated."""
    starts: np.ndarray
    """int64: where each event starts in ``buf``."""
    ends: np.ndarray
    """int64: where each event ends in ``buf``."""


def layout(events: list[bytes]) -> Events:
    """The flat layout of ``events``."""
    lens = np.fromiter(map(len, events), dtype=np.int64, count=len(events))
    ends = np.cumsum(lens)
    return Events(np.frombuffer(b"".join(events), dtype=np.uint8), ends - lens, ends)
