"""What every reliability case uses: the gateway as a child process, a bystander client, an RSS watch,
hostile clients, and the table of measurements printed at the end of the run (docs/reliability.md).

The gateway runs as a child process so the bystander's latency and the RSS are the gateway's own, not
this test process's (whose GIL the hostile clients share).
"""

from __future__ import annotations

import json
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.gateway import REPO, GatewayProcess, gateway_config_dict
from tests.fixtures.waiting import wait_until

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
BYSTANDER_BOUND_SECONDS = 1.0
MiB = 1024 * 1024


# ------------------------------------------------------------------------------------------ the gateway
def start_gateway(workdir: Path, downstream_endpoint: str | None, **sections: dict) -> GatewayProcess:
    """A child-process gateway forwarding to ``downstream_endpoint``, ready (kernels loaded)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = gateway_config_dict(workdir / "data", forward_to=downstream_endpoint, **sections)
    gw = GatewayProcess(config, workdir).start()
    wait_until(lambda: httpx.get(gw.api_url + "/readyz", timeout=2).status_code == 200, 120,
               f"the gateway to be ready (log: {gw.log_path})")
    return gw


def stop_gateway(gw: GatewayProcess) -> None:
    if gw.proc is not None and gw.proc.poll() is None:
        gw.terminate()


def scrape(gw: GatewayProcess, name: str, labels: dict[str, str] | None = None) -> float:
    """One sample of the gateway's /metrics (0 when absent)."""
    text = httpx.get(gw.api_url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return sample.value
    return 0.0


# ------------------------------------------------------------------------------------------ bystander
class Bystander:
    """Asks ``/healthz`` and exports one small span over gRPC (and, with ``http_export``, over OTLP/HTTP),
    over and over, recording each round's latency; ``acked_spans`` counts spans acknowledged. It runs as
    its own process (``bystander_client``), so the test process's hostile load cannot slow it down."""

    def __init__(self, gateway: GatewayProcess, http_export: bool = False, health_only: bool = False):
        command = [sys.executable, "-m", "tests.reliability.bystander_client", "--api", gateway.api_url,
                   "--grpc", gateway.grpc_endpoint]
        if http_export:
            command += ["--http", gateway.http_url]
        if health_only:
            command.append("--health-only")
        self._command = command
        self._proc: subprocess.Popen[str] | None = None
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.acked_spans = 0
        self._reader = threading.Thread(target=self._read, name="bystander-reader", daemon=True)

    def __enter__(self) -> Bystander:
        self._proc = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      cwd=REPO)
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.close()  # the client stops after its current round
        self._proc.wait(timeout=60)
        self._reader.join(timeout=10)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            round_ = json.loads(line)
            self.acked_spans += round_["acked"]
            if round_["error"]:
                self.failures.append(round_["error"])
            self.latencies.append(round_["latency"])

    @property
    def worst(self) -> float:
        return max(self.latencies, default=float("inf"))

    def assert_served(self) -> None:
        assert not self.failures, self.failures[:5]
        assert len(self.latencies) >= 3, "the bystander hardly got an answer"
        assert self.worst < BYSTANDER_BOUND_SECONDS, sorted(self.latencies)[-5:]


# ------------------------------------------------------------------------------------------ RSS
class RssWatch:
    """Samples the gateway's resident memory every 50 ms: ``baseline`` at start, ``peak``, ``last``."""

    def __init__(self, pid: int):
        self._process = psutil.Process(pid)
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self.last = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last = self._process.memory_info().rss
            self.peak = max(self.peak, self.last)
            self._stop.wait(0.05)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


