"""A first run as a new user meets it: ``otlp-gateway serve`` with ``log_format: json`` and HTTP forwarding.

* every line the process writes is one JSON object with ts, level, logger, msg;
* the start-up lines name the data directory and the SQLite file, the web UI URL, and the exact command
  that creates the first admin key; that command, run as printed, makes a key the running API accepts,
  and the next start no longer asks for one;
* forwarding requests over HTTP writes no per-request line at INFO;
* ``otlp-gateway warmup`` reports each kernel group with n/m and elapsed time.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from otlp_gateway.config import load_config
from otlp_gateway.startup_notes import admin_key_advice, describe_store, ui_url
from tests.exporter.test_http_transport import RecordingHttpDownstream, http_downstream  # noqa: F401
from tests.fixtures.gateway import REPO, GatewayProcess, gateway_config_dict
from tests.fixtures.otlp_payloads import trace_request
from tests.fixtures.waiting import wait_until

REQUESTS = 20


def records(gw: GatewayProcess) -> list[dict]:
    lines = [line for line in gw.log().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return parsed


def test_first_run_speaks_json_and_says_how_to_get_in(
        tmp_path: Path, http_downstream: RecordingHttpDownstream) -> None:  # noqa: F811
    data_dir = tmp_path / "data"
    config = gateway_config_dict(data_dir, forward_to=http_downstream.endpoint, log_format="json")
    gw = GatewayProcess(config, tmp_path).start()
    try:
        with httpx.Client(timeout=10) as client:
            for i in range(REQUESTS):
                body = trace_request(3, seed=i).SerializeToString()
                response = client.post(gw.http_url + "/v1/traces", content=body,
                                       headers={"content-type": "application/x-protobuf"})
                assert response.status_code == 200, response.text
            assert client.get(gw.api_url + "/v1/anomalies").status_code == 401
        wait_until(lambda: len(http_downstream.received) == REQUESTS, 30, "every request forwarded")
        wait_until(lambda: any("no admin API key" in r["msg"] for r in records(gw)), 30, "the key advice")
    finally:
        assert gw.terminate() == 0
    logged = records(gw)
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in logged)
    messages = "\n".join(r["msg"] for r in logged)
    assert f"data directory {data_dir}" in messages
    assert f"SQLite database {data_dir / 'driftlock.db'}" in messages
    api_port = int(config["api"]["listen"].rsplit(":", 1)[1])
    assert f"web UI http://127.0.0.1:{api_port}/" in messages
    store_line = next(r for r in logged if r["msg"].startswith("data directory"))
    assert store_line["data_dir"] == str(data_dir) and store_line["store_backend"] == "sqlite"
    # forwarding 20 requests over HTTP left no per-request line at INFO (httpx logs one per POST)
    assert not [r for r in logged if r["logger"].startswith(("httpx", "httpcore"))]
    assert len(logged) < 30, messages

    advice = next(r for r in logged if "no admin API key" in r["msg"])
    assert advice["level"] == "WARNING"
    command = advice["msg"].split("Create it with: ", 1)[1].split(" (its secret", 1)[0]
    argv = shlex.split(command)
    assert argv == ["otlp-gateway", "api-keys", "--config", str(gw.config_path), "--data-dir", str(data_dir),
                    "create", "--role", "admin"]
    created = subprocess.run([sys.executable, "-m", "otlp_gateway", *argv[1:]], capture_output=True,
                             text=True, timeout=120, cwd=REPO)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]

    again = GatewayProcess(config, tmp_path).start()
    try:
        response = httpx.get(again.api_url + "/v1/anomalies", headers={"X-API-Key": secret}, timeout=10)
        assert response.status_code == 200, response.text
    finally:
        assert again.terminate() == 0
    assert again.log().count("no admin API key") == 1  # the second start (same log file) did not ask


def test_store_description_never_shows_the_password(tmp_path: Path) -> None:
    config = load_config(None, env={"DATABASE_URL": "postgresql://driftlock:s3cr3t@db.internal:5433/drift"})
    text = describe_store(config, tmp_path)
    assert text == "PostgreSQL at db.internal:5433/drift as user driftlock"
    advice = admin_key_advice(config, tmp_path, None, [])
    assert advice is not None and "s3cr3t" not in advice and "--data-dir" not in advice
    assert "DATABASE_URL" in advice


@pytest.mark.parametrize(("listen", "tls", "url"), [
    ("0.0.0.0:8080", False, "http://localhost:8080/"), ("127.0.0.1:9000", False, "http://127.0.0.1:9000/"),
    ("gateway.internal:8443", True, "https://gateway.internal:8443/")])
def test_ui_url(listen: str, tls: bool, url: str) -> None:
    api = {"listen": listen, "tls": {"cert_file": "c.pem", "key_file": "k.pem"} if tls else {}}
    config = load_config(None, env={}, overrides={("api",): api})
    assert ui_url(config, int(listen.rsplit(":", 1)[1])) == url


def test_no_advice_when_auth_is_off_says_so(tmp_path: Path) -> None:
    config = load_config(None, env={}, overrides={("api", "auth_required"): False})
    advice = admin_key_advice(config, tmp_path, None, [])
    assert advice is not None and "auth_required is off" in advice


def test_warmup_reports_each_kernel_group() -> None:
    done = subprocess.run([sys.executable, "-m", "otlp_gateway", "warmup"], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    steps = [line for line in lines if line.startswith("warmup [")]
    total = int(steps[0].split("/", 1)[1].split("]", 1)[0])
    assert total >= 3
    for step in range(1, total + 1):
        assert any(line.startswith(f"warmup [{step}/{total}]") and line.endswith("compiling ...")
                   for line in steps)
        assert any(line.startswith(f"warmup [{step}/{total}]") and " done in " in line and "elapsed" in line
                   for line in steps)
    assert any("cbad detector" in line for line in steps)
    assert lines[-1].startswith("kernels compiled and cached in ")
