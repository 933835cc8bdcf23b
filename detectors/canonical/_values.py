"""Attribute values to canonical text, with the documented low-cardinality rule.

Rule: a value is kept (after masking) when it is a bool, an integer below ``EXACT_INT_LIMIT`` in magnitude
(kept exactly: status codes, small counts), another number (bucketed by magnitude), or a string whose
masked form has at most ``MAX_VALUE_CHARS`` characters, and its key does not name an identifier (``*.id``,
``*_id``, ``*Id``, ``uuid``, ``guid``, ``token``, ``session``, ``email``, ``user``, ``username``, ``hash``,
``digest``,
any case). Identifier-like keys keep the key with ``<ID>``; longer values keep the key with ``<LONG>``.
So a value survives only if it can plausibly repeat across events: the key set is always preserved.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache

from detectors.canonical._mask import mask_text, mask_texts

MAX_VALUE_CHARS = 48
MAX_NESTED_ITEMS = 8
EXACT_INT_LIMIT = 1000
_ID_KEY = re.compile(r"(?:^|[._\-])(?:id|uuid|guid|token|session|email|user|username|hash|digest)$",
                     re.IGNORECASE)
_CAMEL_ID_KEY = re.compile(r"[a-z](?:Id|ID|Uuid|Token)$")  # requestId, userID: case-sensitive on purpose


def is_identifier_key(key: str) -> bool:
    """Whether the key names a per-entity identifier whose values are high-cardinality by nature.

    >>> [is_identifier_key(k) for k in ("user_id", "http.request.id", "requestId", "http.method", "valid")]
    [True, True, True, False, False]
    """
    return _ID_KEY.search(key) is not None or _CAMEL_ID_KEY.search(key) is not None


def value_text(value: object) -> str:
    """A value's masked text (numbers bucketed, nested values flattened in a stable order)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -EXACT_INT_LIMIT < value < EXACT_INT_LIMIT else mask_text(str(value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return mask_text(repr(value))
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "<BYTES>"
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())[:MAX_NESTED_ITEMS]
        return "{" + ",".join(f"{k}:{value_text(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(value_text(v) for v in value[:MAX_NESTED_ITEMS]) + "]"
    return "<" + type(value).__name__ + ">"


def value_texts(values: Sequence[object]) -> list[str]:
    """``[value_text(v) for v in values]``, every text to mask masked in one ``mask_texts`` call."""
    pending: list[str] = []
    for value in values:
        _collect(value, pending)
    masked = iter(mask_texts(pending))
    return [_build(value, masked) for value in values]


def _collect(value: object, pending: list[str]) -> None:
    """Append the texts ``value_text(value)`` masks, in the order it masks them."""
    if type(value) is str:
        pending.append(value)
    elif value is None or isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not -EXACT_INT_LIMIT < value < EXACT_INT_LIMIT:
            pending.append(str(value))
    elif isinstance(value, float):
        if not (math.isnan(value) or math.isinf(value)):
            pending.append(repr(value))
    elif isinstance(value, str):
        pending.append(value)
    elif isinstance(value, bytes | bytearray | memoryview):
        pass
    elif isinstance(value, Mapping):
        for _, v in sorted((str(k), v) for k, v in value.items())[:MAX_NESTED_ITEMS]:
            _collect(v, pending)
    elif isinstance(value, list | tuple):
        for v in value[:MAX_NESTED_ITEMS]:
            _collect(v, pending)


def _build(value: object, masked: Iterator[str]) -> str:
    """``value_text(value)`` with the masked texts taken from ``masked`` (as ``_collect`` listed them)."""
    if type(value) is str:
        return next(masked)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -EXACT_INT_LIMIT < value < EXACT_INT_LIMIT else next(masked)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return next(masked)
    if isinstance(value, str):
        return next(masked)
    if isinstance(value, bytes | bytearray | memoryview):
        return "<BYTES>"
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())[:MAX_NESTED_ITEMS]
        return "{" + ",".join(f"{k}:{_build(v, masked)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_build(v, masked) for v in value[:MAX_NESTED_ITEMS]) + "]"
    return "<" + type(value).__name__ + ">"


_identifier_key = lru_cache(maxsize=4096)(is_identifier_key)


def attribute_texts(pairs: Sequence[tuple[str, object]]) -> list[str]:
    """`` key=text`` of each pair, as ``attributes_text({key: value})`` shows it after its leading `` |``,
    the values masked together (``value_texts``).

    >>> attribute_texts([("user_id", "u-7"), ("took", "12 ms"), ("path", "/a/" + "x" * 60)])
    [' user_id=<ID>', ' took=<N2> ms', ' path=<LONG>']
    """
    shown = [not _identifier_key(key) for key, _ in pairs]
    texts = iter(value_texts([value for (_, value), show in zip(pairs, shown, strict=True) if show]))
    parts = []
    for (key, _), show in zip(pairs, shown, strict=True):
        if show:
            text = next(texts)
            if len(text) > MAX_VALUE_CHARS:
                text = "<LONG>"
        else:
            text = "<ID>"
        parts.append(f" {key}={text}")
    return parts


def attributes_text(attributes: Mapping[str, object] | None) -> str:
    """`` k=v`` pairs in sorted key order, values kept only when low-cardinality (see module doc)."""
    if not attributes:
        return ""
    parts = []
    for key in sorted(attributes):
        if is_identifier_key(key):
            text = "<ID>"
        else:
            text = value_text(attributes[key])
            if len(text) > MAX_VALUE_CHARS:
                text = "<LONG>"
        parts.append(f" {key}={text}")
    return " |" + "".join(parts)
