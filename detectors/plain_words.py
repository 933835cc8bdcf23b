"""Numbers and canonical tokens in words a person reads without knowing the engine.

Also the check that a sentence carries no engine token (``engine_tokens``): duration buckets (``D19``,
``d=D19``), mask placeholders (``<N2>``, ``<IP>``, ``<ID>``) and code-length jargon (``bits/byte``). Text
inside double quotes is exempt: a quoted log template or value is the data itself.
"""

from __future__ import annotations

import math
import re

_MASK_WORDS = {"EMAIL": "an e-mail address", "TS": "a timestamp", "UUID": "a UUID", "IP": "an IP address",
               "HEX": "a hex id", "ID": "an id", "LONG": "a long value", "BYTES": "binary data",
               "CUT": "…"}
_MASK = re.compile(r"<([A-Z]+)(\d*)>")
_ENGINE_TOKEN = re.compile(r"\bd=D\d+\b|\bD\d{1,3}\b|<[A-Z]+\d*>|\bbits?\s*(?:/|per)\s*byte\b",
                           re.IGNORECASE)
_QUOTED = re.compile(r'"[^"]*"')


def engine_tokens(text: str) -> list[str]:
    """The engine tokens in ``text`` outside double quotes (empty when a person can read it as is).

    >>> engine_tokens('latency D19 and "<N2> ms" fine'), engine_tokens("0.15 bits/byte, <IP>")
    (['D19'], ['bits/byte', '<IP>'])
    """
    return [m.group(0) for m in _ENGINE_TOKEN.finditer(_QUOTED.sub('""', text))]


def _mask_word(match: re.Match[str]) -> str:
    kind, digits = match.group(1), match.group(2)
    if kind == "N" and digits:
        return "0" if digits == "0" else ("a number" if digits == "1" else f"a {digits}-digit number")
    if kind == "F" and digits:
        return "a decimal number"
    return _MASK_WORDS.get(kind, "a value")


def unmask(text: str) -> str:
    """Mask placeholders as words: ``<N4>`` -> "a 4-digit number", ``<IP>`` -> "an IP address".

    >>> unmask("took <N3> ms from <IP>")
    'took a 3-digit number ms from an IP address'
    """
    return _MASK.sub(_mask_word, text)


def elide(template: str) -> str:
    """A masked template for a sentence: each placeholder becomes an ellipsis.

    >>> elide("Redis timeout after <N4> ms on <IP>")
    'Redis timeout after … ms on …'
    """
    return _MASK.sub("…", template)


def plain(text: str) -> str:
    """``text`` fit for a sentence: a lone placeholder in words, placeholders inside a word as an ellipsis,
    quoted if it still looks like an engine token (or is empty); its own double quotes become single ones.

    >>> plain("<N3>"), plain("cart-<N1>f<N1>c"), plain("D19"), plain("RedisTimeout")
    ('a 3-digit number', 'cart-…f…c', '"D19"', 'RedisTimeout')
    """
    words = (unmask(text) if _MASK.fullmatch(text) else elide(text)).replace('"', "'")  # keeps quotes paired
    return f'"{words}"' if engine_tokens(words) or not words else words


def percent(share: float) -> str:
    """A share as a percentage: whole numbers, two significant digits where that would say 0 or 100.

    >>> percent(0.0), percent(0.3104), percent(0.0015), percent(0.9985), percent(0.9996), percent(1.0)
    ('0 %', '31 %', '0.15 %', '99.85 %', '99.96 %', '100 %')
    """
    value = min(max(share * 100.0, 0.0), 100.0)
    if value in (0.0, 100.0) or 1.0 <= value <= 99.0:
        return f"{value:.0f} %"
    if value < 1.0:
        return "under 0.01 %" if value < 0.01 else f"{float(f'{value:.2g}'):g} %"
    rest = 100.0 - value
    if rest < 0.01:
        return "over 99.99 %"
    shown = f"{float(f'{rest:.2g}'):f}".rstrip("0")
    return f"{100.0 - float(shown):.{len(shown.split('.')[1])}f} %"


def duration(ns: float) -> str:
    """A duration in the unit a person would use: "850 µs", "46 ms", "1.2 s", "3.5 min".

    >>> duration(400), duration(46_300_000), duration(238e6), duration(1_234_000_000), duration(210e9)
    ('under 1 µs', '46 ms', '240 ms', '1.2 s', '3.5 min')
    """
    if ns < 1_000:
        return "under 1 µs"
    for unit, size in (("min", 60e9), ("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= size:
            value = ns / size  # two significant digits: 238 ms reads as 240 ms
            shown = f"{value:.2g}" if value < 10 else f"{round(value, 1 - int(math.log10(value))):.0f}"
            return f"{shown} {unit}"
    return "under 1 µs"  # unreachable: 1 µs and above matched


def bucket_duration_ns(bucket: int) -> float:
    """A typical duration of log2 bucket ``D<b>`` (it covers [2^(b-1), 2^b) µs): its geometric middle."""
    return 500.0 if bucket <= 0 else 1_000.0 * 2.0 ** (bucket - 0.5)


def ratio(factor: float) -> str:
    """A multiplicative change: "× 6", "× 1.5", "× 0.25".

    >>> ratio(6.02), ratio(1.49), ratio(0.25)
    ('× 6', '× 1.5', '× 0.25')
    """
    return f"× {factor:.0f}" if factor >= 10 or abs(factor - round(factor)) < 0.05 else f"× {factor:.2g}"


def p_bound(bits: float) -> str:
    """The chance bound ``2^-bits`` as text: "p < 1e-9" (or "p ≈ 0.03" above 1e-2).

    >>> p_bound(31.0), p_bound(3.0), p_bound(5000.0)
    ('p < 1e-9', 'p ≈ 0.12', 'p < 1e-300')
    """
    if bits <= 6.64:  # 2^-6.64 = 0.01
        return f"p ≈ {2.0 ** -max(bits, 0.0):.2g}"
    return f"p < 1e-{min(int(bits * math.log10(2.0)), 300)}"


__all__ = ["bucket_duration_ns", "duration", "elide", "engine_tokens", "p_bound", "percent", "plain", "ratio",
           "unmask"]
