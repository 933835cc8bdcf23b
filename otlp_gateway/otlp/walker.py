"""The walk of one trace or log request, from Python: tables sized and grown, errors worded.

``RequestWalker.walk`` runs ``_kernels.walk.walk`` (numba, GIL released) over the request bytes and returns
a ``Walk``: counts, invalid items, attributes capped for detection and, in extract mode, views of the
tables the event extraction reads. Not thread-safe: one walker per thread (it reuses its tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from otlp_gateway.otlp._kernels import walk as w
from otlp_gateway.otlp._kernels.wire import MAX_DEPTH, hash_bytes
from otlp_gateway.otlp.schema import SCHEMAS

WalkedSignal = Literal["traces", "logs"]
KEEP_ITEMS = 1 << 16
"""Item rows (and their companions) a walker keeps between requests, at most (a few MiB)."""

_REQUEST_NAMES = {"traces": "ExportTraceServiceRequest", "logs": "ExportLogsServiceRequest"}
_ERRORS = {
    w.ERR_TAG: "invalid or truncated field tag",
    w.ERR_TRUNCATED: "field runs past the end of its message",
    w.ERR_WIRE_TYPE: "invalid wire type",
    w.ERR_GROUP: "group not closed (or closed with another field number)",
    w.ERR_UTF8: "string field is not valid UTF-8",
    w.ERR_DEPTH: f"messages nested deeper than {MAX_DEPTH} levels",
}


class MalformedRequest(ValueError):
    """The body does not decode as the signal's Export*ServiceRequest (the message says why and where)."""


@dataclass(frozen=True, slots=True)
class Lookups:
    """Attribute keys whose values the walk records on every item and on every resource."""

    item_keys: tuple[str, ...] = ()
    resource_keys: tuple[str, ...] = ()

    def tables(self) -> w.Lookups:
        encoded = [key.encode() for key in (*self.item_keys, *self.resource_keys)]
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8) if any(encoded) else np.zeros(1, np.uint8)
        ranges = np.zeros((len(encoded), 2), dtype=np.int64)
        ranges[:, 1] = [len(e) for e in encoded]
        ranges[1:, 0] = np.cumsum(ranges[:-1, 1])
        hashes = np.array([hash_bytes(blob, int(o), int(n)) for o, n in ranges], dtype=np.uint64)
        split = len(self.item_keys)
        return w.Lookups(blob, ranges[:split].copy(), hashes[:split].copy(), ranges[split:].copy(),
                         hashes[split:].copy())


@dataclass(frozen=True, slots=True)
class Walk:
    """What one walk found; the table views stay valid until the walker's next walk."""

    payload: bytes
    buf: np.ndarray
    items: int
    invalid: int
    """Items whose ids break the OTLP rules (the caller drops them)."""
    needs_normalizing: bool
    """Extract mode: the tables do not model this request (a merged AnyValue); walk upb's
    re-serialization of it instead."""
    capped_item_attributes: int = 0
    capped_request_keys: int = 0
    tables: w.WalkTables | None = None
    """Extract mode: views of exactly ``items`` items, their kept attributes, the resources and scopes."""


