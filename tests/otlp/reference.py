"""The reference extraction: the obvious, slow way from a parsed request to per-stream events.

The oracle the codec's wire path is checked against (``test_wire_extract.py``): every item's attributes
read from the message, the detection caps applied in wire order, the stream routed by ``StreamRouter`` on
the item's and the resource's whole attribute dicts, the event built by ``detectors.canonical`` itself.
"""

from __future__ import annotations

from typing import Any

from detectors.canonical import canonical_log, canonical_span
from otlp_gateway.otlp.extract import Extraction, StreamBatch
from otlp_gateway.otlp.metric_points import attributes
from otlp_gateway.otlp.values import any_value, render_body
from otlp_gateway.streams.routing import EMPTY_PART, StreamKey, StreamRouter, service_of


class ReferenceExtractor:
    def __init__(self, router: StreamRouter, max_item_attributes: int = 128, max_request_keys: int = 1024):
        self.router = router
        self.max_item_attributes = max_item_attributes
        self.max_request_keys = max_request_keys
        self.capped_item_attributes = 0
        self.capped_request_keys = 0

    def extract(self, signal: str, message: Any) -> Extraction:
        """Per-stream batches of a parsed trace or log request (``capped_*`` count what the caps left out)."""
        self.capped_item_attributes = self.capped_request_keys = 0
        keys: set[str] = set()
        streams: dict[str, StreamBatch] = {}
        position = 0
        groups = message.resource_spans if signal == "traces" else message.resource_logs
        for group in groups:
            resource_attrs = attributes(group.resource.attributes)
            service = service_of(resource_attrs)
            for scope_group in (group.scope_spans if signal == "traces" else group.scope_logs):
                for item in (scope_group.spans if signal == "traces" else scope_group.log_records):
                    name = item.name if signal == "traces" else scope_group.scope.name
                    stream_id = self.router.stream_id(signal, service, name, attributes(item.attributes),
                                                      resource_attrs)
                    batch = streams.get(stream_id)
                    if batch is None:
                        key = StreamKey(stream_id, signal, service, name or EMPTY_PART)
                        batch = streams[stream_id] = StreamBatch(key)
                    kept = self._kept(item.attributes, keys)
                    if signal == "traces":
                        start = item.start_time_unix_nano
                        duration = item.end_time_unix_nano - start
                        event = canonical_span(name, item.kind, item.status.code, duration, kept)
                    else:
                        start = item.time_unix_nano or item.observed_time_unix_nano
                        event = canonical_log(render_body(item.body), item.severity_number, kept)
                    batch.add(event, item.trace_id, item.span_id, start, position)
                    position += 1
        return Extraction(signal, message, streams, position)

    def _kept(self, kvs: Any, keys: set[str]) -> dict[str, Any]:
        """The attributes that enter detection: the first ``max_item_attributes`` on the wire whose key is
        among the request's first ``max_request_keys`` distinct keys (the last of a repeated key wins)."""
        kept: dict[str, Any] = {}
        count = 0
        for kv in kvs:
            if count >= self.max_item_attributes:
                self.capped_item_attributes += 1
                continue
            if kv.key not in keys:
                if len(keys) >= self.max_request_keys:
                    self.capped_request_keys += 1
                    continue
                keys.add(kv.key)
            kept[kv.key] = any_value(kv.value)
            count += 1
        return kept
