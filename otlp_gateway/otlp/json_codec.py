"""OTLP/JSON decoding: the ways OTLP JSON differs from plain proto3 JSON, done fast.

OTLP JSON writes ``traceId``/``spanId``/``parentSpanId`` as hex (case-insensitive), not base64; enums may
be integers; keys are lowerCamelCase (original names are accepted too); int64 may be a string or a number;
unknown fields are ignored.

Two decoders:

* a fast one driven by a per-message-type plan built once from the descriptors: it walks the parsed JSON
  and sets fields directly (``json_format.ParseDict`` costs about 150 us per span; this about a tenth);
* ``json_format.ParseDict`` (after rewriting hex ids to base64) as the reference. Whatever the fast path
  does not take for certain (an unexpected type, an enum name it does not know, an out-of-range number)
  is decoded again by the reference, which also words the error for a request that is really invalid.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from typing import Any, NamedTuple, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_HEX = re.compile(r"[0-9a-fA-F]*")
_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})
_MAX_DEPTH = 64  # nested AnyValues deeper than this are left to the reference decoder (limit 100)


class OtlpJsonError(ValueError):
    """The body is not a valid OTLP/JSON export request (the message says what is wrong)."""


class _NotCertain(Exception):
    """The fast decoder leaves this document to the reference decoder."""


# ------------------------------------------------------------------------------------------- fast decoder
_MESSAGE, _HEX_ID, _BYTES, _INT, _FLOAT, _BOOL, _STRING, _ENUM = range(8)
_INT_TYPES = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
              FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
              FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32,
              FieldDescriptor.TYPE_SFIXED64}
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}


class _Field(NamedTuple):
    name: str
    kind: int
    repeated: bool
    plan: dict[str, _Field] | None
    """For message fields: the plan of the sub-message."""
    enum_names: dict[str, int] | None


_PLANS: dict[str, dict[str, _Field]] = {}


def _plan(descriptor: Descriptor) -> dict[str, _Field]:
    """JSON key (lowerCamelCase and original name) -> how to set the field; built once per type."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is not None:
        return plan
    plan = _PLANS[descriptor.full_name] = {}  # registered first: AnyValue nests itself
    for field in descriptor.fields:
        sub_plan = enum_names = None
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            assert field.message_type is not None  # a message field always has its type
            kind, sub_plan = _MESSAGE, _plan(field.message_type)
        elif field.type == FieldDescriptor.TYPE_BYTES:
            kind = _HEX_ID if field.name in _ID_FIELDS else _BYTES
        elif field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None  # an enum field always has its type
            kind, enum_names = _ENUM, {v.name: v.number for v in field.enum_type.values}
        elif field.type in _INT_TYPES:
            kind = _INT
        elif field.type in _FLOAT_TYPES:
            kind = _FLOAT
        elif field.type == FieldDescriptor.TYPE_BOOL:
            kind = _BOOL
        else:
            kind = _STRING
        entry = _Field(field.name, kind, field.is_repeated, sub_plan, enum_names)
        plan[field.json_name] = plan[field.name] = entry
    return plan


def _scalar(field: _Field, value: Any) -> Any:
    kind, kind_of = field.kind, type(value)
    if kind == _STRING and kind_of is str:
        return value
    if kind == _INT:
        if kind_of is int or kind_of is str:
            return int(value)
        if kind_of is float and value.is_integer():
            return int(value)
    elif kind == _FLOAT:
        if kind_of is float or kind_of is int or kind_of is str:
            return float(value)
    elif kind == _HEX_ID:
        return _hex_id(value, field.name)
    elif kind == _BOOL and kind_of is bool:
        return value
    elif kind == _ENUM:
        if kind_of is int:
            return value
        if kind_of is str and value in field.enum_names:  # type: ignore[operator]
            return field.enum_names[value]  # type: ignore[index]
    elif kind == _BYTES and kind_of is str:
        return base64.b64decode(value, validate=True)
    raise _NotCertain


