"""zstd request bodies (the collector's otlphttp exporter offers ``compression: zstd``): decoded under the
same limit as gzip, a zstd bomb stopped while decompressing, broken and truncated frames answered 400."""

from __future__ import annotations

import asyncio
import tracemalloc

import httpx
import pytest
import zstandard

from otlp_gateway.receiver.http_body import BadCompression, BodyTooLarge, read_body
from tests.fixtures.otlp_payloads import trace_request
from tests.receiver.test_receiver_body_admission import _receive_from

MiB = 1024 * 1024
PB_ZSTD = {"content-type": "application/x-protobuf", "content-encoding": "zstd"}


def _read(body: bytes, limit: int) -> bytes:
    return asyncio.run(read_body(_receive_from(body), "zstd", limit))


def zstd_bomb(decompressed_bytes: int) -> bytes:
    """zstd of ``decompressed_bytes`` zeros, built a MiB at a time (never holding the whole output)."""
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    zeros = bytes(MiB)
    parts = [compressor.compress(zeros) for _ in range(decompressed_bytes // MiB)]
    return b"".join([*parts, compressor.flush()])


def test_zstd_bodies_decode_including_concatenated_frames() -> None:
    data = bytes(range(256)) * 1000
    compressor = zstandard.ZstdCompressor()
    assert _read(compressor.compress(data), MiB) == data
    assert _read(compressor.compress(data[:1000]) + compressor.compress(data[1000:]), MiB) == data
    assert _read(b"", MiB) == b""


def test_a_zstd_bomb_is_stopped_while_decompressing() -> None:
    bomb = zstd_bomb(1024 * MiB)  # 1 GiB of zeros in a few hundred KB
    assert len(bomb) < 2 * MiB
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="decompressed body exceeds the limit of 1048576 bytes"):
            _read(bomb, MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"decompression was not bounded: peak {peak} bytes"


def test_exactly_the_limit_passes_one_byte_more_does_not() -> None:
    compressor = zstandard.ZstdCompressor()
    assert len(_read(compressor.compress(bytes(MiB)), MiB)) == MiB
    with pytest.raises(BodyTooLarge):
        _read(compressor.compress(bytes(MiB + 1)), MiB)


@pytest.mark.parametrize("body", [b"not zstd at all", zstandard.ZstdCompressor().compress(b"x" * 5000)[:-4]],
                         ids=["garbage", "truncated"])
def test_broken_zstd_is_bad_compression(body: bytes) -> None:
    with pytest.raises(BadCompression, match="zstd"):
        _read(body, MiB)


def test_receiver_accepts_zstd_and_answers_400_to_broken_zstd(start_receivers) -> None:
    rx = start_receivers()
    request = trace_request(5, seed=3)
    body = zstandard.ZstdCompressor().compress(request.SerializeToString())
    ok = httpx.post(rx.http_url + "/v1/traces", content=body, headers=PB_ZSTD, timeout=10)
    assert ok.status_code == 200, ok.text
    assert rx.consumer.snapshot()[-1].payload == request.SerializeToString()
    broken = httpx.post(rx.http_url + "/v1/traces", content=body[:-3], headers=PB_ZSTD, timeout=10)
    assert broken.status_code == 400 and b"zstd" in broken.content
