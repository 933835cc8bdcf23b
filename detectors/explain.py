"""Structured explanations: which events of a window, and which of their tokens, cost the most bits.

``explanation = {"sentence": str, "top_events": [...], "event_bits": [[offset, bits, excess_bits], ...]}``.
``bits`` is an event's code length (with its separator) given the baseline; ``excess_bits`` is ``bits`` minus
what the event's size would cost at the stream's typical rate (the mean bits per byte of recent normal
windows). ``top_events`` lists up to ``TOP_EVENTS`` events with positive excess, largest first, each with
its ``tokens``: the ``TOP_TOKENS`` costliest tokens as ``[token, bits]``; events a field shift blames
(``among``) are marked ``carrier`` and listed whatever their bits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.compressors import CodeLengthModel

TOP_EVENTS = 3
TOP_TOKENS = 5
_TOKEN = re.compile(rb"<[A-Za-z0-9]+>|[^\s=|,;:\"'()\[\]{}<>]+|[^\s]")


def token_spans(event: bytes) -> list[tuple[int, int]]:
    """Byte spans of the tokens of a canonical event (placeholders, words, single punctuation).

    >>> [b"INFO user=<N2> ok"[a:b] for a, b in token_spans(b"INFO user=<N2> ok")]
    [b'INFO', b'user', b'=', b'<N2>', b'ok']
    """
    return [m.span() for m in _TOKEN.finditer(event)]


def token_bits(model: CodeLengthModel, event: bytes) -> list[list[Any]]:
    """The ``TOP_TOKENS`` costliest tokens of ``event`` given the model's baseline, as ``[token, bits]``."""
    spans = token_spans(event)
    per_byte = model.event_byte_bits(event)
    if per_byte is not None:
        cumulative = np.concatenate(([0.0], np.cumsum(per_byte)))
        costs = [float(cumulative[b] - cumulative[a]) for a, b in spans]
    else:
        costs = [model.piece_bits(event[a:b]) for a, b in spans]
    ranked = sorted(range(len(spans)), key=lambda k: (-costs[k], k))[:TOP_TOKENS]
    return [[event[spans[k][0]:spans[k][1]].decode("utf-8", "replace"), round(costs[k], 3)] for k in ranked]


def event_bits_table(start_offset: int, bits: Sequence[float], excess: Sequence[float]) -> list[list[float]]:
    """``[[offset, bits, excess_bits], ...]`` for every event of the window (built for every window, so in
    C loops: pass lists, ``ndarray.tolist()``, rather than arrays).

    >>> event_bits_table(7, [12.5, 3.0], [4.0, -1.5])
    [[7, 12.5, 4.0], [8, 3.0, -1.5]]
    """
    return list(map(list, zip(range(start_offset, start_offset + len(bits)), bits, excess, strict=True)))


def top_events(model: CodeLengthModel, events: list[bytes], start_offset: int, bits: np.ndarray,
               excess: np.ndarray, among: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The window's most novel events (those costing more than usual), or, given ``among`` (the events a
    field shift blames, which may cost no more bits than usual), ``TOP_EVENTS`` of those spread evenly over
    the window, costliest first: the costliest carriers of a shifted value are those whose other fields
    are rare, and an incident explained by them alone would report those other fields as changed."""
    candidates: Sequence[int] = range(len(events))
    if among is not None:
        step = max(len(among) - 1, 0) / max(TOP_EVENTS - 1, 1)
        candidates = sorted({among[round(i * step)] for i in range(min(TOP_EVENTS, len(among)))})
    order = sorted(candidates, key=lambda k: (-float(excess[k]), k))[:TOP_EVENTS]
    carrier = {} if among is None else {"carrier": True}  # blamed for its field, whatever its bits
    return [{"offset": start_offset + k, "excess_bits": float(excess[k]), "bits": float(bits[k]),
             "tokens": token_bits(model, events[k]), **carrier}
            for k in order if among is not None or excess[k] > 0]


def sentence(is_anomaly: bool, is_drift: bool, p_value: float, window: tuple[int, int], n_excess: int,
             tops: list[dict[str, Any]], expected_bpb: float) -> str:
    a, b = window
    if not (is_anomaly or is_drift):
        return f"Events {a}-{b - 1} are consistent with the baseline (p={p_value:.3g})."
    lead = "Persistent change, adopted as the new normal" if is_drift else "Unusual window"
    # below 1e-12 the figure only says "beyond anything the fitted tail allows"; print it as a bound
    shown = "p<1e-12" if p_value < 1e-12 else f"p={p_value:.3g}"
    text = f"{lead}: events {a}-{b - 1}, {shown}; {n_excess} of {b - a} events cost more than usual"
    if tops:
        top = tops[0]
        words = ", ".join(repr(t[0]) for t in top["tokens"][:3])
        text += (f"; the most novel, event {top['offset']}, cost {top['bits']:.0f} bits "
                 f"({top['excess_bits']:.0f} above the usual {expected_bpb:.2f} bits/byte), mostly {words}")
    return text + "."
