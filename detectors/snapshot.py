"""The one snapshot format shared by every detector: a versioned header and named raw arrays, no pickle.

Layout: a 4-byte tag naming the detector kind, one version byte, the header length (uint32,
little-endian), the header (JSON, sorted keys), then the arrays' bytes in the order the header lists them
under ``"arrays"`` as ``[name, dtype, shape]`` (C order, native little-endian dtypes). A detector bumps its
version when its state changes meaning and keeps reading the versions before it.

>>> import numpy as np
>>> data = encode(b"DEMO", 1, {"seen": 3}, {"ring": np.arange(3.0)})
>>> snap = decode(data, b"DEMO")
>>> snap.version, snap.header["seen"], snap.arrays["ring"].tolist()
(1, 3, [0.0, 1.0, 2.0])
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

TAG_SIZE = 4


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    header: dict[str, Any]
    arrays: dict[str, np.ndarray]
    """Writable copies (but the ``views`` asked of ``decode``)."""


def encode(tag: bytes, version: int, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """The snapshot bytes of ``header`` (JSON-serialisable, without an ``"arrays"`` key) and ``arrays``."""
    if len(tag) != TAG_SIZE or not 0 < version < 256:
        raise ValueError("a snapshot tag has 4 bytes and a version in 1..255")
    if "arrays" in header:
        raise ValueError('"arrays" is the codec\'s own header key')
    listed = {**header, "arrays": [[name, _dtype_name(a.dtype), list(a.shape)] for name, a in arrays.items()]}
    head = json.dumps(listed, sort_keys=True).encode()
    # the arrays' buffers as they are (a copy only for a non-contiguous one): joined once, into the result
    buffers = (a.data if a.flags.c_contiguous else np.ascontiguousarray(a).data for a in arrays.values())
    return b"".join([tag, bytes([version]), struct.pack("<I", len(head)), head, *buffers])


def decode(data: bytes | memoryview, tag: bytes, views: Collection[str] = ()) -> Snapshot:
    """Header and arrays of a snapshot written by :func:`encode` with ``tag``; ValueError otherwise. The
    arrays are writable copies, but those named in ``views``: read-only views of ``data``, for arrays the
    caller only reads once (a copy of them would be thrown away)."""
    start = TAG_SIZE + 1 + 4
    if len(data) < start or bytes(data[:TAG_SIZE]) != tag:
        raise ValueError(f"not a {tag.decode(errors='replace')} snapshot")
    version = data[TAG_SIZE]
    (size,) = struct.unpack_from("<I", data, TAG_SIZE + 1)
    try:
        header = json.loads(bytes(data[start:start + size]))
        listed = header.pop("arrays")
        pos = start + size
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, shape in listed:
            count = math.prod(shape)
            if count < 0:
                raise ValueError(f"array {name!r} has a negative size")
            a = np.frombuffer(data, dtype=_dtype(dtype), count=count, offset=pos)
            arrays[name] = a.reshape(shape) if name in views else a.reshape(shape).copy()
            pos += a.nbytes
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"corrupt {tag.decode(errors='replace')} snapshot: {exc}") from None
    if pos != len(data):
        raise ValueError(f"corrupt {tag.decode(errors='replace')} snapshot: {len(data) - pos} stray bytes")
    return Snapshot(version, header, arrays)


# Per-array overhead is most of a restore's codec time (a snapshot has ~20 small arrays): the dtype names
# and parsed dtypes are memoised instead of being worked out by numpy for every array.
_NAMES: dict[np.dtype, str] = {}
_DTYPES: dict[str, np.dtype] = {}


def _dtype_name(dtype: np.dtype) -> str:
    name = _NAMES.get(dtype)
    if name is None:
        name = _NAMES[dtype] = str(dtype)
    return name


def _dtype(name: str) -> np.dtype:
    dtype = _DTYPES.get(name)
    if dtype is None:
        dtype = np.dtype(name)
        if len(_DTYPES) < 256:  # names come from stored bytes: bound what they can make us keep
            _DTYPES[name] = dtype
    return dtype