# ------------------------------------------------------------------------------------------ hostile clients
class Slowloris:
    """``connections`` sockets to ``port``, each sending a request's headers one byte per ``interval``
    (the headers never end); a socket the server closes is counted (with the status it answered, if
    any) and reopened."""

    HEAD = b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n"

    def __init__(self, port: int, connections: int, interval: float = 0.5):
        self._port = port
        self._count = connections
        self._interval = interval
        self._stop = threading.Event()
        self.opened = 0
        self.closed_by_server = 0
        self.answers: Counter[str] = Counter()
        self.max_open = 0
        self._thread = threading.Thread(target=self._run, name=f"slowloris-{port}", daemon=True)

    def __enter__(self) -> Slowloris:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _open(self, selector: selectors.BaseSelector, sent: dict[socket.socket, int]) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self._port), timeout=1)
        except OSError:
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        sent[sock] = 0
        self.opened += 1

    def _close(self, selector: selectors.BaseSelector, sent: dict[socket.socket, int], sock: socket.socket,
               data: bytes) -> None:
        selector.unregister(sock)
        sent.pop(sock, None)
        sock.close()
        self.closed_by_server += 1
        self.answers[data[:12].decode(errors="replace") or "closed without an answer"] += 1

    def _byte(self, sent: int) -> bytes:
        if sent < len(self.HEAD):
            return self.HEAD[sent:sent + 1]
        filler = b"x-pad: aaaaaaaaaaaaaaaaaaaa\r\n"  # more headers, forever
        return filler[(sent - len(self.HEAD)) % len(filler):][:1]

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        sent: dict[socket.socket, int] = {}
        next_drip = time.monotonic()
        try:
            while not self._stop.is_set():
                while len(sent) < self._count and not self._stop.is_set():
                    self._open(selector, sent)
                self.max_open = max(self.max_open, len(sent))
                for key, _ in selector.select(timeout=0.02):
                    sock = key.fileobj
                    try:
                        data = sock.recv(4096)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    self._close(selector, sent, sock, data)  # type: ignore[arg-type]
                if time.monotonic() >= next_drip:
                    next_drip += self._interval
                    for sock in list(sent):
                        try:
                            sock.send(self._byte(sent[sock]))
                            sent[sock] += 1
                        except OSError:
                            self._close(selector, sent, sock, b"")
        finally:
            for sock in list(sent):
                sock.close()
            selector.close()


def raw_http(port: int, head: bytes, body_chunks: Iterator[bytes] | None = None, timeout: float = 30.0
             ) -> tuple[str, int]:
    """Send ``head`` then ``body_chunks`` on a fresh connection, stopping as soon as the server answers or
    closes; returns (the status line, or "" when it closed without one; the bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent = 0
    try:
        for piece in _chain(head, body_chunks or iter(())):
            if _answered(sock):
                break
            try:
                sock.sendall(piece)
            except OSError:
                break
            sent += len(piece)
        try:
            data = sock.recv(4096)
        except OSError:
            data = b""
        return data.split(b"\r\n", 1)[0].decode(errors="replace"), sent
    finally:
        sock.close()


def _chain(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    for i in range(0, len(head), 64 * 1024):
        yield head[i:i + 64 * 1024]
    yield from rest


def _answered(sock: socket.socket) -> bool:
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    try:
        return bool(selector.select(timeout=0))
    finally:
        selector.close()


# ------------------------------------------------------------------------------------------ the table
@dataclass
class CaseRow:
    case: str
    answer: str
    bystander_worst_s: float
    rss_peak_mib: float
    rss_growth_mib: float
    loss: str


RESULTS: list[CaseRow] = []


def record(case: str, answer: str, bystander: Bystander, rss: RssWatch, loss: str) -> None:
    RESULTS.append(CaseRow(case, answer, bystander.worst, rss.peak / MiB, rss.growth / MiB, loss))


def render_table(rows: list[CaseRow]) -> str:
    lines = ["| case | answer | bystander max latency | gateway RSS peak (growth) | acknowledged data lost |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.case} | {r.answer} | {r.bystander_worst_s * 1000:.0f} ms | "
                     f"{r.rss_peak_mib:.0f} MiB (+{r.rss_growth_mib:.0f}) | {r.loss} |")
    return "\n".join(lines)


@contextmanager
def watched(gw: GatewayProcess, http_export: bool = False,
            health_only: bool = False) -> Iterator[tuple[Bystander, RssWatch]]:
    """A bystander and an RSS watch around a hostile case."""
    assert gw.proc is not None
    with RssWatch(gw.proc.pid) as rss, Bystander(gw, http_export, health_only) as bystander:
        wait_until(lambda: len(bystander.latencies) >= 2, 30, "the bystander's baseline")
        yield bystander, rss
        rounds = len(bystander.latencies) + 2
        wait_until(lambda: len(bystander.latencies) >= rounds, 30, "the bystander's rounds after the case")
