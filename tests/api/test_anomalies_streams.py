"""Anomalies (filters, cursor pages, evidence, feedback, acknowledge) and streams (state, PATCH)."""

from __future__ import annotations

from .conftest import BASE_TIME, LiveApi, auth, make_anomaly, make_stream


def _seed(api: LiveApi) -> None:
    rows = [make_anomaly(i) for i in range(5)]
    rows += [make_anomaly(10 + i, stream_id="logs/payments/app", service="payments", signal="logs",
                          severity="low") for i in range(3)]
    assert api.run(api.store.write_anomalies(rows)) == 8


def test_list_filters_and_cursor_pages(live_api: LiveApi, read_key: str):
    _seed(live_api)
    headers = auth(read_key)
    get = live_api.client.get
    everything = get("/v1/anomalies", headers=headers).json()
    assert len(everything["items"]) == 8 and everything["next_cursor"] is None
    assert [a["detected_at"] for a in everything["items"]] == sorted(
        (a["detected_at"] for a in everything["items"]), reverse=True)
    for params, expected in (({"service": "payments"}, 3), ({"signal": "traces"}, 5),
                             ({"severity": "low"}, 3), ({"stream": "logs/payments/app"}, 3),
                             ({"status": "open"}, 8), ({"status": "confirmed"}, 0),
                             ({"since": (BASE_TIME.replace(minute=3)).isoformat()}, 5),
                             ({"until": "2026-11-01T12:03:00Z"}, 3),
                             ({"until": "2026-11-01T13:03:00+01:00"}, 3)):
        body = get("/v1/anomalies", params=params, headers=headers).json()
        assert len(body["items"]) == expected, params
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = get("/v1/anomalies", params=params, headers=headers).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 8
    first = everything["items"][0]
    assert first["summary"].startswith("span names never seen") and first["figures"]["ncd"] == 0.61


