"""A real gateway as a child process (``otlp-gateway serve --config FILE``) for one scenario: embedded
SQLite in a temporary data dir, the embedded defaults (detection on, the default profile), loopback ports,
no downstream (detection only), the API without authentication (loopback only).

``settle()`` waits, on the gateway's own counters, until every item sent was scored and everything it
found was written, so the incidents read afterwards are final for the traffic sent."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

START_TIMEOUT = 300.0
"""A first start compiles the numba kernels (minutes on a busy 2-core machine); later starts load them."""
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` with a growing interval until truthy (returned) or ``timeout`` (TimeoutError)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def gateway_command() -> list[str]:
    """The installed console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("otlp-gateway")
    if script.exists():
        return [str(script)]
    found = shutil.which("otlp-gateway")
    return [found] if found else [sys.executable, "-m", "otlp_gateway"]


def metric_samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in a Prometheus text exposition."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        yield match.group(1), labels, float(match.group(3))


def metric_sum(text: str, name: str) -> float:
    return sum(value for sample, _, value in metric_samples(text) if sample == name)


class ScenarioGateway:
    """One gateway child process in ``workdir`` (its config, log and data dir live there)."""

    def __init__(self, workdir: Path, extra: dict[str, Any] | None = None):
        grpc_port, http_port, api_port = free_ports(3)
        self.workdir = workdir
        self.config: dict[str, Any] = {
            "data_dir": str(workdir / "data"),
            "shutdown_grace_seconds": 10,
            "receiver": {"grpc_listen": f"127.0.0.1:{grpc_port}", "http_listen": f"127.0.0.1:{http_port}"},
            "api": {"listen": f"127.0.0.1:{api_port}", "auth_required": False},
        }
        for key, value in (extra or {}).items():
            self.config[key] = {**self.config.get(key, {}), **value} if isinstance(value, dict) else value
        self.config_path = workdir / "gateway.yaml"
        self.log_path = workdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30)

    @property
    def grpc_endpoint(self) -> str:
        return str(self.config["receiver"]["grpc_listen"])

    def start(self) -> ScenarioGateway:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*gateway_command(), "serve", "--config", str(self.config_path)],
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._healthy, START_TIMEOUT, f"the gateway's /healthz (log: {self.log_path})")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return self.api.get("/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.api.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # --- reading back -------------------------------------------------------------------------------
    def metrics(self) -> str:
        response = self.api.get("/metrics")
        response.raise_for_status()
        return response.text

    def _get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def _paged(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self._get(path, limit=500, **({"cursor": cursor} if cursor else {}))
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident, each with its detail (``GET /v1/incidents`` then ``/v1/incidents/{id}``)."""
        return [self._get(f"/v1/incidents/{item['id']}") for item in self._paged("/v1/incidents")]

    def anomalies(self) -> list[dict[str, Any]]:
        return self._paged("/v1/anomalies")

    def streams(self) -> list[dict[str, Any]]:
        return self._paged("/v1/streams")

    def settle(self, sent_items: int, timeout: float = 600.0) -> dict[str, float]:
        """Wait until the detectors have been fed ``sent_items`` events, every anomaly found was written,
        and the store holds every incident opened (with the open ones still open); returns the counters."""
        def scored() -> dict[str, float] | None:
            text = self.metrics()
            fed = metric_sum(text, "driftlock_detector_events_total")
            dropped = metric_sum(text, "driftlock_detector_dropped_events_total")
            if fed + dropped < sent_items:
                return None
            return {"fed": fed, "dropped": dropped}

        counters = wait_for(scored, timeout, f"the detectors to be fed {sent_items} events")

        def written() -> dict[str, float] | None:
            text = self.metrics()
            found = metric_sum(text, "driftlock_anomalies_detected_total")
            stored = metric_sum(text, "driftlock_store_anomalies_written_total")
            opened = metric_sum(text, "driftlock_incidents_total")
            still_open = metric_sum(text, "driftlock_incidents_open")
            if stored < found:
                return None
            listed = self._paged("/v1/incidents")
            if len(listed) < opened or sum(i["status"] == "open" for i in listed) != still_open:
                return None
            return {"anomalies": found, "incidents": opened, "open": still_open}

        counters.update(wait_for(written, timeout, "the anomalies and incidents to be stored"))
        return counters
