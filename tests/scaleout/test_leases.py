"""The lease protocol's store steps and ``StreamOwnership`` on both backends: claim, request, hand over,
take over a lapsed lease, release, and a second process under the same instance id."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from otlp_gateway.streams.ownership import OwnershipSettings, StreamOwnership
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.store.support import StoreTarget, run

FAST = OwnershipSettings(heartbeat_interval_seconds=0.1, lease_ttl_seconds=0.5, handoff_quiet_seconds=0.05,
                         handoff_timeout_seconds=0.5)


def _count(metrics: GatewayMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_claim_request_and_hand_over(store_target: StoreTarget) -> None:
    async def scenario() -> None:
        async with store_target.opened() as store:
            a = StreamOwnership(store, FAST, GatewayMetrics(), "gw-a")
            b = StreamOwnership(store, FAST, GatewayMetrics(), "gw-b")
            assert await a.register() and await b.register()
            assert (await a.claim("s1")).owned
            assert (await a.claim("s1")).owned, "a gateway's own lease is its own"
            held = await b.claim("s1")
            assert not held.owned and held.holder == "gw-a"
            beat = await a.heartbeat()
            assert beat is not None and beat.leases == 1
            assert [(r.stream_id, r.requested_by) for r in beat.requests] == [("s1", "gw-b")]
            assert not (await b.claim("s1")).owned, "asking twice changes nothing"
            assert await a.let_go("s1") == "transferred"
            assert (await b.claim("s1")).owned
            assert await store.owned_streams("gw-b") == {"s1"} and await store.owned_streams("gw-a") == set()
            assert await b.let_go("s1") == "released", "nobody asks: the lease is simply released"
            assert await store.get_lease("s1") is None

    run(scenario())


def test_withdrawn_request_and_release_on_close(store_target: StoreTarget) -> None:
    async def scenario() -> None:
        async with store_target.opened() as store:
            a = StreamOwnership(store, FAST, GatewayMetrics(), "gw-a")
            b = StreamOwnership(store, FAST, GatewayMetrics(), "gw-b")
            await a.register()
            await b.register()
            for sid in ("s1", "s2", "s3"):
                assert (await a.claim(sid)).owned
            assert not (await b.claim("s2")).owned
            await b.withdraw("s2")
            beat = await a.heartbeat()
            assert beat is not None and beat.requests == [] and beat.leases == 3
            await a.close()
            assert await store.owned_streams("gw-a") == set()
            assert (await b.claim("s2")).owned, "a gateway that shut down leaves its streams free"

    run(scenario())


def test_a_lapsed_lease_is_taken_over_and_counted(store_target: StoreTarget,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with store_target.opened() as store:
            a = StreamOwnership(store, FAST, GatewayMetrics(), "gw-a")
            metrics_b = GatewayMetrics()
            b = StreamOwnership(store, FAST, metrics_b, "gw-b")
            await a.register()
            await b.register()
            assert (await a.claim("s1")).owned
            assert not (await b.claim("s1")).owned  # gw-a is alive
            # gw-a stops heart-beating (a crash): after its lease lapses gw-b takes the stream over
            deadline = time.monotonic() + 10
            while True:
                claim = await b.claim("s1")
                if claim.owned:
                    break
                assert time.monotonic() < deadline, "the lapsed lease was never taken over"
                await asyncio.sleep(0.05)
            assert claim.took_over_from == "gw-a"
            lapsed = {"direction": "in", "reason": "lapsed"}
            assert _count(metrics_b, "driftlock_stream_handoffs_total", lapsed) == 1
            # the old owner comes back: the lease is gone from it (gw-b, heart-beating, keeps it)
            assert await b.heartbeat() is not None
            beat = await a.heartbeat()
            assert beat is not None and beat.leases == 0
            assert not (await a.claim("s1")).owned

    with caplog.at_level(logging.WARNING, logger="otlp_gateway.streams.ownership"):
        run(scenario())
    assert any("took stream s1 over from gateway 'gw-a'" in r.getMessage() for r in caplog.records)


def test_a_second_process_with_the_same_instance_id_is_reported(store_target: StoreTarget,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with store_target.opened() as store:
            first = StreamOwnership(store, FAST, GatewayMetrics(), "gw-same")
            second = StreamOwnership(store, FAST, GatewayMetrics(), "gw-same")
            await first.register()
            await second.register()  # takes the row over with its own token
            assert await first.heartbeat() is not None  # re-registers, loudly

    with caplog.at_level(logging.ERROR, logger="otlp_gateway.streams.ownership"):
        run(scenario())
    assert any("instance ids must be unique" in r.getMessage() for r in caplog.records)


def test_settings_refuse_inconsistent_timings() -> None:
    with pytest.raises(ValueError, match="at least 3 heartbeat"):
        OwnershipSettings(heartbeat_interval_seconds=1, lease_ttl_seconds=2)
    with pytest.raises(ValueError, match="at least lease_ttl_seconds"):
        OwnershipSettings(lease_ttl_seconds=10, handoff_timeout_seconds=5)
    assert OwnershipSettings(heartbeat_interval_seconds="200ms", lease_ttl_seconds="2s",
                             handoff_timeout_seconds="3s").lease_ttl_seconds == 2.0
    # an unset timing follows the ones that are set
    slow = OwnershipSettings(heartbeat_interval_seconds="5s")
    assert (slow.lease_ttl_seconds, slow.handoff_timeout_seconds) == (15.0, 15.0)
    assert OwnershipSettings(handoff_quiet_seconds=20).handoff_timeout_seconds == 23.0
    assert OwnershipSettings().active("postgres") and not OwnershipSettings().active("sqlite")
    assert OwnershipSettings(enabled=True).active("sqlite")


def test_a_lease_is_never_passed_to_a_gateway_that_left(store_target: StoreTarget) -> None:
    async def scenario() -> None:
        async with store_target.opened() as store:
            a = StreamOwnership(store, FAST, GatewayMetrics(), "gw-a")
            b = StreamOwnership(store, FAST, GatewayMetrics(), "gw-b")
            await a.register()
            await b.register()
            assert (await a.claim("s1")).owned and (await a.claim("s2")).owned
            assert not (await b.claim("s1")).owned and not (await b.claim("s2")).owned
            await b.close()  # shuts down: its requests go with it
            beat = await a.heartbeat()
            assert beat is not None and beat.requests == []
            assert await a.let_go("s1") == "released"
            # a requester whose heartbeat lapsed (it crashed) is not handed anything either
            c = StreamOwnership(store, FAST, GatewayMetrics(), "gw-c")
            await c.register()
            assert not (await c.claim("s2")).owned
            await asyncio.sleep(FAST.lease_ttl_seconds + 0.2)
            assert await a.heartbeat() is not None
            assert await a.let_go("s2") == "released"
            assert await store.get_lease("s2") is None

    run(scenario())
