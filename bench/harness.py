"""What the throughput benchmarks share: the upb floor, CPU clocks, a gateway child process, a counting
downstream, a closed-loop client (maximum load) and a paced open-loop client (latency at a given load).

Conventions (the machine has 2 cores and is shared): CPU per item is measured with CPU-time clocks (the
gateway process's user + system time, or this thread's time for in-process work), never wall time; the
floor is measured in the same run on the same requests; the load average is printed with every result.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal as signals
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

REPO = Path(__file__).resolve().parents[1]
SIGNALS = ("traces", "logs")
ITEM = {"traces": "span", "logs": "log record"}
REQUEST_TYPES = {"traces": ExportTraceServiceRequest, "logs": ExportLogsServiceRequest}
SERVICES = {"traces": "opentelemetry.proto.collector.trace.v1.TraceService",
            "logs": "opentelemetry.proto.collector.logs.v1.LogsService"}
METHODS = {signal: f"/{service}/Export" for signal, service in SERVICES.items()}
RESPONSES = {"traces": ExportTraceServiceResponse().SerializeToString(),
             "logs": ExportLogsServiceResponse().SerializeToString()}
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
GRPC_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


# --- the machine ------------------------------------------------------------------------------------
def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} ({os.cpu_count()} cores)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the floor --------------------------------------------------------------------------------------
def floor_seconds_per_item(signal: str, requests: Sequence[bytes], items_per_request: int,
                           rounds: int = 3) -> float:
    """Thread CPU seconds per item of a bare upb parse + serialize of ``requests`` (best of ``rounds``:
    the floor is what the work costs when nothing else interferes)."""
    parse = REQUEST_TYPES[signal].FromString
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        for raw in requests:
            parse(raw).SerializeToString()
        best = min(best, time.thread_time() - start)
    return best / (len(requests) * items_per_request)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- the first item's ids: how a delivered request is matched with the one sent ------------------------
def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int) -> Any:
    """(field number, wire type, value start, value end) of the fields in buf[start:end]."""
    pos = start
    while pos < end:
        tag, pos = _read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 2:
            length, pos = _read_varint(buf, pos)
            yield number, wire, pos, pos + length
            pos += length
        elif wire == 0:
            _, after = _read_varint(buf, pos)
            yield number, wire, pos, after
            pos = after
        elif wire == 1:
            yield number, wire, pos, pos + 8
            pos += 8
        elif wire == 5:
            yield number, wire, pos, pos + 4
            pos += 4
        else:
            raise ValueError(f"unexpected wire type {wire}")


def _first(buf: bytes, start: int, end: int, number: int) -> tuple[int, int]:
    for n, _, lo, hi in _fields(buf, start, end):
        if n == number:
            return lo, hi
    raise ValueError(f"no field {number}")


def request_key(payload: bytes) -> bytes:
    """The first item's trace id: resource (1) -> scope block (2) -> item (2) -> trace id (1 on a span,
    9 on a log record). Enough to tell requests apart (ids are random), and it survives annotation."""
    lo, hi = _first(payload, 0, len(payload), 1)
    lo, hi = _first(payload, lo, hi, 2)
    lo, hi = _first(payload, lo, hi, 2)
    for number, _, a, b in _fields(payload, lo, hi):
        if number in (1, 9) and b - a == 16:
            return payload[a:b]
    raise ValueError("first item has no trace id")


# --- the downstream ---------------------------------------------------------------------------------
class CountingDownstream:
    """A real gRPC trace and logs service that counts requests and notes when each one arrived (by its
    first item's trace id); it does not parse requests, so its cost stays out of the figures."""

    def __init__(self) -> None:
        self.requests = 0
        self.arrivals: dict[bytes, float] = {}
        self.server = grpc.aio.server(options=GRPC_OPTIONS)
        for signal, service in SERVICES.items():
            handler = grpc.unary_unary_rpc_method_handler(
                self._handler(signal), request_deserializer=None, response_serializer=None)
            self.server.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler(service, {"Export": handler})])
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _handler(self, signal: str) -> Callable[[bytes, Any], Any]:
        response = RESPONSES[signal]

        async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.requests += 1
            self.arrivals[request_key(request)] = time.monotonic()
            return response

        return export

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(None)

    async def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.requests < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True