class RequestWalker:
    """Walks requests of one signal; ``lookups`` and the caps matter in extract mode only."""

    def __init__(self, signal: WalkedSignal, lookups: Lookups = Lookups(), max_item_attributes: int = 128,
                 max_request_keys: int = 1024):
        if max_item_attributes < 0 or max_request_keys < 0:
            raise ValueError("attribute caps must be >= 0")
        self.signal = signal
        self._schema = SCHEMAS[signal]
        self._lookups = lookups.tables()
        self._n_item_keys = len(lookups.item_keys)
        self._n_resource_keys = len(lookups.resource_keys)
        logs = int(signal == "logs")
        self._extract_options = w.WalkOptions(logs, 1, max_item_attributes, max_request_keys)
        self._check_options = w.WalkOptions(logs, 0, max_item_attributes, max_request_keys)
        self._tables = self._allocate(0, 0, 0, 0, key_slots=_power_of_two(2 * max_request_keys + 2))
        self._no_tables = self._allocate(0, 0, 0, 0, key_slots=1)

    def _allocate(self, items: int, kvs: int, resources: int, scopes: int, key_slots: int) -> w.WalkTables:
        return w.WalkTables(
            items=np.zeros((items, w.ITEM_COLUMNS), dtype=np.int64),
            times=np.zeros((items, 2), dtype=np.uint64),
            item_values=np.zeros((items, self._n_item_keys, 2), dtype=np.int64),
            kvs=np.zeros((kvs, w.KV_COLUMNS), dtype=np.int64),
            resource_values=np.zeros((resources, self._n_resource_keys, 2), dtype=np.int64),
            scopes=np.zeros((scopes, 2), dtype=np.int64),
            key_set=np.zeros(key_slots, dtype=np.uint64),
            counts=np.zeros(w.COUNTS, dtype=np.int64))

    def _room(self, items: int, kvs: int, resources: int, scopes: int) -> None:
        """Grow the tables to hold at least these rows; tables grown for an outsized request (more than
        ``KEEP_ITEMS`` items and four times what this request needs) are given back."""
        t = self._tables
        need = (items, kvs, resources, scopes)
        have = (t.items.shape[0], t.kvs.shape[0], t.resource_values.shape[0], t.scopes.shape[0])
        if have[0] > max(KEEP_ITEMS, 4 * items):
            self._tables = self._allocate(items, kvs, resources, scopes, key_slots=t.key_set.size)
            return
        if all(n <= h for n, h in zip(need, have, strict=True)):
            return
        items, kvs, resources, scopes = (h if n <= h else max(n, 2 * h)
                                         for n, h in zip(need, have, strict=True))
        self._tables = self._allocate(items, kvs, resources, scopes, key_slots=t.key_set.size)

    def walk(self, payload: bytes, extract: bool) -> Walk:
        """Validate and count (and with ``extract`` record) ``payload``; raise ``MalformedRequest``."""
        buf = np.frombuffer(payload, dtype=np.uint8)
        if not extract:
            tables, code = self._no_tables, w.walk(buf, self._schema, self._lookups, self._check_options,
                                                   self._no_tables)
        else:
            size = buf.size  # first guess from typical sizes; the walk reports what it really needs
            self._room(size // 128 + 8, size // 32 + 16, size // 1024 + 4, size // 1024 + 4)
            code = w.walk(buf, self._schema, self._lookups, self._extract_options, self._tables)
            if code == w.NEEDS_ROOM:
                c = self._tables.counts
                self._room(int(c[w.C_ITEMS]), int(c[w.C_KVS]), int(c[w.C_RESOURCES]), int(c[w.C_SCOPES]))
                code = w.walk(buf, self._schema, self._lookups, self._extract_options, self._tables)
            tables = self._tables
        counts = tables.counts
        if code < 0:
            raise MalformedRequest(f"body is not a valid {_REQUEST_NAMES[self.signal]}: {_ERRORS[code]} "
                                   f"(at byte {int(counts[w.C_ERROR_AT])})")
        if code == w.NEEDS_ROOM:  # the second walk had exactly the rows it asked for
            raise RuntimeError("the walk asked for more room twice")
        items = int(counts[w.C_ITEMS])
        views = None
        if extract:
            n_kvs, n_res, n_scopes = (int(counts[i]) for i in (w.C_KVS, w.C_RESOURCES, w.C_SCOPES))
            views = w.WalkTables(tables.items[:items], tables.times[:items], tables.item_values[:items],
                                 tables.kvs[:n_kvs], tables.resource_values[:n_res], tables.scopes[:n_scopes],
                                 tables.key_set, counts)
        return Walk(payload, buf, items, int(counts[w.C_INVALID]), code == w.NEEDS_NORMALIZING,
                    int(counts[w.C_CAPPED_ITEM]), int(counts[w.C_CAPPED_KEYS]), views)


def _power_of_two(n: int) -> int:
    return 1 << max(3, (n - 1).bit_length())


def lookups_for(parts: Sequence[str], explicit_key: str) -> Lookups:
    """The keys a stream key with ``parts`` reads: the explicit stream id and every attribute part on the
    item; on the resource also ``service.name`` (the service of every key)."""
    attribute_parts = [p for p in parts if p not in ("signal", "name")]
    item_keys = dict.fromkeys([explicit_key, *attribute_parts])
    resource_keys = dict.fromkeys(["service.name", explicit_key, *attribute_parts])
    return Lookups(tuple(item_keys), tuple(resource_keys))
