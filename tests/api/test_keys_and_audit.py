"""API key lifecycle over REST and the CLI helpers, and the audit rows every change leaves."""

from __future__ import annotations

import pytest

from otlp_gateway.api import (
    KeyNotFoundError,
    KeyRevokedError,
    cli_create_key,
    cli_list_keys,
    cli_revoke_key,
    cli_rotate_key,
)
from otlp_gateway.api.keys import parse_key

from .conftest import LiveApi, auth


def test_rest_key_lifecycle_with_audit(live_api: LiveApi, admin_key: str):
    headers = auth(admin_key)
    admin_id = parse_key(admin_key)[0]  # type: ignore[index]
    created = live_api.client.post("/v1/api-keys", json={"name": "ci reader", "role": "read"},
                                   headers=headers)
    assert created.status_code == 201, created.text
    issued = created.json()
    new_id, presented = issued["key"]["key_id"], issued["secret"]
    assert presented.startswith(f"dlk_{new_id}.") and issued["key"]["role"] == "read"
    assert live_api.client.get("/v1/streams", headers=auth(presented)).status_code == 200

    listed = live_api.client.get("/v1/api-keys", headers=headers).json()["items"]
    assert {k["key_id"] for k in listed} == {admin_id, new_id}
    assert all("secret" not in k and "secret_hash" not in k for k in listed)
    stored = live_api.run(live_api.store.get_api_key(new_id))
    assert stored.secret_hash.startswith("$argon2id$") and parse_key(presented)[1] not in stored.secret_hash

    rotated = live_api.client.post(f"/v1/api-keys/{new_id}/rotate", headers=headers)
    assert rotated.status_code == 200
    second = rotated.json()["secret"]
    assert second != presented and rotated.json()["key"]["rotated_at"]
    assert live_api.client.get("/v1/streams", headers=auth(presented)).status_code == 401
    assert live_api.client.get("/v1/streams", headers=auth(second)).status_code == 200

    revoked = live_api.client.post(f"/v1/api-keys/{new_id}/revoke", headers=headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert live_api.client.get("/v1/streams", headers=auth(second)).status_code == 401
    again = live_api.client.post(f"/v1/api-keys/{new_id}/rotate", headers=headers)
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert live_api.client.post("/v1/api-keys/ffffffffffffffff/revoke", headers=headers).status_code == 404

    audit = live_api.client.get("/v1/audit", headers=headers, params={"actor": f"key:{admin_id}"}).json()
    actions = [(e["action"], e["target"]) for e in audit["items"]]
    assert actions == [("api_key.revoke", f"api_key:{new_id}"), ("api_key.rotate", f"api_key:{new_id}"),
                       ("api_key.create", f"api_key:{new_id}")]
    revoke_row = audit["items"][0]
    assert revoke_row["before"]["revoked_at"] is None and revoke_row["after"]["revoked_at"]
    assert "secret_hash" not in str(audit)


def test_bad_key_requests_name_the_field(live_api: LiveApi, admin_key: str):
    headers = auth(admin_key)
    response = live_api.client.post("/v1/api-keys", json={"name": "", "role": "owner"}, headers=headers)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed"
    assert {f["path"] for f in body["fields"]} == {"body.name", "body.role"}
    malformed = live_api.client.post("/v1/api-keys", content=b"{not json", headers={
        **headers, "content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"


def test_audit_pagination(live_api: LiveApi, admin_key: str):
    headers = auth(admin_key)
    for i in range(3):
        live_api.client.post("/v1/api-keys", json={"name": f"k{i}", "role": "read"}, headers=headers)
    first = live_api.client.get("/v1/audit", params={"limit": 2}, headers=headers).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = live_api.client.get("/v1/audit", params={"limit": 2, "cursor": first["next_cursor"]},
                                 headers=headers).json()
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 4  # 3 REST creates + the fixture's CLI create
    bad = live_api.client.get("/v1/audit", params={"cursor": "garbage"}, headers=headers)
    assert bad.status_code == 400 and "cursor" in bad.json()["detail"]


def test_cli_helpers(live_api: LiveApi):
    store = live_api.store
    key, presented = live_api.run(cli_create_key(store, "ops", "admin", live_api.hasher))
    assert presented.startswith(f"dlk_{key.key_id}.") and key.role == "admin"
    assert [k.key_id for k in live_api.run(cli_list_keys(store))] == [key.key_id]
    rotated = live_api.run(cli_rotate_key(store, key.key_id, live_api.hasher))
    assert live_api.client.get("/v1/audit", headers=auth(presented)).status_code == 401
    assert live_api.client.get("/v1/audit", headers=auth(rotated)).status_code == 200
    live_api.run(cli_revoke_key(store, key.key_id))
    live_api.run(cli_revoke_key(store, key.key_id))  # idempotent
    assert live_api.run(cli_list_keys(store))[0].revoked_at is not None
    with pytest.raises(KeyRevokedError):
        live_api.run(cli_rotate_key(store, key.key_id, live_api.hasher))
    with pytest.raises(KeyNotFoundError):
        live_api.run(cli_revoke_key(store, "0123456789abcdef"))
    with pytest.raises(ValueError, match="unknown role"):
        live_api.run(cli_create_key(store, "ops", "root", live_api.hasher))
    entries, _ = live_api.run(store.query_audit(None, "cli", 10, None))
    assert [e.action for e in entries] == ["api_key.revoke", "api_key.rotate", "api_key.create"]


def test_default_hash_cost_is_the_rfc9106_low_memory_profile(live_api: LiveApi):
    key, presented = live_api.run(cli_create_key(live_api.store, "prod-like", "read"))  # default hasher
    assert key.secret_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert live_api.client.get("/v1/streams", headers=auth(presented)).status_code == 200
