"""Many attributes must not stall the gateway: a bystander is served within 1 s meanwhile.

One span with 100,000 attributes (2.4 MB) used to block every client for ~14 s: the extraction's key table
overflowed and was rebuilt several times, then the slow path took over, and an item's attributes were
sorted in quadratic time. Detection now keeps at most ``detection.max_item_attributes`` attributes per item
and ``detection.max_request_keys`` distinct keys per request (the rest are counted), and the forwarded
request keeps every attribute: the downstream receives the client's bytes unchanged.
"""

from __future__ import annotations

import time

import grpc
import pytest

from tests.fixtures.otlp_payloads import trace_request
from tests.fixtures.waiting import wait_until
from tests.reliability import test_poison_values as poison_values
from tests.reliability.support import TRACE_EXPORT, record, scrape, watched

gateway = poison_values.gateway  # the same fixture: a gateway in a child process, forwarding downstream


def _one_span_with_attributes(count: int) -> bytes:
    request = trace_request(1, service="many-attributes", seed=3, attributes=0)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for i in range(count):
        span.attributes.add(key=f"attr.{i:06d}").value.string_value = f"v-{i % 1000:03d}"  # 24 bytes each
    return request.SerializeToString()


def _distinct_keys(count: int, per_span: int = 100) -> bytes:
    request = trace_request(count // per_span, service="many-keys", seed=4, attributes=0)
    key = 0
    for span in request.resource_spans[0].scope_spans[0].spans:
        for _ in range(per_span):
            span.attributes.add(key=f"key.{key:06d}").value.int_value = key
            key += 1
    return request.SerializeToString()


@pytest.mark.parametrize(("payload", "spans", "reason"), [
    pytest.param(lambda: _one_span_with_attributes(100_000), 1, "item_attributes",
                 id="one-span-100k-attributes"),
    pytest.param(lambda: _distinct_keys(100_000), 1_000, "request_keys", id="one-request-100k-distinct-keys"),
])
def test_many_attributes_do_not_stall_a_bystander(gateway, downstream, payload, spans, reason,
                                                  request) -> None:
    poison = payload()
    assert len(poison) > 2_000_000
    with grpc.insecure_channel(gateway.grpc_endpoint,
                               options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        export = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        with watched(gateway) as (bystander, rss):
            for _ in range(2):
                assert export(poison, timeout=60) == b""  # acknowledged: OK, no partial success
            wait_until(lambda: downstream.requests["traces"].count(poison) == 2, 60,
                       "both requests downstream, byte for byte")
            time.sleep(0.3)
    bystander.assert_served()
    wait_until(lambda: downstream.span_count() >= 2 * spans + bystander.acked_spans, 30,
               "every acknowledged span downstream")
    # detection saw only the capped attributes, and says so (once it extracted them: when it was behind,
    # that is after the request was forwarded)
    wait_until(lambda: scrape(gateway, "driftlock_detection_capped_attributes_total", {"reason": reason}) > 0,
               60, f"the attributes capped by {reason} counted")
    record(f"many attributes: {request.node.callspec.id}", "OK (forwarded byte for byte)", bystander, rss,
           "0")
