"""While the walker's kernels compile (a cold JIT cache), the receivers decode with upb and the validators
alone: the answer and the forwarded bytes must be the ones the walk gives once the kernels are ready."""

from __future__ import annotations

import json

import pytest

from otlp_gateway.otlp.codec import ExtractionOptions, MalformedRequest, RequestCodec
from tests.fixtures.otlp_payloads import logs_request, metrics_request, trace_request
from tests.otlp.test_json_codec import _otlp_json_of


def _with_a_bad_span_id(request):
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01" * 3
    return request


REQUESTS = {
    "traces": trace_request(5, seed=11),
    "traces-one-invalid": _with_a_bad_span_id(trace_request(5, seed=12)),
    "logs": logs_request(4, seed=13),
    "metrics": metrics_request(3),
}


@pytest.mark.parametrize("case", sorted(REQUESTS))
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_upb_decoding_answers_as_the_walk_does(case: str, encoding: str) -> None:
    request = REQUESTS[case]
    signal = case.split("-")[0]
    body = (request.SerializeToString() if encoding == "protobuf"
            else json.dumps(_otlp_json_of(request)).encode())
    codec = RequestCodec(ExtractionOptions())
    walked = codec.decode(signal, body, encoding)  # type: ignore[arg-type]
    upb = codec.decode_without_kernels(signal, body, encoding)  # type: ignore[arg-type]
    assert (upb.accepted, upb.rejected, upb.rejection) == (walked.accepted, walked.rejected, walked.rejection)
    assert upb.payload == walked.payload
    assert walked.accepted > 0
    if signal != "metrics":
        assert upb.extraction is None  # detection extracts it afterwards


def test_upb_decoding_refuses_what_does_not_decode() -> None:
    codec = RequestCodec()
    with pytest.raises(MalformedRequest):
        codec.decode_without_kernels("traces", b"\x0a\xff\xff\xff")