# --- the gateway ------------------------------------------------------------------------------------
@dataclass
class GatewayProcess:
    """``python -m otlp_gateway serve`` in a child process with a generated configuration."""

    downstream_port: int
    detection: bool
    spool: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    cpus: str | None = None
    """``taskset -c`` list to pin the gateway to (None: every core)."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-gateway-")))
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.grpc_port, self.http_port, self.api_port = free_port(), free_port(), free_port()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "data_dir": str(self.workdir / "data"),
            "receiver": {"grpc_listen": self.endpoint, "http_listen": f"127.0.0.1:{self.http_port}",
                         "admission": {"max_inflight_items": 1_000_000}, "rate_limit": {"enabled": False}},
            "api": {"listen": f"127.0.0.1:{self.api_port}"},
            "exporter": {"endpoint": f"grpc://127.0.0.1:{self.downstream_port}", "compression": "none",
                         "queue": {"persistent": self.spool}},
            "detection": {"enabled": self.detection},
            "log_level": "warning",
        }
        _merge(config, self.overrides)
        return config

    async def start(self, timeout: float = 180.0) -> None:
        import httpx

        path = self.workdir / "gateway.yaml"
        path.write_text(yaml.safe_dump(self.config()))
        command = [sys.executable, "-m", "otlp_gateway", "serve", "--config", str(path)]
        if self.cpus is not None:
            command = ["taskset", "-c", self.cpus, *command]
        with open(self.workdir / "gateway.log", "wb") as log:
            # PYTHONPATH: the gateway's child processes (forkserver) import this checkout too, not an
            # editable install of another
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            self.proc = subprocess.Popen(command, stderr=log, cwd=REPO, env=env)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    ready = await client.get(f"http://127.0.0.1:{self.api_port}/readyz", timeout=1)
                    if ready.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"gateway did not become ready; log in {self.workdir / 'gateway.log'}")
                await asyncio.sleep(0.2)
        await self.wait_idle(deadline)

    async def wait_idle(self, deadline: float, window: float = 0.5, busy_share: float = 0.05) -> None:
        """Wait until the gateway uses under ``busy_share`` of a core over ``window`` seconds: kernels that
        compile or load in the background after /readyz must not be counted in a measured phase."""
        while time.monotonic() < deadline:
            cpu0 = self.cpu_seconds()
            await asyncio.sleep(window)
            if self.cpu_seconds() - cpu0 < busy_share * window:
                return

    @property
    def process(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU of the gateway and of its child processes (detection's extraction workers),
        live or ended."""
        process = self.process
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += child_times.user + child_times.system
        return float(total)

    def own_cpu_seconds(self) -> float:
        """User + system CPU of the gateway's own process (every thread), without its child processes."""
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss_bytes(self) -> int:
        """Resident memory of the gateway and of its child processes (pages they share counted once per
        process: an upper bound)."""
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return int(total)

    def peak_rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    async def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of the samples of ``name`` (with ``labels`` among theirs) on /metrics."""
        (total,) = await self.metrics([(name, labels or {})])
        return total

    async def metrics(self, queries: Sequence[tuple[str, dict[str, str]]]) -> list[float]:
        """``metric`` for each ``(name, labels)``, from one scrape (a scrape costs the gateway 2.6-3.9 ms of
        CPU with detection's series: polling counts in what a bench measures)."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{self.api_port}/metrics", timeout=10)).text
        # only the queried series' lines are parsed: the whole text costs this process ~tens of ms a scrape,
        # CPU the gateway shares on a 2-core machine
        names = tuple(name for name, _ in queries)
        text = "\n".join(line for line in text.splitlines() if line.startswith(names))
        totals = [0.0] * len(queries)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for i, (name, labels) in enumerate(queries):
                    if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                        totals[i] += sample.value
        return totals

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Profiler:
    """Profiles a process for the length of a ``with`` block, to files named ``prefix.*``:

    * ``prefix.gil.txt``: ``py-spy record --gil`` (only the thread holding the GIL is sampled: where the
      GIL-held, serial Python time goes);
    * ``prefix.all.txt``: ``py-spy record`` (every Python thread that is not idle; used to split the time
      inside numba kernels, which run without the GIL, between decoding and detection);
    * ``prefix.perf.data``: ``perf record`` (every thread of the process, C threads too: CPU by shared
      object; numba's code shows as anonymous memory).

    ``bench/profile_summary.py`` reads them. A missing tool is reported and skipped. Raw py-spy stacks:
    one line per stack with its sample count."""

    def __init__(self, pid: int, prefix: str | None, rate: int = 200):
        self.pid, self.prefix, self.rate = pid, prefix, rate
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Profiler:
        if self.prefix is None:
            return self
        spy = Path(sys.executable).with_name("py-spy")
        if spy.exists():
            for suffix, extra in (("gil", ["--gil"]), ("all", [])):
                self._start([str(spy), "record", "--pid", str(self.pid), "--format", "raw", "--output",
                             f"{self.prefix}.{suffix}.txt", "--rate", str(self.rate), "--nonblocking",
                             "--threads", *extra])
        else:
            print("py-spy is not installed (pip install py-spy): no Python profile", file=sys.stderr)
        perf = shutil.which("perf")
        if perf:
            self._start([perf, "record", "-F", "499", "-p", str(self.pid), "-o", f"{self.prefix}.perf.data"])
        else:
            print("perf is not installed: no native profile", file=sys.stderr)
        time.sleep(0.5)  # attached before the phase starts
        return self

    def _start(self, command: list[str]) -> None:
        self._procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def __exit__(self, *exc: object) -> None:
        for proc in self._procs:
            proc.send_signal(signals.SIGINT)
        for proc in self._procs:
            proc.wait(timeout=60)


def _merge(into: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


# --- clients ----------------------------------------------------------------------------------------
@dataclass
class ClientResult:
    sent: int = 0
    seconds: float = 0.0
    ack_latencies: list[float] = field(default_factory=list)
    """Seconds from a request's scheduled send time to its OK."""
    sent_at: dict[bytes, float] = field(default_factory=dict)
    """Scheduled send time (``time.monotonic``) by request key (see ``request_key``)."""
    refused: int = 0


async def closed_loop(endpoint: str, signal: str, payloads: Sequence[bytes], inflight: int) -> ClientResult:
    """Send every payload once, ``inflight`` at a time, as fast as the gateway takes them: its maximum."""
    result = ClientResult()
    queue = list(reversed(payloads))
    async with grpc.aio.insecure_channel(endpoint, options=GRPC_OPTIONS) as channel:
        call = channel.unary_unary(METHODS[signal], request_serializer=None, response_deserializer=None)

        async def worker() -> None:
            while queue:
                payload = queue.pop()
                while True:
                    try:
                        await call(payload, timeout=60)
                        break
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() not in RETRYABLE:
                            raise
                        result.refused += 1
                        await asyncio.sleep(0.05)
                result.sent += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        result.seconds = time.monotonic() - start
    return result


async def open_loop(endpoint: str, signal: str, payloads: Sequence[bytes], rate: float) -> ClientResult:
    """Send request ``i`` at ``start + i / rate`` whatever happened to the earlier ones (an open-loop,
    paced client, as real senders are); latencies count from the scheduled time, so a stalled gateway
    cannot hide its queueing (no coordinated omission)."""
    result = ClientResult()
    keys = [request_key(p) for p in payloads]
    async with grpc.aio.insecure_channel(endpoint, options=GRPC_OPTIONS) as channel:
        call = channel.unary_unary(METHODS[signal], request_serializer=None, response_deserializer=None)
        await call(payloads[0], timeout=60)  # connect before the clock starts
        start = time.monotonic() + 0.05
        tasks = []

        async def one(i: int, due: float) -> None:
            try:
                await call(payloads[i], timeout=60)
            except grpc.aio.AioRpcError:
                result.refused += 1
                return
            result.ack_latencies.append(time.monotonic() - due)
            result.sent += 1

        for i in range(1, len(payloads)):
            due = start + (i - 1) / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            result.sent_at[keys[i]] = due
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        result.seconds = time.monotonic() - start
    return result


def delivery_latencies(sent_at: dict[bytes, float], arrivals: dict[bytes, float]) -> list[float]:
    return [arrivals[key] - due for key, due in sent_at.items() if key in arrivals]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


# --- in-process load ----------------------------------------------------------------------------------
async def closed_loop_calls(call: Callable[[Any], Awaitable[Any]], items: Sequence[Any],
                            concurrency: int) -> float:
    """Await ``call(item)`` for every item, ``concurrency`` at a time; returns the wall seconds."""
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            await call(queue.pop())

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.monotonic() - start


async def paced_calls(call: Callable[[Any], Awaitable[Any]], items: Sequence[Any],
                      rate: float) -> list[float]:
    """Start ``call(item i)`` at ``start + i / rate`` (open loop); latencies from the scheduled times."""
    latencies: list[float] = []
    start = time.monotonic() + 0.01

    async def one(item: Any, due: float) -> None:
        await call(item)
        latencies.append(time.monotonic() - due)

    tasks = []
    for i, item in enumerate(items):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(item, due)))
    await asyncio.gather(*tasks)
    return latencies


def rss_bytes() -> int:
    """This process's resident set size."""
    return int(psutil.Process().memory_info().rss)
