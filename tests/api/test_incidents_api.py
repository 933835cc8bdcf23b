"""/v1/incidents and /v1/streams/{id}/scores over HTTP on a real SQLite store: shapes, order, paging,
filters, the operator's actions (roles, 409s, audit) and the incident sink being told."""

from __future__ import annotations

import datetime as dt

import pytest

from otlp_gateway.api import make_jwt
from otlp_gateway.incidents.records import IncidentLinks
from otlp_gateway.incidents.settings import IncidentSettings
from otlp_gateway.incidents.sink import IncidentSink
from otlp_gateway.store import AnomalyWriter
from otlp_gateway.store.base import ScoreBucket
from otlp_gateway.store.settings import StoreSettings
from tests.store.support import T0
from tests.store.test_incidents import make_incident

from .conftest import JWT_SECRET, LiveApi, auth, make_stream

INCIDENT_KEYS = {"id", "stream_id", "signal", "service", "name", "status", "severity", "opened_at",
                 "last_anomalous_at", "resolved_at", "duration_seconds", "anomalous_windows", "min_p_value",
                 "summary", "acknowledged_by", "acknowledged_at", "url"}


def _seed(api: LiveApi) -> list:
    rows = [make_incident(s, 0, minute=s, status="open" if s % 2 else "resolved",
                          service="cart" if s < 4 else "checkout") for s in range(7)]
    api.run(api.store.upsert_incidents(rows))
    return rows


def test_the_list_is_open_first_then_newest_with_the_documented_shape(live_api: LiveApi, read_key: str):
    rows = _seed(live_api)
    body = live_api.client.get("/v1/incidents", headers=auth(read_key)).json()
    assert set(body) == {"items", "next_cursor"} and body["next_cursor"] is None
    assert [i["id"] for i in body["items"]] == [r.id for r in sorted(
        rows, key=lambda r: (not r.is_open, -r.opened_at.timestamp()))]
    first = body["items"][0]
    assert set(first) == INCIDENT_KEYS
    assert first["status"] == "open" and first["resolved_at"] is None and first["opened_at"].endswith("Z")
    assert first["url"] == f"{live_api.url}/incidents/{first['id']}"
    assert first["duration_seconds"] == 30.0  # to the last anomalous window while open (3 windows of 10 s)
    closed = next(i for i in body["items"] if i["status"] == "resolved")
    assert closed["duration_seconds"] == 300.0


