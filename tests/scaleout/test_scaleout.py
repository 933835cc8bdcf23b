"""Gateways as child processes sharing one real Postgres, behind a client that routes by ``service.name``
over the collector loadbalancing exporter's consistent-hash ring (``tests/scaleout/ring.py``: the bundled
``otelcol-contrib`` has no loadbalancing exporter), sending through the SDK's OTLP/gRPC exporter.

Two gateways; a third joins (streams move to it from live owners: handoff with a fresh snapshot); one
leaves (SIGTERM: its streams are snapshotted and released, and claimed by the new owners). The anomalies
stored by the pool must equal, row for row, those of one gateway fed the same requests: a moved stream's
first window after the move is scored from its previous owner's latest state, nothing re-warms, nothing
is written twice. Then a misrouted client: a stream sent to two gateways at once is detected through its
lease, reported in metrics and logs, and scored by one gateway only. No telemetry is lost in either.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.fixtures.downstream import ThreadedDownstream
from tests.fixtures.waiting import wait_until
from tests.scaleout.ring import HashRing, RingLogClient, sdk_log_records
from tests.scaleout.support import (
    BURST,
    TAIL,
    WARM_UP,
    chunks,
    metric,
    metrics_of,
    phase_records,
    reference_anomalies,
    start_gateway,
    stored,
    summary,
)

pytestmark = pytest.mark.postgres
PER_GROUP = 3
"""Services per placement group (see ``_pick_services``)."""


def _pick_services(g1: str, g2: str, g3: str) -> dict[str, list[str]]:
    """Services whose placements cover every case, for this run's ports: ``to_g3`` move from a live
    owner to the new gateway, ``from_g1`` stay on g1 until it leaves, ``stay`` never move."""
    two, three, after = HashRing([g1, g2]), HashRing([g1, g2, g3]), HashRing([g2, g3])
    groups: dict[str, list[str]] = {"to_g3": [], "from_g1": [], "stay": []}
    for i in itertools.count():
        service = f"svc-{i:03d}"
        first, second = two.endpoint_for(service), three.endpoint_for(service)
        third = after.endpoint_for(service)
        if first != second:
            group = "to_g3"
        elif second == g1:
            group = "from_g1"
        elif first == second == third:
            group = "stay"
        else:
            continue
        if len(groups[group]) < PER_GROUP:
            groups[group].append(service)
        if all(len(g) == PER_GROUP for g in groups.values()):
            return groups
        assert i < 10_000, groups


def test_streams_move_with_their_state_when_gateways_join_and_leave(
        tmp_path: Path, pg_dsn: str, downstream: ThreadedDownstream) -> None:
    gateways = {name: start_gateway(tmp_path, name, pg_dsn, downstream.endpoint) for name in ("g1", "g2")}
    client: RingLogClient | None = None
    try:
        g1, g2 = gateways["g1"].grpc_endpoint, gateways["g2"].grpc_endpoint
        gateways["g3"] = start_gateway(tmp_path, "g3", pg_dsn, downstream.endpoint)
        g3 = gateways["g3"].grpc_endpoint
        groups = _pick_services(g1, g2, g3)
        services = sorted(s for group in groups.values() for s in group)
        # each stream's burst comes right after its move (once per stream: see phase_records)
        burst_phase = {s: 2 if s in groups["from_g1"] else 1 for s in services}
        requests: list[list] = []
        sent = 0

        def send(phase: int) -> None:
            nonlocal sent
            assert client is not None
            for service in services:
                for part in chunks(phase_records(service, phase, burst=phase == burst_phase[service])):
                    client.export(sdk_log_records(part))
                    requests.append(part)
                    sent += len(part)

        # two gateways; g3 runs but is not in the ring yet
        client = RingLogClient([g1, g2])
        send(0)
        # g3 joins the ring: the moved streams are handed over by their live owners
        client.set_endpoints([g1, g2, g3])
        assert sorted(s for s in services if client.owner(s) == g3) == sorted(groups["to_g3"])
        send(1)
        wait_until(lambda: metric(metrics_of(gateways["g3"]), "driftlock_stream_handoffs_total",
                                  direction="in", reason="handoff") == PER_GROUP,
                   30, "the streams moved to g3 to be handed over")
        handed_out = sum(metric(metrics_of(gateways[g]), "driftlock_stream_handoffs_total",
                                direction="out", reason="handoff") for g in ("g1", "g2"))
        assert handed_out == PER_GROUP
        # g1 leaves: SIGTERM (snapshots and releases its streams), then the ring drops it
        g1_final = metrics_of(gateways["g1"])
        assert gateways["g1"].terminate() == 0
        client.set_endpoints([g2, g3])
        send(2)

        downstream.wait_for(lambda: downstream.log_record_count() == sent, 60,
                            f"every record forwarded ({sent} sent)")
        expected = summary(reference_anomalies(requests, tmp_path / "reference.db"))
        assert expected, "the reference run found no anomaly: the comparison would prove nothing"
        wait_until(lambda: summary(stored(pg_dsn, tmp_path)[0]) == expected, 60,
                   "the pool's anomalies to equal the single gateway's")
        finals = [g1_final, *(metrics_of(gateways[g]) for g in ("g2", "g3"))]
        for name in ("g2", "g3"):
            assert gateways[name].terminate() == 0  # shutdown snapshots: stream rows get their counts
    finally:
        if client is not None:
            client.close()
        for gateway in gateways.values():
            if gateway.proc is not None and gateway.proc.poll() is None:
                gateway.kill()

    records, streams = stored(pg_dsn, tmp_path)
    by_service = {s.service: s for s in streams}
    for service in services:
        # every stream kept counting where it left off: no re-warm, no fresh detector after a move
        assert by_service[service].events_seen == WARM_UP + 2 * TAIL, service
        assert by_service[service].state == "active", service
    for service in services:
        # the burst was found where it is, in the first windows after the move: scored at once
        burst = WARM_UP + (burst_phase[service] - 1) * TAIL + BURST.start
        windows = [(r.window_start_offset, r.window_end_offset) for r in records if r.service == service]
        assert any(start <= burst < end for start, end in windows), (service, burst, windows)
    assert len({r.id for r in records}) == len(records)
    for values in finals:
        assert metric(values, "driftlock_stream_ownership_conflicts_total", side="owner") == 0
        assert metric(values, "driftlock_stream_ownership_conflicts_total", side="requester") == 0
        assert metric(values, "driftlock_stream_handoffs_total", direction="in", reason="lapsed") == 0
        assert metric(values, "driftlock_ownership_unscored_events_total", stream_type="logs") == 0
        assert metric(values, "driftlock_detector_dropped_events_total", stream_type="logs") == 0


def test_a_stream_sent_to_two_gateways_is_reported_and_scored_once(
        tmp_path: Path, pg_dsn: str, downstream: ThreadedDownstream) -> None:
    # a longer quiet period than the rounds below take: the owner must keep receiving the stream
    gateways = [start_gateway(tmp_path, name, pg_dsn, downstream.endpoint, handoff_quiet_seconds=1.0)
                for name in ("g1", "g2")]
    service = "checkout"
    router = RingLogClient([g.grpc_endpoint for g in gateways])
    owner = next(g for g in gateways if g.grpc_endpoint == router.owner(service))
    other = next(g for g in gateways if g is not owner)
    misrouted = RingLogClient([other.grpc_endpoint])  # a client that sends everything to one gateway
    sent = {"router": 0, "misrouted": 0}
    try:
        warm = phase_records(service, 0)
        for part in chunks(warm):
            router.export(sdk_log_records(part))
            sent["router"] += len(part)
        # both clients keep sending the same service, each to its own gateway
        extra = iter(phase_records(service, 1) * 40)
        rounds = 0

        def both_send() -> bool:
            nonlocal rounds
            rounds += 1
            for client, key in ((router, "router"), (misrouted, "misrouted")):
                part = list(itertools.islice(extra, 10))
                client.export(sdk_log_records(part))
                sent[key] += len(part)
            reported = [metric(metrics_of(g), "driftlock_stream_ownership_conflicts_total", side=side)
                        for g, side in ((owner, "owner"), (other, "requester"))]
            return all(reported)

        wait_until(both_send, 60, "both gateways to report the conflict")
        owner_metrics = metrics_of(owner)
        wait_until(lambda: downstream.log_record_count() == sum(sent.values()), 60,
                   "every record of both clients forwarded")
        # held events are counted when the hold gives up on them (the owner keeps the stream): it lags the
        # forwarding under load, and ends at exactly the misrouted client's count
        wait_until(lambda: metric(metrics_of(other), "driftlock_ownership_unscored_events_total",
                                  stream_type="logs") >= sent["misrouted"], 60,
                   "the misrouted records counted unscored")
        assert metric(metrics_of(other), "driftlock_ownership_unscored_events_total",
                      stream_type="logs") == sent["misrouted"]
        assert metric(owner_metrics, "driftlock_ownership_unscored_events_total", stream_type="logs") == 0
        for gateway in gateways:
            assert gateway.terminate() == 0
    finally:
        router.close()
        misrouted.close()
        for gateway in gateways:
            if gateway.proc is not None and gateway.proc.poll() is None:
                gateway.kill()

    (stream,) = [s for s in stored(pg_dsn, tmp_path)[1] if s.service == service]
    assert stream.events_seen == sent["router"], "only the owner scored the stream"
    names = {id(g): n for g, n in zip(gateways, ("g1", "g2"), strict=True)}
    for gateway, peer in ((owner, other), (other, owner)):
        line = (f"ownership conflict: stream {stream.stream_id} is sent both to this gateway "
                f"('{names[id(gateway)]}') and to '{names[id(peer)]}'")
        assert line in gateway.log(), f"{names[id(gateway)]} logged no conflict line"
    assert rounds > 1
