"""Guessing API keys costs the gateway little and cannot exhaust its memory (issue 11).

Before: a known key id with a wrong secret cost ~0.2 s CPU and 64 MiB (argon2id) per attempt, all in
parallel: 32 attempts at once took 600 MB. Now malformed keys and unknown ids never reach argon2, at most
``api.key_verification.max_parallel`` verifications run at once, and a good key is verified once per
``cache_seconds``. The key is hashed at the production cost (64 MiB, t=3, p=4).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fixtures.gateway import REPO, GatewayProcess, gateway_config_dict
from tests.fixtures.waiting import wait_until
from tests.reliability.support import MiB, record, scrape, stop_gateway, watched


@pytest.fixture
def gateway_and_key(tmp_path: Path, downstream) -> Iterator[tuple[GatewayProcess, str]]:
    gw = GatewayProcess(gateway_config_dict(tmp_path / "data", forward_to=downstream.endpoint), tmp_path)
    command = [sys.executable, "-m", "otlp_gateway", "api-keys", "--config", str(gw.config_path), "create",
               "--role", "read", "--name", "probe-target"]
    created = subprocess.run(command,
                             cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("dlk_"), created.stdout
    gw.start()
    wait_until(lambda: httpx.get(gw.api_url + "/readyz", timeout=2).status_code == 200, 120, "readiness")
    try:
        yield gw, key
    finally:
        stop_gateway(gw)


def _get(client: httpx.Client, key: str) -> int:
    return client.get("/v1/anomalies", headers={"authorization": f"Bearer {key}"}).status_code


def _verifications(gw: GatewayProcess, result: str) -> float:
    return scrape(gw, "driftlock_api_key_verifications_total", {"result": result})


def test_parallel_wrong_secrets_cost_bounded_memory_and_unknown_keys_no_argon2(gateway_and_key):
    gw, key = gateway_and_key
    key_id = key[len("dlk_"):].split(".")[0]
    wrong = [f"dlk_{key_id}.{'Wrong' + str(i) * 30}"[:60] for i in range(32)]
    unknown = [f"dlk_{i:016x}.{'x' * 43}" for i in range(200)]
    malformed = [f"dlk_not-a-key-{i}" for i in range(200)]
    client = httpx.Client(base_url=gw.api_url, timeout=120, limits=httpx.Limits(max_connections=32))
    with client, watched(gw) as (bystander, rss), ThreadPoolExecutor(32) as pool:
        wrong_answers = Counter(pool.map(lambda k: _get(client, k), wrong))
        cheap_answers = Counter(pool.map(lambda k: _get(client, k), unknown + malformed))
    assert set(wrong_answers) <= {401, 429} and wrong_answers[401] >= 2, wrong_answers
    # past its burst, the guessing address is throttled before authentication
    assert set(cheap_answers) == {401, 429}, cheap_answers
    assert _verifications(gw, "unknown") + _verifications(gw, "malformed") == cheap_answers[401]
    assert _verifications(gw, "wrong_secret") == wrong_answers[401]  # argon2 ran only for these
    assert rss.growth < 200 * MiB, rss.growth / MiB  # at most 2 x 64 MiB verifying at once
    bystander.assert_served()
    # the right key still works, and is verified once, then remembered
    with httpx.Client(base_url=gw.api_url, timeout=60) as client:
        assert [_get(client, key) for _ in range(5)] == [200] * 5
    assert _verifications(gw, "verified") == 1 and _verifications(gw, "cached") == 4
    record("32 parallel wrong secrets for a known key id (argon2id 64 MiB), then 200 unknown ids and 200 "
           "malformed keys",
           f"{wrong_answers[401]} × 401, {wrong_answers[429]} × 429 (verifications queued past the limit); "
           f"unknown/malformed: {cheap_answers[401]} × 401 without argon2, {cheap_answers[429]} × 429 "
           "(the address's rate)", bystander, rss, "n/a (no data)")