def test_filters_and_cursor_paging(live_api: LiveApi, read_key: str):
    rows = _seed(live_api)
    get = live_api.client.get
    assert {i["id"] for i in get("/v1/incidents", params={"service": "cart", "status": "open"},
                                  headers=auth(read_key)).json()["items"]} == \
        {r.id for r in rows if r.service == "cart" and r.is_open}
    since = (T0 + dt.timedelta(minutes=3)).isoformat()
    assert len(get("/v1/incidents", params={"since": since}, headers=auth(read_key)).json()["items"]) == 4
    assert [i["stream_id"] for i in get("/v1/incidents", params={"stream_id": "stream-2"},
                                        headers=auth(read_key)).json()["items"]] == ["stream-2"]
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = get("/v1/incidents", params=params, headers=auth(read_key)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and len(set(seen)) == 7
    bad = get("/v1/incidents", params={"cursor": "nonsense"}, headers=auth(read_key))
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    backwards = get("/v1/incidents", headers=auth(read_key),
                    params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
    assert backwards.status_code == 400


def test_one_incident_with_fields_evidence_series_and_change_point(live_api: LiveApi, read_key: str):
    sid = "traces/checkout/POST /cart"
    rec = make_incident(1, 0, minute=60, stream_id=sid)
    live_api.run(live_api.store.upsert_incidents([rec]))
    live_api.run(live_api.store.upsert_stream(make_stream(sid)))
    start = rec.opened_at - dt.timedelta(minutes=40)
    buckets = [ScoreBucket(sid, start + dt.timedelta(minutes=i), 6, 1 if 38 <= i <= 41 else 0,
                           1e-6 if 38 <= i <= 41 else 0.4, 6.0 if 38 <= i <= 41 else 0.4) for i in range(80)]
    live_api.run(live_api.store.write_scores(buckets))
    body = live_api.client.get(f"/v1/incidents/{rec.id}", headers=auth(read_key)).json()
    assert set(body) == INCIDENT_KEYS | {"fields", "evidence", "series", "change_point"}
    assert body["fields"] == rec.fields
    assert body["evidence"] == rec.evidence
    assert body["change_point"] == body["opened_at"]
    series = body["series"]
    assert series["bucket_seconds"] == 10 and series["threshold_p"] == 1e-3  # the stream's balanced profile
    times = [dt.datetime.fromisoformat(p["t"]) for p in series["points"]]
    # the incident lasted 30 s: the buckets from 30 min before it opened to 30 min after it ended
    assert times[0] == rec.opened_at - dt.timedelta(minutes=30)
    assert times[-1] <= rec.last_anomalous_at + dt.timedelta(minutes=30) and len(times) == 61
    assert sum(p["anomalous"] for p in series["points"]) == 4
    assert set(series["points"][0]) == {"t", "min_p", "max_score", "windows", "anomalous"}
    missing = live_api.client.get("/v1/incidents/inc_0000000000000000", headers=auth(read_key))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_an_operator_acknowledges_and_closes_each_audited_and_409_when_it_no_longer_applies(
        live_api: LiveApi, admin_key: str):
    [a, b] = [make_incident(1, 0), make_incident(2, 0)]
    live_api.run(live_api.store.upsert_incidents([a, b]))
    operator = live_api.new_key("operator", "on-call")
    key_id = operator.split("_", 1)[1].split(".", 1)[0]
    post = live_api.client.post
    acked = post(f"/v1/incidents/{a.id}/acknowledge", headers=auth(operator))
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "open" and acked.json()["acknowledged_by"] == f"key:{key_id}"
    resolved = post(f"/v1/incidents/{a.id}/resolve", json={"note": "redis pool resized"},
                    headers=auth(operator))
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_at"] is not None
    for action in ("resolve", "accept", "false-positive", "acknowledge"):
        again = post(f"/v1/incidents/{a.id}/{action}", headers=auth(operator))
        assert again.status_code == 409 and "applies to open incidents only" in again.json()["detail"]
    assert post(f"/v1/incidents/{b.id}/false-positive", headers=auth(admin_key)).json()["status"] == \
        "false_positive"
    assert post(f"/v1/incidents/{b.id}/accept", headers=auth(admin_key)).status_code == 409
    assert post("/v1/incidents/inc_0000000000000000/accept", headers=auth(admin_key)).status_code == 404
    audit = live_api.client.get("/v1/audit", headers=auth(admin_key)).json()["items"]
    entries = [(e["action"], e["target"], e["before"]["status"], e["after"]["status"]) for e in audit
               if e["target"].startswith("incident:")]
    assert entries == [("incident.false_positive", f"incident:{b.id}", "open", "false_positive"),
                       ("incident.resolve", f"incident:{a.id}", "open", "resolved"),
                       ("incident.acknowledge", f"incident:{a.id}", "open", "open")]
    resolve_entry = next(e for e in audit if e["action"] == "incident.resolve")
    assert resolve_entry["actor"] == f"key:{key_id}"
    assert resolve_entry["after"]["note"] == "redis pool resized"
    # no live detector here: the action waits in the store for the stream's detector
    assert resolve_entry["after"]["detector"] == "pending"
    assert live_api.run(live_api.store.get_incident(a.id)).pending_action == "resolve"  # type: ignore[union-attr]


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_an_operators_close_is_stamped_in_the_incidents_event_time(live_api: LiveApi, admin_key: str):
    """Incidents from last week's events (a replay): closing one now must not make it last a week. The close
    takes the stream's newest scored event time, or the last anomalous window when nothing later was
    scored; the wall-clock moment of the action is the audit entry's."""
    scored, unscored = make_incident(7, 0, minute=3), make_incident(8, 0, minute=3)
    live_api.run(live_api.store.upsert_incidents([scored, unscored]))
    newest = scored.last_anomalous_at + dt.timedelta(minutes=4)
    live_api.run(live_api.store.write_scores([
        ScoreBucket(scored.stream_id, newest - dt.timedelta(minutes=m), 5, 0, 0.3, 0.5) for m in (0, 2, 6)]))
    acting = dt.datetime.now(dt.UTC)
    post = live_api.client.post
    acked = post(f"/v1/incidents/{scored.id}/acknowledge", headers=auth(admin_key)).json()
    assert _parse(acked["acknowledged_at"]) >= acting - dt.timedelta(seconds=1)  # when the person acted
    closed = post(f"/v1/incidents/{scored.id}/resolve", headers=auth(admin_key)).json()
    assert _parse(closed["resolved_at"]) == newest
    assert closed["duration_seconds"] == (newest - scored.opened_at).total_seconds()  # 4 min 30 s
    other = post(f"/v1/incidents/{unscored.id}/false-positive", headers=auth(admin_key)).json()
    assert _parse(other["resolved_at"]) == unscored.last_anomalous_at
    assert other["duration_seconds"] == 30.0
    stored = live_api.run(live_api.store.get_incident(scored.id))
    assert stored is not None and stored.resolved_at == newest
    assert stored.updated_at >= acting - dt.timedelta(seconds=1)
    trail = live_api.client.get(f"/v1/incidents/{scored.id}/audit", headers=auth(admin_key)).json()["items"]
    assert _parse(trail[0]["at"]) >= acting - dt.timedelta(seconds=1)


def test_an_incidents_audit_trail_for_every_role(live_api: LiveApi, admin_key: str, read_key: str):
    [a, b] = [make_incident(9, 0), make_incident(10, 0)]
    live_api.run(live_api.store.upsert_incidents([a, b]))
    operator = live_api.new_key("operator", "on-call")
    post = live_api.client.post
    assert post(f"/v1/incidents/{a.id}/acknowledge", headers=auth(operator)).status_code == 200
    assert post(f"/v1/incidents/{b.id}/acknowledge", headers=auth(admin_key)).status_code == 200
    assert post(f"/v1/incidents/{a.id}/resolve", json={"note": "pool resized"},
                headers=auth(operator)).status_code == 200
    for key in (read_key, operator, admin_key):
        page = live_api.client.get(f"/v1/incidents/{a.id}/audit", headers=auth(key))
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert [(e["action"], e["target"]) for e in items] == [("incident.resolve", f"incident:{a.id}"),
                                                               ("incident.acknowledge", f"incident:{a.id}")]
        assert items[0]["after"]["note"] == "pool resized" and items[0]["actor"].startswith("key:")
    trail = f"/v1/incidents/{a.id}/audit"
    first = live_api.client.get(trail, params={"limit": 1}, headers=auth(read_key)).json()
    assert [e["action"] for e in first["items"]] == ["incident.resolve"] and first["next_cursor"]
    rest = live_api.client.get(trail, params={"limit": 1, "cursor": first["next_cursor"]},
                               headers=auth(read_key)).json()
    assert [e["action"] for e in rest["items"]] == ["incident.acknowledge"] and rest["next_cursor"] is None
    of_b = live_api.client.get(f"/v1/incidents/{b.id}/audit", headers=auth(read_key)).json()["items"]
    assert [e["target"] for e in of_b] == [f"incident:{b.id}"]
    missing = live_api.client.get("/v1/incidents/inc_0000000000000000/audit", headers=auth(read_key))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert live_api.client.get(f"/v1/incidents/{a.id}/audit").status_code == 401
    assert live_api.client.get(f"/v1/incidents/{a.id}/audit", params={"cursor": "nope"},
                               headers=auth(read_key)).status_code == 400
    assert live_api.client.get("/v1/audit", headers=auth(operator)).status_code == 403  # the whole log: admin


def test_roles_for_incident_actions(live_api: LiveApi, read_key: str):
    rec = make_incident(3, 0)
    live_api.run(live_api.store.upsert_incidents([rec]))
    live_api.run(live_api.store.upsert_stream(make_stream()))
    operator = live_api.new_key("operator", "on-call")
    reader = live_api.client.post(f"/v1/incidents/{rec.id}/acknowledge", headers=auth(read_key))
    assert reader.status_code == 403 and "may only read" in reader.json()["detail"]
    # an operator reads everything a reader does, acts on incidents, and nothing else
    assert live_api.client.get("/v1/streams", headers=auth(operator)).status_code == 200
    for method, path, body in (("PATCH", "/v1/streams/traces/checkout/GET /cart", {"profile": "strict"}),
                               ("POST", "/v1/api-keys", {"name": "x", "role": "admin"}),
                               ("POST", f"/v1/anomalies/{'0' * 32}/acknowledge", None)):
        refused = live_api.client.request(method, path, json=body, headers=auth(operator))
        assert refused.status_code == 403 and "operator" in refused.json()["detail"], (path, refused.text)
    assert live_api.client.get("/v1/audit", headers=auth(operator)).status_code == 403  # admin-only read
    token = make_jwt(JWT_SECRET, "pager-bot", "operator")  # type: ignore[arg-type]
    assert live_api.client.post(f"/v1/incidents/{rec.id}/acknowledge", headers=auth(token)).json()[
        "acknowledged_by"] == "jwt:pager-bot"


def test_an_action_body_is_optional_and_strict(live_api: LiveApi, admin_key: str):
    rec = make_incident(4, 0)
    live_api.run(live_api.store.upsert_incidents([rec]))
    bad = live_api.client.post(f"/v1/incidents/{rec.id}/acknowledge", json={"reason": "x"},
                               headers=auth(admin_key))
    assert bad.status_code == 422 and bad.json()["error"] == "validation_failed"
    long = live_api.client.post(f"/v1/incidents/{rec.id}/acknowledge", json={"note": "x" * 2001},
                                headers=auth(admin_key))
    assert long.status_code == 422
    plain = live_api.client.post(f"/v1/incidents/{rec.id}/acknowledge", headers=auth(admin_key))
    assert plain.status_code == 200


def test_the_incident_sink_follows_operators(live_api: LiveApi, admin_key: str):
    rec = make_incident(5, 0, service="payments", severity="critical")

    async def attach() -> tuple[IncidentSink, AnomalyWriter]:
        writer = AnomalyWriter(live_api.store, live_api.config.data_dir + "/spool", StoreSettings(),
                               live_api.metrics)  # type: ignore[operator]
        await writer.start()
        sink = IncidentSink(writer, live_api.store, live_api.metrics, IncidentSettings(),
                            IncidentLinks(lambda: "http://ui"))
        await live_api.store.upsert_incidents([rec])
        await sink.start()
        await sink.seeded.wait()
        return sink, writer

    sink, writer = live_api.run(attach())
    live_api.ctx.incidents = sink
    labels = {"signal": "traces", "service": "payments", "severity": "critical"}
    assert live_api.metric("driftlock_incidents_open", labels) == 1
    assert live_api.client.post(f"/v1/incidents/{rec.id}/accept", headers=auth(admin_key)).status_code == 200
    assert live_api.metric("driftlock_incidents_open", labels) == 0 and sink.open_incidents() == []
    live_api.run(sink.shutdown(1))
    live_api.run(writer.shutdown(1))


def test_stream_scores_and_the_stream_fields_incidents_add(live_api: LiveApi, read_key: str):
    stream_id = "traces/checkout/GET /cart/scores/x"  # slashes, and "scores" inside the id
    live_api.run(live_api.store.upsert_stream(make_stream(stream_id)))
    rec = make_incident(6, 0, stream_id=stream_id)
    live_api.run(live_api.store.upsert_incidents([rec]))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    live_api.run(live_api.store.write_scores([
        ScoreBucket(stream_id, now - dt.timedelta(minutes=m), 5, 0, 0.3, 0.5) for m in (1, 30, 90)]))
    stream = live_api.client.get(f"/v1/streams/{stream_id}", headers=auth(read_key)).json()
    assert stream["open_incident_id"] == rec.id
    assert stream["warmup"] == {"events": 800, "needed": 800}  # active: B 400 + 40 windows of hop 10
    listed = live_api.client.get("/v1/streams", headers=auth(read_key)).json()["items"]
    assert [s["open_incident_id"] for s in listed] == [rec.id]
    scores = live_api.client.get(f"/v1/streams/{stream_id}/scores", headers=auth(read_key)).json()
    assert len(scores["points"]) == 2 and scores["threshold_p"] == 1e-3  # the last hour by default
    wide = live_api.client.get(f"/v1/streams/{stream_id}/scores", headers=auth(read_key), params={
        "since": (now - dt.timedelta(hours=2)).isoformat(), "until": now.isoformat()}).json()
    assert [p["windows"] for p in wide["points"]] == [5, 5, 5]
    assert live_api.client.get("/v1/streams/nope/scores", headers=auth(read_key)).status_code == 404
    too_wide = live_api.client.get(f"/v1/streams/{stream_id}/scores", headers=auth(read_key), params={
        "since": "2026-01-01T00:00:00Z", "until": "2026-01-03T00:00:00Z"})
    assert too_wide.status_code == 400
    assert live_api.client.patch(f"/v1/streams/{stream_id}/scores", json={"enabled": False},
                                 headers=auth(read_key)).status_code in (403, 405)


def test_scores_fall_back_to_the_latest_incidents_hour_when_asked(live_api: LiveApi, read_key: str):
    """fallback=latest_incident: an empty window answers the hour of the stream's most recently opened
    incident (50 min before its close to 10 after), in the same round trip; a window with scores, or a
    stream without incidents, answers as without it."""
    stream_id = "logs/cart/app"
    live_api.run(live_api.store.upsert_stream(make_stream(stream_id)))
    get = live_api.client.get
    path = f"/v1/streams/{stream_id}/scores"
    plain = get(path, headers=auth(read_key), params={"fallback": "latest_incident"}).json()
    assert plain["points"] == [] and plain["around_incident_id"] is None  # no incident: nothing to fall to
    older = make_incident(0, 0, minute=0, status="resolved", stream_id=stream_id)
    latest = make_incident(0, 1, minute=120, status="resolved", stream_id=stream_id)
    live_api.run(live_api.store.upsert_incidents([latest, older]))
    close = latest.resolved_at
    assert close is not None
    minutes = (-70, -50, -1, 0, 9, 10, 30)  # 50 min before the close (included) to 10 after (excluded)
    live_api.run(live_api.store.write_scores(
        [ScoreBucket(stream_id, close + dt.timedelta(minutes=m), 1, 0, 0.3, 0.5) for m in minutes]))
    answer = get(path, headers=auth(read_key), params={"fallback": "latest_incident"}).json()
    assert answer["around_incident_id"] == latest.id
    assert [dt.datetime.fromisoformat(p["t"]) - close for p in answer["points"]] == [
        dt.timedelta(minutes=m) for m in (-50, -1, 0, 9)]
    assert get(path, headers=auth(read_key)).json() == {**plain, "threshold_p": answer["threshold_p"]}
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    live_api.run(live_api.store.write_scores([ScoreBucket(stream_id, now - dt.timedelta(minutes=5), 2, 0, 0.2,
                                                          0.7)]))
    recent = get(path, headers=auth(read_key), params={"fallback": "latest_incident"}).json()
    assert [p["windows"] for p in recent["points"]] == [2] and recent["around_incident_id"] is None
    assert get(path, headers=auth(read_key), params={"fallback": "other"}).status_code == 422


@pytest.mark.parametrize("state, events, expected", [("warming", 120, 120), ("warming", 5000, 799),
                                                      ("evicted", 10, 800)])
def test_warmup_of_a_stream_that_is_not_live(live_api: LiveApi, read_key: str, state: str, events: int,
                                            expected: int):
    info = make_stream(state=state)
    info.events_seen = events
    live_api.run(live_api.store.upsert_stream(info))
    body = live_api.client.get(f"/v1/streams/{info.stream_id}", headers=auth(read_key)).json()
    assert body["warmup"] == {"events": expected, "needed": 800} and body["open_incident_id"] is None


def test_the_cli_creates_operator_keys(tmp_path, capsys: pytest.CaptureFixture[str]):
    from otlp_gateway import cli

    assert cli.main(["api-keys", "--data-dir", str(tmp_path), "create", "--role", "operator",
                     "--name", "on-call"]) == 0
    assert cli.main(["api-keys", "--data-dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("created operator key ") and out[1].startswith("dlk_")
    assert out[2].split("\t")[1:4] == ["operator", "active", "on-call"]
