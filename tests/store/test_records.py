"""Streams, detector snapshots, API keys and the audit log round trip on both backends."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from otlp_gateway.store import AlreadyExistsError
from otlp_gateway.store.base import ApiKey, AuditEntry, StreamInfo, all_streams
from tests.store.support import T0, StoreTarget, run


def _stream(i: int, **changes: object) -> StreamInfo:
    info = StreamInfo(stream_id=f"s{i}", signal="logs", service="cart", name=f"stream {i}", state="warming",
                      profile="default", settings={"window": 200, "enabled": True}, events_seen=10 * i,
                      updated_at=T0 + dt.timedelta(seconds=i))
    return dataclasses.replace(info, **changes)  # type: ignore[arg-type]


def test_streams_upsert_list_get(store_target: StoreTarget) -> None:
    async def body() -> None:
        async with store_target.opened() as store:
            for i in (2, 1, 3):
                await store.upsert_stream(_stream(i))
            changed = _stream(2, state="active", settings={"window": 500, "hop": 10}, events_seen=12345)
            await store.upsert_stream(changed)
            assert [s.stream_id for s in (await store.list_streams()).items] == ["s1", "s2", "s3"]
            assert await store.get_stream("s2") == changed
            assert await store.get_stream("nope") is None

    run(body())


def test_streams_list_in_pages_after_a_stream_id(store_target: StoreTarget) -> None:
    async def body() -> None:
        async with store_target.opened() as store:
            for i in (5, 3, 7, 1, 2, 6, 4):
                await store.upsert_stream(_stream(i))
            pages: list[list[str]] = []
            after = None
            while True:
                page = await store.list_streams(after, 3)
                pages.append([s.stream_id for s in page.items])
                if page.next_after is None:
                    break
                assert page.next_after == page.items[-1].stream_id
                after = page.next_after
            assert pages == [["s1", "s2", "s3"], ["s4", "s5", "s6"], ["s7"]]
            exact = await store.list_streams("s4", 3)  # a full last page says so: no empty extra page
            assert [s.stream_id for s in exact.items] == ["s5", "s6", "s7"] and exact.next_after is None
            assert (await store.list_streams("s9", 3)).items == []
            everything = await all_streams(store, page_size=2)
            assert [s.stream_id for s in everything] == [f"s{i}" for i in range(1, 8)]
            with pytest.raises(ValueError):
                await store.list_streams(None, 0)

    run(body())


def test_stream_services_are_distinct_in_code_point_order(store_target: StoreTarget) -> None:
    async def body() -> None:
        async with store_target.opened() as store:
            assert await store.stream_services() == []
            for i, service in enumerate(["cart", "Zeta", "cart", "ab", "a-b", "cart", "éclair", "b"]):
                await store.upsert_stream(_stream(i, service=service))
            # code points: "-" < uppercase < lowercase < "é", whatever the database's collation
            assert await store.stream_services() == ["Zeta", "a-b", "ab", "b", "cart", "éclair"]
            assert await store.stream_services(limit=2) == ["Zeta", "a-b"]
            with pytest.raises(ValueError):
                await store.stream_services(0)

    run(body())


def test_detector_state_snapshots(store_target: StoreTarget) -> None:
    blob = bytes(range(256)) * 100

    async def body() -> None:
        async with store_target.opened() as store:
            assert await store.load_state("s1") is None
            await store.save_state("s1", blob)
            assert await store.load_state("s1") == blob
            await store.save_state("s1", b"\x00newer")
            assert await store.load_state("s1") == b"\x00newer"

    run(body())


def test_api_keys(store_target: StoreTarget) -> None:
    key = ApiKey(key_id="k1", name="ci", role="read", secret_hash="$argon2id$v=19$...", created_at=T0)

    async def body() -> None:
        async with store_target.opened() as store:
            await store.create_api_key(key)
            with pytest.raises(AlreadyExistsError):
                await store.create_api_key(key)
            await store.create_api_key(dataclasses.replace(key, key_id="k0", created_at=T0 + dt.timedelta(1)))
            assert await store.get_api_key("k1") == key
            hour = dt.timedelta(hours=1)
            rotated = dataclasses.replace(key, secret_hash="$argon2id$new", rotated_at=T0 + hour,
                                          revoked_at=T0 + 2 * hour, role="admin")
            await store.update_api_key(rotated)
            await store.touch_api_key("k1", T0 + dt.timedelta(hours=3))
            got = await store.get_api_key("k1")
            assert got == dataclasses.replace(rotated, last_used_at=T0 + dt.timedelta(hours=3))
            assert [k.key_id for k in await store.list_api_keys()] == ["k1", "k0"]
            assert await store.get_api_key("missing") is None

    run(body())


def test_audit_log_append_and_page(store_target: StoreTarget) -> None:
    async def body() -> None:
        async with store_target.opened() as store:
            entries = [AuditEntry(actor=f"key:k{i % 2}", action="stream.update", target=f"stream:s{i}",
                                  before={"window": i} if i else None, after={"window": i + 1},
                                  at=T0 + dt.timedelta(seconds=i // 2)) for i in range(11)]
            ids = [await store.append_audit(e) for e in entries]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            walked: list[AuditEntry] = []
            cursor = None
            while True:
                page, cursor = await store.query_audit(None, None, 4, cursor)
                walked.extend(page)
                if cursor is None:
                    break
            assert [e.id for e in walked] == list(reversed(ids))
            assert walked[-1] == entries[0]
            only, _ = await store.query_audit(T0 + dt.timedelta(seconds=2), "key:k1", 100, None)
            assert [e.target for e in only] == ["stream:s9", "stream:s7", "stream:s5"]

    run(body())