def _fill(message: Message, doc: dict, plan: dict[str, _Field], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise _NotCertain
    for key, value in doc.items():
        field = plan.get(key)
        if field is None or value is None:  # unknown fields are ignored; null means default
            continue
        if field.repeated:
            if type(value) is not list:
                raise _NotCertain
            container = getattr(message, field.name)
            if field.kind == _MESSAGE:
                for item in value:
                    if type(item) is not dict:
                        raise _NotCertain
                    _fill(container.add(), item, field.plan, depth + 1)  # type: ignore[arg-type]
            else:
                container.extend([_scalar(field, item) for item in value])
        elif field.kind == _MESSAGE:
            if type(value) is not dict:
                raise _NotCertain
            sub_message = getattr(message, field.name)
            sub_message.SetInParent()
            _fill(sub_message, value, field.plan, depth + 1)  # type: ignore[arg-type]
        else:
            setattr(message, field.name, _scalar(field, value))


def _hex_id(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or len(value) % 2 or not _HEX.fullmatch(value):
        raise OtlpJsonError(f"{where} must be a hex string (OTLP/JSON encodes ids as hex), got {value!r:.60}")
    return bytes.fromhex(value)


# ------------------------------------------------------------------------------------------- reference
def _children(node: Any, *keys: str) -> Iterator[dict]:
    """Dict elements of the list under the first present key of ``keys`` (wrong shapes are left for
    ``ParseDict`` to report)."""
    if not isinstance(node, dict):
        return
    for key in keys:
        items = node.get(key)
        if items is not None:
            if isinstance(items, list):
                yield from (item for item in items if isinstance(item, dict))
            return


def _trace_items(doc: dict) -> Iterator[dict]:
    for resource in _children(doc, "resourceSpans", "resource_spans"):
        for scope in _children(resource, "scopeSpans", "scope_spans"):
            for span in _children(scope, "spans"):
                yield span
                yield from _children(span, "links")


def _log_items(doc: dict) -> Iterator[dict]:
    for resource in _children(doc, "resourceLogs", "resource_logs"):
        for scope in _children(resource, "scopeLogs", "scope_logs"):
            yield from _children(scope, "logRecords", "log_records")


_METRIC_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary")


def _metric_items(doc: dict) -> Iterator[dict]:
    for resource in _children(doc, "resourceMetrics", "resource_metrics"):
        for scope in _children(resource, "scopeMetrics", "scope_metrics"):
            for metric in _children(scope, "metrics"):
                for kind in _METRIC_KINDS:
                    for point in _children(metric.get(kind), "dataPoints", "data_points"):
                        yield from _children(point, "exemplars")


_ID_CARRIERS = {"traces": _trace_items, "metrics": _metric_items, "logs": _log_items}
_ID_KEYS = {"traceId": "trace_id", "trace_id": "trace_id", "spanId": "span_id", "span_id": "span_id",
            "parentSpanId": "parent_span_id", "parent_span_id": "parent_span_id"}


def _reference_parse(doc: dict, signal: str, message_type: type[Message]) -> Message:
    for item in _ID_CARRIERS[signal](doc):
        for key, name in _ID_KEYS.items():
            if item.get(key) is not None:
                item[key] = base64.b64encode(_hex_id(item[key], name)).decode("ascii")
    message = message_type()
    try:
        json_format.ParseDict(doc, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise OtlpJsonError(f"body is not a valid {message_type.DESCRIPTOR.name}: {exc}") from None
    return message


# ------------------------------------------------------------------------------------------- public
def parse_otlp_json(body: bytes, signal: str, message_type: type[Message]) -> Message:
    """Decode an OTLP/JSON ``Export*ServiceRequest``; raise ``OtlpJsonError`` with a clear message."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise OtlpJsonError(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise OtlpJsonError(f"body must be a JSON object, got {type(doc).__name__}")
    message = message_type()
    try:
        _fill(message, doc, _plan(cast(Descriptor, message_type.DESCRIPTOR)), 0)
        return message
    except (_NotCertain, ValueError, TypeError, OverflowError, binascii.Error, RecursionError) as exc:
        if isinstance(exc, OtlpJsonError):
            raise
    return _reference_parse(doc, signal, message_type)


def to_otlp_json(message: Message) -> bytes:
    """Serialize a response (or a ``google.rpc.Status``) as JSON with lowerCamelCase keys."""
    return json_format.MessageToJson(message, indent=None).encode()
