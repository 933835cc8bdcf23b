"""OTLP ``AnyValue``s as Python values and as canonical text (the pieces extraction renders).

Pure functions. ``render_attribute`` (``render_attributes`` for many at once, their values masked in one
kernel call) and ``render_body`` produce exactly the text ``detectors.canonical`` gives an attribute or a
log body, so memoized fragments assemble into the same bytes as the canonical
functions would (``tests/otlp/test_wire_extract.py`` checks this against the reference).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from detectors.canonical._values import attribute_texts, attributes_text


def any_value(value: Any) -> Any:
    """An ``AnyValue`` as plain Python (str, bool, int, float, bytes, list, dict or None)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"cannot render {type(obj).__name__}")


def render_body(body: Any) -> str:
    """A log body as a string: the string itself, or a stable JSON rendering of other AnyValue kinds
    (sorted keys, bytes as hex, non-finite floats as their names)."""
    kind = body.WhichOneof("value")
    if kind == "string_value":
        return body.string_value
    if kind is None:
        return ""
    value = any_value(body)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _escape(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n") if ("\n" in text or "\r" in text) else text


def render_attribute(key: str, value: Any) -> bytes:
    """One attribute's canonical fragment, `` key=text`` (escaped, encoded), as in ``attributes_text``."""
    return _escape(attributes_text({key: value})[2:]).encode("utf-8", "backslashreplace")


def render_attributes(pairs: Sequence[tuple[str, Any]]) -> list[bytes]:
    """``[render_attribute(key, value) for key, value in pairs]``, the values masked together."""
    return [_escape(text).encode("utf-8", "backslashreplace") for text in attribute_texts(pairs)]
