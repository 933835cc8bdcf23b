"""Memoized canonical events: the same bytes as ``detectors.canonical``, with far less Python per item.

``canonical_span``/``canonical_log`` mask every attribute value with a regular expression on every call
(about 100 us for a span with 10 attributes), while most ``(key, value)`` pairs repeat across items. This
builds the same bytes from memoized pieces, relying on two properties of the canonical form (checked by
``tests/otlp/test_canonical_cache.py`` against the real functions):

* ``canonical_x(..., attrs) == canonical_x(..., None) + encode(escape(attributes_text(attrs)))``;
* ``attributes_text(attrs) == " |" + "".join(attributes_text({k: attrs[k]})[2:] for k in sorted(attrs))``.

Only str/int/bool values are memoized (keyed with their type, so ``True`` and ``1`` stay apart); floats,
bytes and nested values are rendered directly. Keys that name identifiers (``is_identifier_key``: rendered
``key=<ID>`` whatever the value) are memoized by key alone, so unique ids cost no regex and no memory.
Memo tables are bounded and simply cleared when full.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors.canonical import canonical_log, canonical_span, duration_bucket, is_identifier_key
from detectors.canonical._values import attributes_text

MEMO_MAX = 100_000
_MEMO_TYPES = (str, int, bool)


def _escape(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n") if ("\n" in text or "\r" in text) else text


class CanonicalCache:
    def __init__(self, max_entries: int = MEMO_MAX):
        self._max = max_entries
        self._fragments: dict[tuple[str, Any, Any], bytes] = {}
        self._span_heads: dict[tuple[str, int, int, str], bytes] = {}
        self._identifier_keys: dict[str, bool] = {}

    def _attributes(self, attrs: Mapping[str, Any] | None) -> bytes:
        if not attrs:
            return b""
        memo = self._fragments
        id_keys = self._identifier_keys
        parts = [b" |"]
        for key in sorted(attrs):
            value = attrs[key]
            kind = type(value)
            is_id = id_keys.get(key)
            if is_id is None:
                if len(id_keys) >= self._max:
                    id_keys.clear()
                is_id = id_keys[key] = is_identifier_key(key)
            if is_id or kind in _MEMO_TYPES:
                memo_key = (key, None, None) if is_id else (key, kind, value)
                fragment = memo.get(memo_key)
                if fragment is None:
                    if len(memo) >= self._max:
                        memo.clear()
                    fragment = memo[memo_key] = render_attribute(key, value)
            else:
                fragment = render_attribute(key, value)
            parts.append(fragment)
        return b"".join(parts)

    def span(self, name: str, kind: int, status_code: int, duration_ns: int,
             attrs: Mapping[str, Any] | None) -> bytes:
        head_key = (name, kind, status_code, duration_bucket(duration_ns))
        head = self._span_heads.get(head_key)
        if head is None:
            if len(self._span_heads) >= self._max:
                self._span_heads.clear()
            head = self._span_heads[head_key] = canonical_span(name, kind, status_code, duration_ns, None)
        return head + self._attributes(attrs)

    def log(self, body: str, severity_number: int, attrs: Mapping[str, Any] | None) -> bytes:
        return canonical_log(body, severity_number, None) + self._attributes(attrs)


def render_attribute(key: str, value: Any) -> bytes:
    """One attribute's canonical fragment, `` key=text`` (escaped, encoded), as in ``attributes_text``."""
    return _escape(attributes_text({key: value})[2:]).encode("utf-8", "backslashreplace")
