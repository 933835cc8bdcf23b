"""Read an HTTP request body from ASGI ``receive`` under a size limit, inflating it as it streams in.

The limit applies to the bytes on the wire and to the decompressed bytes. Inflation runs with
``zlib.decompressobj`` and ``max_length`` chunk by chunk, so a gzip bomb is stopped as soon as its output
passes the limit, never after it has been fully inflated. zstd (the collector's otlphttp exporter offers
it) is stopped the same way, through a counting sink.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import zstandard

Receive = Callable[[], Awaitable[dict[str, Any]]]

ZSTD: Literal["zstd"] = "zstd"
Codec = int | Literal["zstd"] | None
"""zlib ``wbits``, ``"zstd"``, or None for no compression."""

# Content-Encoding -> codec. HTTP "deflate" is the zlib format.
CONTENT_ENCODINGS: dict[str, Codec] = {
    "": None, "identity": None, "gzip": 31, "x-gzip": 31, "deflate": 15, "zstd": ZSTD,
}
_ZSTD_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """The body (on the wire or decompressed) is larger than the limit."""


class BadCompression(Exception):
    """The body is not a valid stream of its declared Content-Encoding."""


class ClientDisconnected(Exception):
    """The client went away before sending the whole body."""


class _Inflater:
    """Incremental gzip/zlib inflation bounded by ``limit`` output bytes; handles multi-member gzip."""

    def __init__(self, wbits: int, limit: int):
        self._wbits = wbits
        self._limit = limit
        self._inflater = zlib.decompressobj(wbits)
        self._parts: list[bytes] = []
        self._size = 0
        self._fed = False

    def feed(self, data: bytes) -> None:
        self._fed = self._fed or bool(data)
        while data:
            room = self._limit - self._size + 1  # one byte more than allowed reveals an overflow
            try:
                out = self._inflater.decompress(data, room)
            except zlib.error as exc:
                raise BadCompression(f"body is not valid {self._name}: {exc}") from None
            self._size += len(out)
            if self._size > self._limit:
                raise BodyTooLarge(f"decompressed body exceeds the limit of {self._limit} bytes")
            self._parts.append(out)
            if self._inflater.eof:
                data = self._inflater.unused_data
                if data:  # concatenated gzip members (allowed by RFC 1952)
                    self._inflater = zlib.decompressobj(self._wbits)
            else:
                # with output room left, zlib consumed all it could: anything left is input held back
                data = self._inflater.unconsumed_tail

    def finish(self) -> bytes:
        if self._fed and not self._inflater.eof:
            raise BadCompression(f"body is truncated {self._name}")
        return b"".join(self._parts)

    @property
    def _name(self) -> str:
        return "gzip" if self._wbits == 31 else "deflate (zlib)"


class _SizeLimit:
    """A write-only sink that only counts, and raises once more than ``limit`` bytes came out."""

    def __init__(self, limit: int):
        self._limit = limit
        self._size = 0

    def write(self, data: bytes) -> int:
        self._size += len(data)
        if self._size > self._limit:
            raise BodyTooLarge(f"decompressed body exceeds the limit of {self._limit} bytes")
        return len(data)


class _ZstdInflater:
    """zstd under the same output limit.

    python-zstandard's one-shot and ``decompressobj`` calls take no output bound, so while the body streams
    in, it is decompressed into a counting sink in 64 KiB chunks (a zstd bomb is stopped one chunk past the
    limit). Only at the end, with the output size proven within the limit, is it decompressed for real,
    frame by frame, so a truncated frame is refused (the streaming pass cannot tell).
    """

    def __init__(self, limit: int):
        self._wire: list[bytes] = []
        self._counter = zstandard.ZstdDecompressor().stream_writer(
            _SizeLimit(limit), write_size=_ZSTD_CHUNK, write_return_read=True)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._wire.append(data)
        try:
            self._counter.write(data)
        except zstandard.ZstdError as exc:
            raise BadCompression(f"body is not valid zstd: {exc}") from None

    def finish(self) -> bytes:
        data = b"".join(self._wire)
        parts: list[bytes] = []
        decompressor = zstandard.ZstdDecompressor()
        while data:  # one zstd frame per round (concatenated frames are allowed, as gzip members are)
            frame = decompressor.decompressobj()
            try:
                parts.append(frame.decompress(data))
            except zstandard.ZstdError as exc:
                raise BadCompression(f"body is not valid zstd: {exc}") from None
            if not frame.eof:
                raise BadCompression("body is truncated zstd")
            data = frame.unused_data
        return b"".join(parts)


async def read_body(receive: Receive, codec: Codec, limit: int) -> bytes:
    """The whole (decompressed) body; raises BodyTooLarge, BadCompression or ClientDisconnected."""
    inflater: _Inflater | _ZstdInflater | None = None
    if codec == ZSTD:
        inflater = _ZstdInflater(limit)
    elif codec is not None:
        inflater = _Inflater(codec, limit)
    parts: list[bytes] = []
    wire = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        wire += len(chunk)
        if wire > limit:
            raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
        if inflater is not None:
            inflater.feed(chunk)
        elif chunk:
            parts.append(chunk)
        if not message.get("more_body", False):
            break
    return inflater.finish() if inflater is not None else b"".join(parts)
