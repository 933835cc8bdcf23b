"""Masking of volatile tokens inside free text: one precompiled alternation, scanned once.

Priority (first alternative that matches at a position wins): e-mail, timestamp, UUID, IP address, hex
identifier, number. Numbers are not deleted but bucketed by magnitude: ``<N{d}>`` for an integer with ``d``
significant integer digits (``<N0>`` for zero) and ``<F{d}>`` for a decimal, so "took 12 ms" and "took 45 ms"
share a canonical form while "took 12000 ms" does not.

This runs on the ingest path, so its cost must be linear in the text's length: one hostile value (a 20 MB
token) may cost no more per character than an ordinary one. Every alternative is anchored where a token can
start (a word boundary, or for the e-mail's local part the start of a run of its characters) and consumes
runs possessively, so no position re-scans a run an earlier position already scanned. Text is also cut to
``MAX_MASKED_CHARS`` before the regex runs (marked ``<CUT>``): a longer value carries no more pattern.

``mask_text`` is the reference. The ingest path masks many values at once with ``mask_texts``: ASCII
values in one call of a compiled scanner (``detectors._kernels.mask``, the same output byte for byte, the
GIL released), the rest (any non-ASCII character: Python's ``\\b`` and ``\\d`` are Unicode-aware) with
the regex.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from detectors._kernels import mask as _kernel

_PATTERN = re.compile(
    r"""
    (?P<email>(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]++@[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)++)
    |(?P<ts>\b\d{4}-\d{2}-\d{2}(?:[T\x20]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b
        |\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b)
    |(?P<uuid>\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b)
    |(?P<ip>\b\d{1,3}(?:\.\d{1,3}){3}\b|\b(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}\b)
    |(?P<hex>\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b)
    |(?P<num>(?P<int>\d+)(?P<frac>\.\d+)?)
    """,
    re.VERBOSE | re.IGNORECASE,
)

MAX_MASKED_CHARS = 4096
"""Characters of a text that are masked; the rest is replaced by ``CUT_MARK``."""
CUT_MARK = "<CUT>"
PLACEHOLDERS = {"email": "<EMAIL>", "ts": "<TS>", "uuid": "<UUID>", "ip": "<IP>", "hex": "<HEX>"}
MAX_DIGITS = 20
_INT_TOKENS = [f"<N{d}>" for d in range(MAX_DIGITS + 1)]
_FLOAT_TOKENS = [f"<F{d}>" for d in range(MAX_DIGITS + 1)]


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind in ("num", "int", "frac"):
        digits = min(len(match.group("int").lstrip("0")), MAX_DIGITS)
        return (_FLOAT_TOKENS if match.group("frac") else _INT_TOKENS)[digits]
    return PLACEHOLDERS[kind]  # type: ignore[index]


def mask_text(text: str) -> str:
    """Replace volatile tokens by placeholders and numbers by magnitude buckets.

    >>> mask_text("user 42 from 10.0.0.7 at 2024-05-01T10:00:00Z took 3.5 ms")
    'user <N2> from <IP> at <TS> took <F1> ms'
    >>> mask_text("req 3f2a9c1e-0b7d-4c1a-9e2f-1234567890ab hash deadbeef01")
    'req <UUID> hash <HEX>'
    """
    if len(text) > MAX_MASKED_CHARS:
        return _PATTERN.sub(_replace, text[:MAX_MASKED_CHARS]) + CUT_MARK
    return _PATTERN.sub(_replace, text)


def mask_texts(texts: Sequence[str]) -> list[str]:
    """``[mask_text(t) for t in texts]``, ASCII texts masked together in one kernel call.

    >>> mask_texts(["user 42 from 10.0.0.7", "café 3.5 ms", ""])
    ['user <N2> from <IP>', 'café <F1> ms', '']
    """
    joined = "".join(texts)
    if joined.isascii():
        return _mask_ascii(texts, joined)
    ascii_at = [i for i, t in enumerate(texts) if t.isascii()]
    masked = [t if t.isascii() else mask_text(t) for t in texts]
    if ascii_at:
        ascii_texts = [texts[i] for i in ascii_at]
        for i, m in zip(ascii_at, _mask_ascii(ascii_texts, "".join(ascii_texts)), strict=True):
            masked[i] = m
    return masked


def _mask_ascii(texts: Sequence[str], joined: str) -> list[str]:
    n = len(texts)
    if n == 0:
        return []
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    offs = np.cumsum(lens) - lens
    data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8) if joined else np.zeros(1, dtype=np.uint8)
    out = np.empty(_kernel.out_size(lens), dtype=np.uint8)
    out_offs = np.empty(n, dtype=np.int64)
    out_lens = np.empty(n, dtype=np.int64)
    written = _kernel.mask_batch(data, offs, lens, out, out_offs, out_lens)
    text = out[:written].tobytes().decode("ascii")
    return [text[o:o + m] for o, m in zip(out_offs.tolist(), out_lens.tolist(), strict=True)]


def warm_up() -> None:
    """Compile (or load from numba's cache) the masking kernel."""
    if mask_texts(["warm-up 1 at 10.0.0.1"]) != ["warm-up <N1> at <IP>"]:
        raise RuntimeError("the masking kernel does not mask as the regex does")
