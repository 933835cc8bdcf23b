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
from collections.abc import Mapping

from detectors.canonical._mask import mask_text

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
