"""Read an HTTP request body from ASGI ``receive`` under a size limit, inflating it as it streams in.

The limit applies to the bytes on the wire and to the decompressed bytes. Inflation runs with
``zlib.decompressobj`` and ``max_length`` chunk by chunk, so a gzip bomb is stopped as soon as its output
passes the limit, never after it has been fully inflated.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]

# Content-Encoding -> zlib ``wbits`` (None: no compression). HTTP "deflate" is the zlib format.
CONTENT_ENCODINGS: dict[str, int | None] = {
    "": None, "identity": None, "gzip": 31, "x-gzip": 31, "deflate": 15,
}


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


async def read_body(receive: Receive, wbits: int | None, limit: int) -> bytes:
    """The whole (decompressed) body; raises BodyTooLarge, BadCompression or ClientDisconnected."""
    inflater = _Inflater(wbits, limit) if wbits is not None else None
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
