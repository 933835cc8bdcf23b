"""One stream control for the API whether detection runs or not: the same change gets the same answer, pages
cover every stream once, a live stream shows its live state."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.store.base import StreamInfo
from otlp_gateway.store.sqlite import SqliteStore
from otlp_gateway.streams.control import (
    InvalidCursorError,
    InvalidStreamChange,
    StreamControl,
    UnknownStreamError,
)
from tests.detection.support import open_run
from tests.otlp.otlp_data import logs_request, normal_logs

SETTINGS = DetectionSettings(overrides=[{"match": "logs/checkout/*", "window": 40},
                                        {"match": "logs/big/*", "baseline": 2000, "window": 1000}])


def _info(stream_id: str, state: str = "active") -> StreamInfo:
    signal, service, name = stream_id.split("/", 2)
    return StreamInfo(stream_id=stream_id, signal=signal, service=service, name=name, state=state,  # type: ignore[arg-type]
                      profile="balanced", settings={}, events_seen=0, updated_at=dt.datetime.now(dt.UTC))


async def _store(path: Path, ids: list[str]) -> SqliteStore:
    store = SqliteStore(path)
    await store.open()
    await store.migrate()
    for sid in ids:
        await store.upsert_stream(_info(sid))
    return store


CASES = [  # (stream, change, accepted?) judged against the stream's configured layers
    ("logs/checkout/app", {"hop": 45}, False),  # the override's window 40 < hop
    ("logs/big/app", {"hop": 600}, True),  # the override's window 1000 >= hop (balanced alone: 50)
    ("logs/other/app", {"hop": 45}, True),
    ("logs/checkout/app", {"window": 30, "hop": 30}, True),
    ("logs/other/app", {"baseline": 30}, False),
]


def test_the_same_change_gets_the_same_answer_with_and_without_detection(tmp_path: Path) -> None:
    """Before: the store-backed control (detection off) checked a change against the stream's stored
    profile only, the live one (detection on) against the configuration's overrides too, so PATCH
    ``{"hop": 45}`` on ``logs/checkout/app`` was accepted with detection off and refused with it on."""

    async def answers(detection: bool) -> list[bool]:
        ids = sorted({sid for sid, _, _ in CASES})
        out = []
        for i, (sid, change, _) in enumerate(CASES):
            db = tmp_path / f"{detection}-{i}.db"
            if detection:  # the stream is live in a running detection stage
                run = await open_run(db, overrides=[o.model_dump() for o in SETTINGS.overrides])
                service = sid.split("/")[1]
                await run.feed("logs", [logs_request(normal_logs(20, 1, service=service, scope="app"))])
                assert run.streams.get(sid) is not None
                control, close = run.control, run.close
            else:
                store = await _store(db, ids)
                control, close = StreamControl(SETTINGS.stream_settings(), store), store.close
            try:
                await control.update_stream(sid, change)
                out.append(True)
            except InvalidStreamChange:
                out.append(False)
            await close()
        return out

    expected = [ok for _, _, ok in CASES]
    assert asyncio.run(answers(detection=False)) == expected
    assert asyncio.run(answers(detection=True)) == expected


def test_changes_are_validated_by_the_settings_type_and_unknown_streams_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await _store(tmp_path / "v.db", ["logs/other/app"])
        control = StreamControl(SETTINGS.stream_settings(), store)
        with pytest.raises(UnknownStreamError):
            await control.update_stream("logs/none/app", {"hop": 5})
        with pytest.raises(InvalidStreamChange, match="window"):
            await control.update_stream("logs/other/app", {"window": 0})
        with pytest.raises(InvalidStreamChange, match="unknown setting"):
            await control.update_stream("logs/other/app", {"colour": "red"})
        updated = await control.update_stream("logs/other/app", {"profile": "strict", "hop": 30})
        assert (updated.profile, updated.settings) == ("strict", {"profile": "strict", "hop": 30})
        effective = control.effective(updated)
        assert effective is not None and (effective.window, effective.hop) == (100, 30)
        cleared = await control.update_stream("logs/other/app", {"profile": None})  # back to the config's
        assert (cleared.profile, cleared.settings) == ("balanced", {"hop": 30})
        assert await store.get_stream("logs/other/app") == cleared
        await store.close()

    asyncio.run(scenario())


def test_pages_cover_every_stream_once_in_order_and_filter_by_state(tmp_path: Path) -> None:
    ids = [f"traces/svc{i % 7}/op-{i:03d}" for i in range(250)]

    async def scenario() -> None:
        store = await _store(tmp_path / "p.db", ids)
        await store.upsert_stream(_info("traces/svc0/op-000", state="warming"))
        control = StreamControl(SETTINGS.stream_settings(), store)
        seen, cursor, pages = [], None, 0
        while True:
            page = await control.list_streams(limit=100, cursor=cursor)
            assert len(page.items) <= 100
            seen += [i.stream_id for i in page.items]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == sorted(ids) and pages == 3
        warming = await control.list_streams(state="warming")
        assert [i.stream_id for i in warming.items] == ["traces/svc0/op-000"]
        with pytest.raises(InvalidCursorError):
            await control.list_streams(cursor="bm9wZQ")
        await store.close()

    asyncio.run(scenario())


def test_a_live_stream_is_listed_with_its_live_state_and_counts(tmp_path: Path) -> None:
    async def scenario() -> None:
        run = await open_run(tmp_path / "l.db")
        await run.feed("logs", [logs_request(normal_logs(30, 1))])
        await run.stage.drain()
        [listed] = (await run.control.list_streams()).items
        stored = await run.store.get_stream(listed.stream_id)
        assert stored is not None and stored.events_seen == 0  # the row is written before scoring
        assert listed.events_seen == 30 and listed.state == "warming"
        await run.close()

    asyncio.run(scenario())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path):
    from tests.store.support import target_for

    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    return target_for(request.param, tmp_path, dsn)


def test_both_stores_page_streams_in_code_point_order(store_target) -> None:
    """The control's cursor is the last stream id: both backends must order and compare ids alike."""
    ids = ["traces/Zeta/a", "traces/alpha/b", "traces/alpha/B", "logs/é/x", "logs/e/x", "metrics/_/1",
           "traces/alpha/b c", "traces/ALPHA/b"]

    async def scenario() -> None:
        async with store_target.opened() as store:
            for sid in ids:
                await store.upsert_stream(_info(sid, state="warming" if "alpha" in sid else "active"))
            control = StreamControl(SETTINGS.stream_settings(), store)
            seen, cursor = [], None
            while True:
                page = await control.list_streams(limit=3, cursor=cursor)
                seen += [i.stream_id for i in page.items]
                if (cursor := page.next_cursor) is None:
                    break
            assert seen == sorted(ids)
            after = await store.list_streams(after="traces/alpha/B", limit=2, state="warming")
            assert [i.stream_id for i in after.items] == ["traces/alpha/b", "traces/alpha/b c"]

    asyncio.run(scenario())
