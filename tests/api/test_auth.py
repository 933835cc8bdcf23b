"""The auth matrix: /v1 is secure by default; keys and JWTs; roles; rotation and revocation."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import ValidationError

from otlp_gateway.api import cli_revoke_key, cli_rotate_key, make_jwt
from otlp_gateway.api.keys import parse_key
from otlp_gateway.config import GatewayConfig

from .conftest import JWT_SECRET, LiveApi, auth


def _assert_401(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == "unauthorized" and body["detail"]


def test_no_credentials_is_401_with_challenge(live_api: LiveApi):
    for path in ("/v1/anomalies", "/v1/streams", "/v1/audit", "/v1/api-keys"):
        _assert_401(live_api.client.get(path))
    _assert_401(live_api.client.post("/v1/api-keys", json={"name": "x", "role": "admin"}))


def test_health_metrics_and_schema_stay_open(live_api: LiveApi):
    for path in ("/healthz", "/healthz/db", "/healthz/config", "/readyz", "/metrics", "/openapi.json", "/"):
        assert live_api.client.get(path).status_code == 200, path


def test_wrong_and_malformed_keys_are_refused(live_api: LiveApi, admin_key: str):
    key_id, secret = parse_key(admin_key)  # type: ignore[misc]
    wrong_secret = f"dlk_{key_id}.{'A' * len(secret)}"
    unknown_id = f"dlk_{'0' * 16}.{secret}"
    for presented in (wrong_secret, unknown_id, "dlk_nonsense", "dlk_", admin_key + "x"):
        _assert_401(live_api.client.get("/v1/anomalies", headers=auth(presented)))
    assert live_api.client.get("/v1/anomalies", headers=auth(admin_key)).status_code == 200


def test_key_accepted_in_x_api_key_header(live_api: LiveApi, read_key: str):
    assert live_api.client.get("/v1/streams", headers={"X-API-Key": read_key}).status_code == 200


def test_revoked_key_is_refused_at_once(live_api: LiveApi, admin_key: str):
    assert live_api.client.get("/v1/anomalies", headers=auth(admin_key)).status_code == 200  # now cached
    key_id = parse_key(admin_key)[0]  # type: ignore[index]
    live_api.run(cli_revoke_key(live_api.store, key_id))
    _assert_401(live_api.client.get("/v1/anomalies", headers=auth(admin_key)))


def test_rotated_key_refuses_old_secret_and_accepts_new(live_api: LiveApi, admin_key: str):
    assert live_api.client.get("/v1/anomalies", headers=auth(admin_key)).status_code == 200
    key_id = parse_key(admin_key)[0]  # type: ignore[index]
    new_key = live_api.run(cli_rotate_key(live_api.store, key_id, live_api.hasher))
    assert parse_key(new_key)[0] == key_id  # type: ignore[index]
    _assert_401(live_api.client.get("/v1/anomalies", headers=auth(admin_key)))
    assert live_api.client.get("/v1/anomalies", headers=auth(new_key)).status_code == 200


def test_read_key_may_only_read(live_api: LiveApi, read_key: str):
    headers = auth(read_key)
    assert live_api.client.get("/v1/anomalies", headers=headers).status_code == 200
    assert live_api.client.get("/v1/streams", headers=headers).status_code == 200
    refused = [
        live_api.client.post("/v1/api-keys", json={"name": "x", "role": "read"}, headers=headers),
        live_api.client.post("/v1/anomalies/abc/acknowledge", headers=headers),
        live_api.client.patch("/v1/streams/a/b/c", json={"profile": "strict"}, headers=headers),
        live_api.client.get("/v1/audit", headers=headers),  # admin-only read
        live_api.client.get("/v1/api-keys", headers=headers),
        live_api.client.get("/v1/debug/memory", headers=headers),
        live_api.client.post("/v1/debug/profile?seconds=1", headers=headers),
    ]
    for response in refused:
        assert response.status_code == 403, (response.request.url, response.text)
        assert response.json()["error"] == "forbidden"


def test_valid_jwt_is_accepted_with_its_role(live_api: LiveApi):
    admin = make_jwt(JWT_SECRET, "alice", "admin")
    reader = make_jwt(JWT_SECRET, "bob", "read", ttl_seconds=86_000)  # just under the 24 h maximum
    assert live_api.client.get("/v1/audit", headers=auth(admin)).status_code == 200
    assert live_api.client.get("/v1/anomalies", headers=auth(reader)).status_code == 200
    assert live_api.client.get("/v1/audit", headers=auth(reader)).status_code == 403
    created = live_api.client.post("/v1/api-keys", json={"name": "via-jwt", "role": "read"},
                                   headers=auth(admin))
    assert created.status_code == 201
    latest = live_api.client.get("/v1/audit", headers=auth(admin)).json()["items"][0]
    assert (latest["actor"], latest["action"]) == ("jwt:alice", "api_key.create")


def _claims(**changes) -> str:
    claims = {"sub": "alice", "role": "admin", "iss": "driftlock", "aud": "driftlock-api",
              "iat": int(time.time()), "exp": int(time.time()) + 600}
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(("token", "detail"), [
    (lambda: make_jwt(JWT_SECRET, "alice", "admin", ttl_seconds=-60), "has expired"),
    (lambda: make_jwt("another-secret-that-is-long-enough-000", "alice", "admin"),
     "signature does not verify"),
    (lambda: make_jwt(JWT_SECRET, "alice", "admin", issuer="someone-else"),
     "issuer (iss) is not 'driftlock'"),
    (lambda: make_jwt(JWT_SECRET, "alice", "admin", issuer=None), "no 'iss' claim"),
    (lambda: make_jwt(JWT_SECRET, "alice", "admin", audience=None), "no 'aud' claim"),
    (lambda: make_jwt(JWT_SECRET, "alice", "admin", audience="another-api"), "audience (aud) is not"),
    (lambda: _claims(exp=None), "no 'exp' claim"),
    (lambda: _claims(iat=None, exp=253402300799), "longer than the 86400 s allowed"),  # valid until 9999
    (lambda: _claims(exp=int(time.time()) + 2 * 86_400), "longer than the 86400 s allowed"),
    (lambda: _claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200), "not valid yet"),
    (lambda: make_jwt(JWT_SECRET, "alice", "root"), "role must be one of"),  # type: ignore[arg-type]
    (lambda: jwt.encode({"sub": "alice", "role": "admin", "exp": 4102444800}, None, algorithm="none"),
     "alg value is not allowed"),  # unsigned
    (lambda: "not.a.jwt", "neither an API key nor a well-formed HS256 JWT"),
])
def test_expired_forged_incomplete_and_long_lived_jwts_are_refused_saying_why(live_api: LiveApi, token,
                                                                              detail):
    response = live_api.client.get("/v1/anomalies", headers=auth(token()))
    _assert_401(response)
    assert detail in response.json()["detail"], response.json()["detail"]


def test_jwt_issuer_and_audience_checks_follow_the_configuration(live_api_factory):
    api = live_api_factory(api_overrides={"jwt_issuer": "idp.example", "jwt_audience": None,
                                          "jwt_max_lifetime_seconds": 60})
    ok = make_jwt(JWT_SECRET, "alice", "read", ttl_seconds=60, issuer="idp.example", audience=None)
    assert api.client.get("/v1/anomalies", headers=auth(ok)).status_code == 200
    too_long = make_jwt(JWT_SECRET, "alice", "read", ttl_seconds=600, issuer="idp.example")
    _assert_401(api.client.get("/v1/anomalies", headers=auth(too_long)))


def test_jwt_refused_when_no_secret_configured(live_api_factory):
    api = live_api_factory(api_overrides={"jwt_secret": None})
    token = make_jwt(JWT_SECRET, "alice", "admin")
    _assert_401(api.client.get("/v1/anomalies", headers=auth(token)))


def test_auth_can_be_turned_off_for_trusted_loopback(live_api_factory):
    api = live_api_factory(api_overrides={"auth_required": False})
    assert api.client.get("/v1/audit").status_code == 200
    created = api.client.post("/v1/api-keys", json={"name": "boot", "role": "admin"})
    assert created.status_code == 201
    audit = api.client.get("/v1/audit").json()["items"]
    assert audit[0]["actor"] == "anonymous" and audit[0]["action"] == "api_key.create"


def test_short_jwt_secret_is_refused_by_config():
    with pytest.raises(ValidationError, match="at least 32 characters"):
        GatewayConfig.model_validate({"api": {"jwt_secret": "too-short"}})
