"""Read an HTTP request body from ASGI ``receive`` under a size limit, decoding it as it streams in.

The limit applies to the bytes on the wire and to the decoded bytes, and it is enforced while decoding:
every decoder is asked for at most one byte more than the room left, so a compression bomb is stopped as
soon as its output passes the limit, never after it has been inflated. Content-Encodings (the
collector's HTTP server accepts the same set):

* ``gzip`` / ``x-gzip``, ``deflate`` / ``zlib`` (the zlib format, as HTTP defines "deflate"): zlib;
* ``zstd``: the standard library's ``compression.zstd`` API (``backports.zstd`` before Python 3.14),
  windows up to 8 MiB as RFC 9659 requires of HTTP;
* ``lz4``: the LZ4 frame format, ``lz4.frame``;
* ``snappy``: the block format, or the framing format when the body starts with its stream identifier
  (collectors sent framed bodies as "snappy" before v0.125), and ``x-snappy-framed``: cramjam. A block
  states its decoded length up front (checked before decoding); framed bodies are decoded chunk by chunk
  (at most 64 KiB each), since no library decodes them incrementally under a bound.

Several concatenated gzip members or zstd/lz4 frames form one body. While a body is read, the bytes it
holds are offered to ``hold`` (admission control's in-transit budget); a refusal stops the read.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import cramjam
import lz4.frame

try:
    from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14
except ImportError:
    from backports import zstd

Receive = Callable[[], Awaitable[dict[str, Any]]]

ZSTD_WINDOW_LOG_MAX = 23
"""8 MiB: the largest zstd window a decoder must accept for HTTP content coding (RFC 9659)."""


class BodyTooLarge(Exception):
    """The body (on the wire or decoded) is larger than the limit."""


class BadCompression(Exception):
    """The body is not a valid stream of its declared Content-Encoding."""


class ClientDisconnected(Exception):
    """The client went away before sending the whole body."""


class NoRoom(Exception):
    """The bytes this body holds no longer fit the in-transit budget."""


class _Output:
    """The decoded body, refusing to grow past ``limit``. Kept as the pieces it arrived in and joined once
    at the end: growing one buffer would copy it as it grows and leave the allocator holding about twice
    the body (RSS that a stalled upload would keep)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self._parts: list[bytes] = []

    @property
    def room(self) -> int:
        return self.limit - self.size

    def add(self, chunk: bytes | bytearray | memoryview) -> None:
        if self.size + len(chunk) > self.limit:
            raise BodyTooLarge(f"decompressed body exceeds the limit of {self.limit} bytes")
        if chunk:
            self._parts.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
            self.size += len(chunk)

    def join(self) -> bytes:
        body = b"".join(self._parts)
        self._parts = [body]
        return body

    def clear(self) -> None:
        self._parts = []


