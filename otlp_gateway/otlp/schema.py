"""The walk's program for trace and log requests, built from the protobuf descriptors once at import.

Every message type reachable from the request gets a row of field kinds (so a new field in a later
opentelemetry-proto release is validated like upb validates it, UTF-8 included, without code changes);
the paths the extraction needs get their own specialised types carrying roles and actions
(``otlp_gateway.otlp._kernels.walk``). A renamed field in the protos fails here, at import, not quietly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_gateway.otlp._kernels import walk as w

_KIND_OF_TYPE = {
    FieldDescriptor.TYPE_DOUBLE: w.K_FIXED64, FieldDescriptor.TYPE_FIXED64: w.K_FIXED64,
    FieldDescriptor.TYPE_SFIXED64: w.K_FIXED64,
    FieldDescriptor.TYPE_FLOAT: w.K_FIXED32, FieldDescriptor.TYPE_FIXED32: w.K_FIXED32,
    FieldDescriptor.TYPE_SFIXED32: w.K_FIXED32,
    FieldDescriptor.TYPE_INT32: w.K_VARINT, FieldDescriptor.TYPE_INT64: w.K_VARINT,
    FieldDescriptor.TYPE_UINT32: w.K_VARINT, FieldDescriptor.TYPE_UINT64: w.K_VARINT,
    FieldDescriptor.TYPE_SINT32: w.K_VARINT, FieldDescriptor.TYPE_SINT64: w.K_VARINT,
    FieldDescriptor.TYPE_BOOL: w.K_VARINT, FieldDescriptor.TYPE_ENUM: w.K_VARINT,
    FieldDescriptor.TYPE_BYTES: w.K_BYTES, FieldDescriptor.TYPE_STRING: w.K_STRING,
    FieldDescriptor.TYPE_MESSAGE: w.K_MESSAGE,
}


def _paths(group: str, scope_group: str, item: str, item_actions: Mapping[str, int],
           ) -> tuple[dict[str, int], dict[str, int]]:
    """(roles by message path, actions by field path) of one signal's layout."""
    items = f"{group}.{scope_group}.{item}"
    roles = {group: w.R_RESOURCE_GROUP, f"{group}.resource.attributes": w.R_RESOURCE_ATTRIBUTE,
             f"{group}.{scope_group}": w.R_SCOPE_GROUP, items: w.R_ITEM,
             f"{items}.attributes": w.R_ITEM_ATTRIBUTE}
    actions = {f"{group}.resource.attributes.key": w.A_KEY, f"{group}.resource.attributes.value": w.A_VALUE,
               f"{group}.{scope_group}.scope.name": w.A_SCOPE_NAME,
               f"{items}.attributes.key": w.A_KEY, f"{items}.attributes.value": w.A_VALUE,
               **{f"{items}.{path}": action for path, action in item_actions.items()}}
    return roles, actions


TRACE_PATHS = _paths("resource_spans", "scope_spans", "spans", {
    "trace_id": w.A_TRACE_ID, "span_id": w.A_SPAN_ID, "parent_span_id": w.A_PARENT_ID, "name": w.A_NAME,
    "kind": w.A_KIND, "start_time_unix_nano": w.A_TIME_0, "end_time_unix_nano": w.A_TIME_1,
    "status.code": w.A_STATUS_CODE})
LOG_PATHS = _paths("resource_logs", "scope_logs", "log_records", {
    "trace_id": w.A_TRACE_ID, "span_id": w.A_SPAN_ID, "time_unix_nano": w.A_TIME_0,
    "observed_time_unix_nano": w.A_TIME_1, "severity_number": w.A_SEVERITY, "body": w.A_BODY})


def build_schema(root: Descriptor, roles: Mapping[str, int], actions: Mapping[str, int]) -> w.Schema:
    """The walk's tables for requests of type ``root``; ``roles``/``actions`` keyed by dotted field paths.

    A message at a path that carries a role, or lies on the way to a marked path, gets a type of its own;
    every other message shares one generic type per protobuf message type."""
    marked = set(roles) | set(actions)

    def specialised(path: str) -> bool:
        return path in roles or any(p.startswith(path + ".") for p in marked)

    index: dict[str, int] = {}
    types: list[tuple[Descriptor, str | None]] = []  # (descriptor, path when specialised)

    def type_of(descriptor: Descriptor, path: str | None) -> int:
        own = path is not None and (path == "" or specialised(path))
        key = path if own and path is not None else descriptor.full_name
        if key not in index:
            index[key] = len(types)
            types.append((descriptor, path if own else None))
        return index[key]

    def child_path(path: str | None, name: str) -> str | None:
        return None if path is None else f"{path}.{name}" if path else name

    type_of(root, "")
    t = 0
    while t < len(types):  # breadth first; ``types`` grows as message fields are found
        descriptor, path = types[t]
        for field in descriptor.fields:
            if field.message_type is not None:
                type_of(field.message_type, child_path(path, field.name))
        t += 1
    width = 1 + max(field.number for descriptor, _ in types for field in descriptor.fields)
    kinds = np.zeros((len(types), width), dtype=np.int8)
    children = np.zeros((len(types), width), dtype=np.int32)
    field_actions = np.zeros((len(types), width), dtype=np.int8)
    type_roles = np.zeros(len(types), dtype=np.int8)
    found: set[str] = set()
    for t, (descriptor, path) in enumerate(types):
        if path is not None and path in roles:
            type_roles[t] = roles[path]
            found.add(path)
        for field in descriptor.fields:
            field_path = child_path(path, field.name)
            kinds[t, field.number] = _KIND_OF_TYPE[field.type]
            if field.message_type is not None:
                children[t, field.number] = type_of(field.message_type, field_path)
            if field_path is not None and field_path in actions:
                field_actions[t, field.number] = actions[field_path]
                found.add(field_path)
    missing = marked - found
    if missing:
        raise RuntimeError(f"the OTLP protos no longer have the fields {sorted(missing)}")
    return w.Schema(kinds, children, field_actions, type_roles)


TRACE_SCHEMA = build_schema(ExportTraceServiceRequest.DESCRIPTOR, *TRACE_PATHS)
LOG_SCHEMA = build_schema(ExportLogsServiceRequest.DESCRIPTOR, *LOG_PATHS)
SCHEMAS = {"traces": TRACE_SCHEMA, "logs": LOG_SCHEMA}