def test_bad_filters_are_client_errors_naming_the_field(live_api: LiveApi, read_key: str):
    headers = auth(read_key)
    for params, path in (({"limit": 0}, "query.limit"), ({"limit": "ten"}, "query.limit"),
                         ({"severity": "apocalyptic"}, "query.severity"),
                         ({"since": "yesterday"}, "query.since"),
                         ({"until": "0.5"}, "query.until"), ({"since": "2026-11-01"}, "query.since")):
        response = live_api.client.get("/v1/anomalies", params=params, headers=headers)
        assert response.status_code == 422, params
        assert response.json()["fields"][0]["path"] == path
    swapped = live_api.client.get("/v1/anomalies", headers=headers,
                                  params={"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"})
    assert swapped.status_code == 400 and "since" in swapped.json()["detail"]
    assert live_api.client.get("/v1/anomalies", params={"cursor": "nope"}, headers=headers).status_code == 400
    missing = live_api.client.get("/v1/no-such-thing", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong_method = live_api.client.delete("/v1/anomalies", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"
    keys_405 = live_api.client.put("/v1/api-keys", headers=headers)
    assert keys_405.headers["allow"] == "GET, POST" and "PUT is not allowed" in keys_405.json()["detail"]


def test_get_one_with_evidence_feedback_and_acknowledge(live_api: LiveApi, admin_key: str):
    _seed(live_api)
    headers = auth(admin_key)
    anomaly_id = make_anomaly(2).id
    detail = live_api.client.get(f"/v1/anomalies/{anomaly_id}", headers=headers).json()
    assert detail["evidence"] == [{"trace_id": "0af7651916cd43dd8448eb211c80319c",
                                   "span_id": "b7ad6b7169203331"}]
    assert detail["explanation"]["tokens"] == ["x"] and detail["seed"] == 42
    assert live_api.client.get("/v1/anomalies/unknown", headers=headers).status_code == 404

    acked = live_api.client.post(f"/v1/anomalies/{anomaly_id}/acknowledge", headers=headers)
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    verdict = live_api.client.post(f"/v1/anomalies/{anomaly_id}/feedback", headers=headers,
                                   json={"verdict": "false_positive", "comment": "deploy at 12:02"})
    assert verdict.status_code == 200 and verdict.json()["status"] == "false_positive"
    assert live_api.run(live_api.store.get_anomaly(anomaly_id)).status == "false_positive"
    bad = live_api.client.post(f"/v1/anomalies/{anomaly_id}/feedback", headers=headers,
                               json={"verdict": "meh"})
    assert bad.status_code == 422 and bad.json()["fields"][0]["path"] == "body.verdict"
    gone = live_api.client.post("/v1/anomalies/unknown/feedback", headers=headers,
                                json={"verdict": "confirmed"})
    assert gone.status_code == 404

    audit = live_api.client.get("/v1/audit", headers=headers).json()["items"]
    feedback_row, ack_row = audit[0], audit[1]
    assert (ack_row["action"], ack_row["before"]["status"], ack_row["after"]["status"]) == (
        "anomaly.acknowledge", "open", "acknowledged")
    assert (feedback_row["action"], feedback_row["before"]["status"], feedback_row["after"]["status"]) == (
        "anomaly.feedback", "acknowledged", "false_positive")
    assert feedback_row["after"]["comment"] == "deploy at 12:02"
    assert feedback_row["target"] == f"anomaly:{anomaly_id}" and feedback_row["actor"].startswith("key:")


def test_streams_list_and_patch_take_effect_with_audit(live_api: LiveApi, admin_key: str):
    headers = auth(admin_key)
    live_api.run(live_api.store.upsert_stream(make_stream()))
    live_api.run(live_api.store.upsert_stream(make_stream("logs/payments/app", state="warming")))
    listed = live_api.client.get("/v1/streams", headers=headers).json()["items"]
    assert {(s["stream_id"], s["state"]) for s in listed} == {("traces/checkout/GET /cart", "active"),
                                                             ("logs/payments/app", "warming")}
    warming = live_api.client.get("/v1/streams", params={"state": "warming"}, headers=headers).json()
    assert [s["stream_id"] for s in warming["items"]] == ["logs/payments/app"]

    path = "/v1/streams/traces/checkout/GET%20%2Fcart"
    one = live_api.client.get(path, headers=headers)
    assert one.status_code == 200 and one.json()["effective"] == {
        "baseline": 400, "window": 50, "hop": 10, "false_alarm_target": 0.001}
    patched = live_api.client.patch(path, headers=headers,
                                    json={"profile": "strict", "false_alarm_target": 1e-5, "enabled": False})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["profile"] == "strict"  # the API's settings, profile included (they win over the config's)
    assert body["settings"] == {"profile": "strict", "false_alarm_target": 1e-5, "enabled": False}
    assert body["effective"]["baseline"] == 800 and body["effective"]["false_alarm_target"] == 1e-5
    stored = live_api.run(live_api.store.get_stream("traces/checkout/GET /cart"))
    assert stored.profile == "strict" and stored.settings["enabled"] is False

    cleared = live_api.client.patch(path, headers=headers, json={"false_alarm_target": None}).json()
    assert cleared["effective"]["false_alarm_target"] == 1e-4
    assert "false_alarm_target" not in cleared["settings"]

    for bad, where in (({}, "nothing to change"), ({"profile": "wild"}, "profile"),
                       ({"profile": None}, "profile cannot be null"), ({"window": -1}, "body.window"),
                       ({"colour": "red"}, "body.colour")):
        response = live_api.client.patch(path, headers=headers, json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert where in str(response.json()), (bad, response.json())
    conflict = live_api.client.patch(path, headers=headers, json={"hop": 500})  # > the stream's window
    assert conflict.status_code == 409 and "hop <= window" in conflict.json()["detail"]
    assert live_api.client.patch("/v1/streams/no/such/stream", headers=headers,
                                 json={"hop": 5}).status_code == 404

    audit = live_api.client.get("/v1/audit", headers=headers).json()["items"]
    updates = [e for e in audit if e["action"] == "stream.update"]
    assert len(updates) == 2
    assert updates[1]["before"]["profile"] == "balanced" and updates[1]["after"]["profile"] == "strict"
    assert updates[0]["before"]["settings"]["false_alarm_target"] == 1e-5