class Decoder(Protocol):
    output: _Output

    def feed(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    @property
    def held(self) -> int:
        """Bytes held in memory: decoded output plus input buffered for decoding."""
        ...


class _Identity:
    def __init__(self, output: _Output):
        self.output = output

    def feed(self, data: bytes) -> None:
        self.output.add(data)

    def finish(self) -> None:
        pass

    @property
    def held(self) -> int:
        return self.output.size


class _Zlib:
    """gzip (multi-member) and zlib streams; ``unconsumed_tail`` holds input kept back by max_length."""

    def __init__(self, output: _Output, wbits: int, name: str):
        self.output = output
        self._wbits = wbits
        self._name = name
        self._inflater = zlib.decompressobj(wbits)
        self._fed = False

    def feed(self, data: bytes) -> None:
        self._fed = self._fed or bool(data)
        while data:
            try:
                out = self._inflater.decompress(data, self.output.room + 1)
            except zlib.error as exc:
                raise BadCompression(f"body is not valid {self._name}: {exc}") from None
            self.output.add(out)
            if self._inflater.eof:
                data = self._inflater.unused_data
                if data:  # concatenated gzip members (allowed by RFC 1952)
                    self._inflater = zlib.decompressobj(self._wbits)
            else:
                data = self._inflater.unconsumed_tail

    def finish(self) -> None:
        if self._fed and not self._inflater.eof:
            raise BadCompression(f"body is truncated {self._name}")

    @property
    def held(self) -> int:
        return self.output.size


class _Framed:
    """Decoders of the ``compression.zstd`` / ``lz4.frame`` shape: ``decompress(data, max_length)`` keeps
    the input it could not use yet, ``needs_input`` says whether more output is pending, ``eof`` /
    ``unused_data`` mark the end of a frame (another frame may follow)."""

    def __init__(self, output: _Output, new: Callable[[], Any], name: str,
                 errors: tuple[type[Exception], ...]):
        self.output = output
        self._new = new
        self._name = name
        self._errors = errors
        self._decoder = new()
        self._fed = False

    def feed(self, data: bytes) -> None:
        self._fed = self._fed or bool(data)
        while data or not (self._decoder.eof or self._decoder.needs_input):
            if self._decoder.eof:
                self._decoder = self._new()  # the next of several concatenated frames
            try:
                out = self._decoder.decompress(data, self.output.room + 1)
            except self._errors as exc:
                raise BadCompression(f"body is not valid {self._name}: {exc}") from None
            self.output.add(out)
            data = self._decoder.unused_data if self._decoder.eof else b""

    def finish(self) -> None:
        if self._fed and not self._decoder.eof:
            raise BadCompression(f"body is truncated {self._name}")

    @property
    def held(self) -> int:
        return self.output.size


_SNAPPY_STREAM_ID = b"\xff\x06\x00\x00sNaPpY"
_SNAPPY_MAX_CHUNK = 4 + 32 + 65_536 + 65_536 // 6
"""CRC plus the largest snappy block of 64 KiB of input (the framing format's chunk limit)."""


class _SnappyFramed:
    """The snappy framing format, split into chunks here and each chunk decoded (CRC checked) by cramjam."""

    def __init__(self, output: _Output):
        self.output = output
        self._buffer = bytearray()
        self._started = False

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos = 0
        while len(buffer) - pos >= 4:
            kind = buffer[pos]
            length = int.from_bytes(buffer[pos + 1:pos + 4], "little")
            if not self._started and kind != 0xFF:
                raise BadCompression("body is not valid framed snappy: no stream identifier")
            if 0x02 <= kind <= 0x7F:
                raise BadCompression(f"body is not valid framed snappy: reserved chunk type {kind:#x}")
            if length > _SNAPPY_MAX_CHUNK:
                raise BadCompression(f"body is not valid framed snappy: a chunk of {length} bytes")
            if len(buffer) - pos - 4 < length:
                break
            chunk = bytes(buffer[pos:pos + 4 + length])
            pos += 4 + length
            if kind == 0xFF:
                if chunk != _SNAPPY_STREAM_ID:
                    raise BadCompression("body is not valid framed snappy: bad stream identifier")
                self._started = True
            elif kind <= 0x01:  # compressed or uncompressed data: at most 64 KiB once decoded
                try:
                    self.output.add(bytes(cramjam.snappy.decompress(_SNAPPY_STREAM_ID + chunk)))
                except cramjam.DecompressionError as exc:
                    raise BadCompression(f"body is not valid framed snappy: {exc}") from None
            # 0x80-0xfe: skippable (padding): ignored
        del buffer[:pos]

    def finish(self) -> None:
        if self._buffer or not self._started:
            raise BadCompression("body is truncated framed snappy")

    @property
    def held(self) -> int:
        return self.output.size + len(self._buffer)


class _SnappyBlock:
    """The snappy block format: its header states the decoded length, checked before decoding."""

    def __init__(self, output: _Output):
        self.output = output
        self._buffer = bytearray()
        self._checked = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._checked and len(self._buffer) >= 5:  # a varint of 5 bytes covers 32-bit lengths
            self._check_length()

    def _check_length(self) -> None:
        self._checked = True
        try:
            declared = cramjam.snappy.decompress_raw_len(bytes(self._buffer[:10]))
        except cramjam.DecompressionError as exc:
            raise BadCompression(f"body is not valid snappy: {exc}") from None
        if declared > self.output.room:
            raise BodyTooLarge(f"decompressed body of {declared} bytes exceeds the limit of "
                               f"{self.output.limit} bytes")

    def finish(self) -> None:
        if not self._buffer:
            return
        if not self._checked:
            self._check_length()
        try:
            self.output.add(bytes(cramjam.snappy.decompress_raw(self._buffer)))
        except cramjam.DecompressionError as exc:
            raise BadCompression(f"body is not valid snappy: {exc}") from None
        self._buffer = bytearray()

    @property
    def held(self) -> int:
        return self.output.size + len(self._buffer)


class _Snappy:
    """``snappy``: the block format, or the framing format when the stream identifier comes first."""

    def __init__(self, output: _Output):
        self.output = output
        self._head = bytearray()
        self._inner: Decoder | None = None

    def feed(self, data: bytes) -> None:
        if self._inner is None:
            self._head += data
            if len(self._head) < len(_SNAPPY_STREAM_ID):
                return
            self._choose()
            return
        self._inner.feed(data)

    def _choose(self) -> None:
        head, self._head = bytes(self._head), bytearray()
        framed = head.startswith(_SNAPPY_STREAM_ID)
        self._inner = _SnappyFramed(self.output) if framed else _SnappyBlock(self.output)
        self._inner.feed(head)

    def finish(self) -> None:
        if self._inner is None:
            self._choose()
        assert self._inner is not None
        self._inner.finish()

    @property
    def held(self) -> int:
        return self._inner.held if self._inner is not None else len(self._head)


def _zstd_decoder() -> Any:
    return zstd.ZstdDecompressor(options={zstd.DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX})


DECODERS: dict[str, Callable[[_Output], Decoder]] = {
    "": _Identity,
    "identity": _Identity,
    "gzip": lambda out: _Zlib(out, 31, "gzip"),
    "x-gzip": lambda out: _Zlib(out, 31, "gzip"),
    "deflate": lambda out: _Zlib(out, 15, "deflate (zlib)"),
    "zlib": lambda out: _Zlib(out, 15, "zlib"),
    "zstd": lambda out: _Framed(out, _zstd_decoder, "zstd (windows up to 8 MiB)", (zstd.ZstdError,)),
    "lz4": lambda out: _Framed(out, lz4.frame.LZ4FrameDecompressor, "lz4 (frame format)", (RuntimeError,)),
    "snappy": _Snappy,
    "x-snappy-framed": _SnappyFramed,
}
"""Content-Encoding (lower case) -> decoder factory."""

ACCEPTED_ENCODINGS = ", ".join(name for name in DECODERS if name not in ("", "identity"))


async def read_body(receive: Receive, encoding: str, limit: int,
                    hold: Callable[[int], bool] | None = None) -> bytes:
    """The whole decoded body; raises BodyTooLarge, BadCompression, ClientDisconnected or NoRoom.

    ``encoding`` must be a key of ``DECODERS``; ``hold(n)`` is asked whether the body may hold ``n``
    bytes in memory now."""
    output = _Output(limit)
    decoder = DECODERS[encoding](output)
    # Decoding runs on a worker thread (the decompressors release the GIL): one 64 KiB chunk of a bomb
    # inflates to the whole limit, ~0.25 s of CPU at 64 MiB, which on the event loop would stall every
    # client of both receivers (a few parallel bombs: seconds). A plain body is copied in place.
    compressed = encoding not in ("", "identity")
    wire = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            wire += len(chunk)
            if wire > limit:
                raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
            if chunk:
                if compressed:
                    await asyncio.to_thread(decoder.feed, chunk)
                else:
                    decoder.feed(chunk)
                if hold is not None and not hold(max(wire, decoder.held)):
                    raise NoRoom()
            if not message.get("more_body", False):
                break
        if compressed:
            await asyncio.to_thread(decoder.finish)  # a snappy block is decoded whole here
        else:
            decoder.finish()
    except BaseException:
        # free the body now: the exception's traceback keeps this frame (and the decoder) alive
        output.clear()
        raise
    return output.join()
