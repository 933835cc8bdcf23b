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
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

TAG_SIZE = 4


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    header: dict[str, Any]
    arrays: dict[str, np.ndarray]
    """Writable copies."""


def encode(tag: bytes, version: int, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """The snapshot bytes of ``header`` (JSON-serialisable, without an ``"arrays"`` key) and ``arrays``."""
    if len(tag) != TAG_SIZE or not 0 < version < 256:
        raise ValueError("a snapshot tag has 4 bytes and a version in 1..255")
    if "arrays" in header:
        raise ValueError('"arrays" is the codec\'s own header key')
    listed = {**header, "arrays": [[name, str(a.dtype), list(a.shape)] for name, a in arrays.items()]}
    head = json.dumps(listed, sort_keys=True).encode()
    return b"".join([tag, bytes([version]), struct.pack("<I", len(head)), head,
                     *(np.ascontiguousarray(a).tobytes() for a in arrays.values())])


def decode(data: bytes, tag: bytes) -> Snapshot:
    """Header and arrays of a snapshot written by :func:`encode` with ``tag``; ValueError otherwise."""
    start = TAG_SIZE + 1 + 4
    if len(data) < start or data[:TAG_SIZE] != tag:
        raise ValueError(f"not a {tag.decode(errors='replace')} snapshot")
    version = data[TAG_SIZE]
    (size,) = struct.unpack_from("<I", data, TAG_SIZE + 1)
    try:
        header = json.loads(data[start:start + size])
        listed = header.pop("arrays")
        pos = start + size
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, shape in listed:
            count = int(np.prod(shape)) if shape else 1
            a = np.frombuffer(data, dtype=np.dtype(dtype), count=count, offset=pos).reshape(shape)
            arrays[name] = a.copy()
            pos += a.nbytes
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"corrupt {tag.decode(errors='replace')} snapshot: {exc}") from None
    if pos != len(data):
        raise ValueError(f"corrupt {tag.decode(errors='replace')} snapshot: {len(data) - pos} stray bytes")
    return Snapshot(version, header, arrays)
