"""Soak: a real gateway under a steady mix of valid and hostile traffic, downstream outages and one SIGKILL.

The gateway runs as a child process (``otlp-gateway serve``; SQLite store in a temporary data dir, detection
on at the default profile) forwarding over OTLP/gRPC to a recording downstream in this process. For
``--minutes`` it drives never-repeated valid traces/logs/metrics over gRPC and HTTP at ``--rate`` requests/s,
one hostile request every ``--hostile-every`` seconds (soak_traffic names the classes and their answers),
a heavy one (gzip bomb, 65 MiB bodies) every ``--heavy-every`` seconds, downstream outages (20 s every 2
minutes) and one SIGKILL + restart in the middle of an outage (what was acknowledged is spooled and must
arrive). A bystander process exports one small span every 100 ms and times it.

Every minute a line: answers by code, bystander p99, gateway RSS, data-dir size, spans acked vs received.
At the end: acknowledged items lost after the drain (must be 0), the answers of every class, RSS growth
slope over the second half, the bystander's worst latency. Exits 1 when an acknowledged item was lost, the
gateway crashed (other than the intended kill) or a request got a wrong answer.

    python bench/soak.py --minutes 10        # --minutes 1 for a quick run
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port
from soak_downstream import RecordingDownstream
from soak_traffic import OK_CODES, TRANSIENT, MiB, Request, Traffic

from otlp_gateway.batch import Signal
from otlp_gateway.otlp.signals import SIGNAL_SPECS

GRPC_OPTIONS = [("grpc.max_send_message_length", 128 * MiB), ("grpc.max_receive_message_length", 16 * MiB),
                # the gateway comes back after the kill: reconnect within a second, not after minutes
                ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)]
SERVER_FAULTS = frozenset({"INTERNAL", "UNKNOWN", "DATA_LOSS", "500", "502", "504"})


# ------------------------------------------------------------------------------------------ the gateway
class GatewayProcess:
    """``otlp-gateway serve --config`` as a child process, restartable on the same ports and data dir."""

    def __init__(self, workdir: Path, downstream: str):
        self.data_dir = workdir / "data"
        self.grpc = f"127.0.0.1:{free_port()}"
        self.http = f"http://127.0.0.1:{free_port()}"
        self.api = f"http://127.0.0.1:{free_port()}"
        config = {"data_dir": str(self.data_dir),
                  "receiver": {"grpc_listen": self.grpc, "http_listen": self.http[7:]},
                  "api": {"listen": self.api[7:]},
                  # retries capped at 5 s (default 30 s) so that the drain after the last outage is short
                  "exporter": {"endpoint": downstream,
                               "retry": {"initial_interval_seconds": 0.5, "max_interval_seconds": 5}}}
        self.config_path = workdir / "gateway.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        script = Path(sys.executable).with_name("otlp-gateway")
        self.command = [str(script)] if script.exists() else [sys.executable, "-m", "otlp_gateway"]

    def start(self, timeout: float = 300.0) -> float:
        """Start and wait until ready; returns the seconds it took."""
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*self.command, "serve", "--config", str(self.config_path)],
                                         stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - began < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.proc.returncode}: {self.log_path}")
            try:
                if httpx.get(self.api + "/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the gateway was not ready within {timeout:.0f} s: {self.log_path}")

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=timeout)

    def rss_mib(self) -> float:
        try:
            return psutil.Process(self.proc.pid).memory_info().rss / MiB if self.proc else 0.0
        except psutil.Error:
            return 0.0

    def metric(self, name: str) -> float:
        """One sample of the gateway's /metrics (NaN when unreachable, 0 when absent)."""
        try:
            text = httpx.get(self.api + "/metrics", timeout=5).text
        except httpx.HTTPError:
            return float("nan")
        return sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples if sample.name == name)

    def data_dir_mib(self) -> float:
        total = 0
        for root, _dirs, files in os.walk(self.data_dir):
            for name in files:
                with contextlib.suppress(OSError):  # removed while walking (SQLite journals)
                    total += os.stat(os.path.join(root, name)).st_size
        return total / MiB


# ------------------------------------------------------------------------------------------ clients
class Client:
    """Sends a Request over OTLP/gRPC or OTLP/HTTP; returns (answer code, items rejected)."""

    def __init__(self, gateway: GatewayProcess):
        self.gateway = gateway
        self.channel = grpc.insecure_channel(gateway.grpc, options=GRPC_OPTIONS)
        self.http = httpx.Client(timeout=15)

    def close(self) -> None:
        self.channel.close()
        self.http.close()

    def send(self, request: Request) -> tuple[str, int]:
        spec = SIGNAL_SPECS[request.signal]
        if request.transport == "grpc":
            call = self.channel.unary_unary(spec.grpc_method, request_serializer=None,
                                            response_deserializer=None)
            try:
                answer = call(request.body, timeout=15)
            except grpc.RpcError as error:
                return error.code().name, 0  # type: ignore[attr-defined]  # a grpc.Call
            return "OK", _rejected(request.signal, answer)
        if len(request.body) > 8 * MiB:
            return _post_streaming(self.gateway.http, spec.http_path, request.body), 0
        headers = {"content-type": "application/x-protobuf"}
        if request.content_encoding:
            headers["content-encoding"] = request.content_encoding
        try:
            response = self.http.post(self.gateway.http + spec.http_path, content=request.body,
                                      headers=headers)
        except httpx.TimeoutException:
            return "timeout", 0
        except httpx.TransportError:
            return "connect-error", 0
        rejected = _rejected(request.signal, response.content) if response.status_code == 200 else 0
        return str(response.status_code), rejected


def _rejected(signal: Signal, answer: bytes) -> int:
    spec = SIGNAL_SPECS[signal]
    response = spec.response_type.FromString(answer)
    return getattr(response.partial_success, spec.rejected_field)  # type: ignore[attr-defined]


def _post_streaming(base: str, path: str, body: bytes) -> str:
    """POST a large body in 1 MiB pieces, stopping as soon as the server answers (a 413 comes early and the
    server closes: an ordinary client would see a broken pipe instead of the status)."""
    host, port = base[7:].split(":")
    head = (f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/x-protobuf\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    try:
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(head)
            for start in range(0, len(body), MiB):
                sock.settimeout(0)
                try:
                    early = sock.recv(4096)
                except BlockingIOError:
                    early = b""
                sock.settimeout(15)
                if early:
                    return early.split(b" ", 2)[1].decode()
                try:
                    sock.sendall(body[start:start + MiB])
                except OSError:
                    break
            answer = sock.recv(4096)
        return answer.split(b" ", 2)[1].decode() if answer else "connect-error"
    except OSError:
        return "connect-error"


# ------------------------------------------------------------------------------------------ the ledger
class Ledger:
    """What was sent and answered: answers per class, identities acknowledged, wrong answers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: dict[str, Counter[str]] = {}
        self.minute: Counter[str] = Counter()
        self.acked: dict[Signal, set[int]] = {s: set() for s in SIGNAL_SPECS}
        self.wrong: Counter[str] = Counter()
        self.hostile_times: list[tuple[float, float, str]] = []  # (wall time sent, answered, class)

    def record(self, request: Request, code: str, rejected: int, sent_at: float) -> None:
        ok = code in OK_CODES
        right = (code in request.expected and (not ok or rejected == request.expect_rejected)) \
            or (code in TRANSIENT and not ok)
        with self.lock:
            self.answers.setdefault(f"{request.kind} [{request.transport}]", Counter())[code] += 1
            self.minute[code] += 1
            if ok:
                self.acked[request.signal].update(request.ids)
            if not request.kind.startswith("valid"):
                self.hostile_times.append((sent_at, time.time(), request.kind))
            if not right:
                self.wrong[f"{request.kind} [{request.transport}]: {code} (rejected {rejected})"] += 1

    def take_minute(self) -> Counter[str]:
        with self.lock:
            minute, self.minute = self.minute, Counter()
        return minute


def sender(period: float, make: Callable[[], Request], client: Client, ledger: Ledger,
           stop: threading.Event) -> None:
    """Send ``make()`` every ``period`` seconds (a late request is not made up for)."""
    next_at = time.monotonic()
    while not stop.is_set():
        request, sent_at = make(), time.time()
        code, rejected = client.send(request)
        ledger.record(request, code, rejected, sent_at)
        next_at = max(next_at + period, time.monotonic() - period)
        stop.wait(max(0.0, next_at - time.monotonic()))


def cycle(makers: list[Callable[[], Request]]) -> Callable[[], Request]:
    state = {"i": 0}

    def make() -> Request:
        state["i"] += 1
        return makers[state["i"] % len(makers)]()

    return make


# ------------------------------------------------------------------------------------------ the bystander
def bystander_main(grpc_endpoint: str, out: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    """In its own process: one small span over gRPC every 100 ms; puts (wall time, latency, code, id)."""
    traffic = Traffic(seed=int.from_bytes(os.urandom(4), "big"))
    method = SIGNAL_SPECS["traces"].grpc_method
    with grpc.insecure_channel(grpc_endpoint, options=GRPC_OPTIONS) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        while not stop.is_set():
            message, ids = traffic.traces(n=1)
            body = message.SerializeToString()
            began = time.monotonic()
            try:
                call(body, timeout=10)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name  # type: ignore[attr-defined]
            latency = time.monotonic() - began
            out.put((time.time(), latency, code, ids[0]))
            stop.wait(max(0.0, 0.1 - latency))


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return max(values, default=0.0)
    return statistics.quantiles(values, n=100)[98]


# ------------------------------------------------------------------------------------------ the soak
class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.duration = args.minutes * 60
        self.downstream = RecordingDownstream().start()
        self.gateway = GatewayProcess(workdir, self.downstream.endpoint)
        self.ledger = Ledger()
        self.bystander: list[tuple[float, float, str]] = []  # (wall time, latency, code)
        self.excluded: list[tuple[float, float]] = []  # wall-time windows of the intended kill
        self.rss: list[tuple[float, float]] = []  # (seconds into the run, MiB)
        self.crashes: list[str] = []
        period = min(120.0, self.duration / 2)
        length = min(20.0, period / 6)
        self.outages = [(start, start + length) for start in _frange(0.375 * period, self.duration, period)]
        middles = [(start + end) / 2 for start, end in self.outages]  # kill with a backlog spooled
        self.kill_at = min(middles, key=lambda m: abs(m - self.duration / 2))
        self.restart_seconds = 0.0
        self.restarted_at = 0.0  # seconds into the run

    def run(self) -> int:
        started_in = self.gateway.start()
        self.began_wall = time.time()
        print(f"gateway ready in {started_in:.1f} s (log {self.gateway.log_path}); downstream "
              f"{self.downstream.endpoint}; outages {[(round(s), round(e)) for s, e in self.outages]} s; "
              f"SIGKILL at {self.kill_at:.0f} s", flush=True)
        client, traffic, hostile_traffic = Client(self.gateway), Traffic(seed=1), Traffic(seed=2)
        stop = threading.Event()
        valid = cycle([lambda s=s, t=t: traffic.valid(s, t) for s in ("traces", "logs", "metrics")
                       for t in ("grpc", "http")])
        hostile = cycle([lambda f=f, t=t: f(t) for f in hostile_traffic.hostile() for t in ("grpc", "http")])
        heavy_traffic = Traffic(seed=3)
        heavy = cycle(heavy_traffic.heavy())
        threads = [threading.Thread(target=sender, args=(p, make, client, self.ledger, stop), daemon=True)
                   for p, make in ((1 / self.args.rate, valid), (self.args.hostile_every, hostile),
                                   (self.args.heavy_every, heavy))]
        context = multiprocessing.get_context("spawn")
        results, stop_bystander = context.Queue(), context.Event()
        bystander = context.Process(target=bystander_main, args=(self.gateway.grpc, results, stop_bystander),
                                    daemon=True)
        bystander.start()
        for thread in threads:
            thread.start()
        began = time.monotonic()
        self._timeline(began, results)
        stop.set()
        stop_bystander.set()
        for thread in threads:
            thread.join(timeout=60)
        bystander.join(timeout=30)
        self._drain_bystander(results)
        client.close()
        return self._finish()

    def _timeline(self, began: float, results: multiprocessing.Queue) -> None:
        killed, next_minute, next_rss = False, 60.0, 0.0
        while (now := time.monotonic() - began) < self.duration:
            self.downstream.failing = any(s <= now < e for s, e in self.outages)
            if not killed and now >= self.kill_at:
                killed = True
                self._kill_and_restart()
                self.restarted_at = time.monotonic() - began
            elif (code := self.gateway.exited()) is not None:
                self.crashes.append(f"exit {code} at {now:.0f} s")
                print(f"!! the gateway exited with {code} at {now:.0f} s; restarting", flush=True)
                self.gateway.start()
            if now >= next_rss:
                self.rss.append((now, self.gateway.rss_mib()))
                next_rss += 2.0
            self._drain_bystander(results)
            if now >= next_minute:
                self._minute_line(now)
                next_minute += 60.0
            time.sleep(0.25)
        self.downstream.failing = False
        self._drain_bystander(results)
        self._minute_line(self.duration)

    def _kill_and_restart(self) -> None:
        killed_at = time.time()
        self.gateway.kill()
        print(f"-- SIGKILL (downstream {'down' if self.downstream.failing else 'up'})", flush=True)
        self.restart_seconds = self.gateway.start()
        self.excluded.append((killed_at, time.time() + 2))
        print(f"-- restarted, ready in {self.restart_seconds:.1f} s", flush=True)

    def _drain_bystander(self, results: multiprocessing.Queue) -> None:
        while not results.empty():
            at, latency, code, span_id = results.get()
            self.bystander.append((at, latency, code))
            if code == "OK":
                with self.ledger.lock:
                    self.ledger.acked["traces"].add(span_id)

    def _bystander_latencies(self, since: float = 0.0) -> list[float]:
        return [latency for at, latency, _ in self.bystander
                if at >= since and not any(a <= at <= b for a, b in self.excluded)]

    def _minute_line(self, now: float) -> None:
        answers = self.ledger.take_minute()
        latencies = self._bystander_latencies(since=time.time() - 60)
        with self.ledger.lock:
            acked = len(self.ledger.acked["traces"])
        received = len(self.downstream.received["traces"])
        codes = ", ".join(f"{code} {n}" for code, n in sorted(answers.items(), key=lambda kv: -kv[1])
                          if code not in OK_CODES)
        print(f"[{now / 60:4.1f} min] ok {sum(answers[c] for c in OK_CODES)}, refused: {codes or 'none'} | "
              f"bystander p99 {p99(latencies) * 1000:.0f} ms max {max(latencies, default=0) * 1000:.0f} ms | "
              f"RSS {self.gateway.rss_mib():.0f} MiB, live streams "
              f"{self.gateway.metric('driftlock_streams_live'):.0f} | "
              f"data dir {self.gateway.data_dir_mib():.1f} MiB | "
              f"spans acked {acked} received {received}"
              f"{' | downstream DOWN' if self.downstream.failing else ''}", flush=True)

    def _finish(self) -> int:
        missing = self._drain()
        live = self.gateway.metric("driftlock_streams_live")
        exit_code = self.gateway.terminate()
        print("\n== summary")
        lost = self._report_delivery(missing)
        faults = self._report_answers()
        self._report_resources(live)
        self._report_bystander()
        print(f"restart after SIGKILL: ready in {self.restart_seconds:.1f} s; crashes: "
              f"{self.crashes or 'none'}; exit on SIGTERM {exit_code}")
        errors = [line for line in self.gateway.log_path.read_text(errors="replace").splitlines()
                  if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]
        print(f"gateway log: {len(errors)} ERROR lines" + "".join(f"\n  {line[:200]}" for line in errors[:8]))
        checks = {"acknowledged items lost": lost, "gateway crashed": self.crashes,
                  "wrong answers": self.ledger.wrong, "server faults": faults,
                  "unclean exit on SIGTERM": exit_code}
        failures = [what for what, bad in checks.items() if bad]
        print("SOAK FAILED: " + ", ".join(failures) if failures else "SOAK PASSED")
        return 1 if failures else 0

    def _report_delivery(self, missing: dict[Signal, int]) -> int:
        for signal in SIGNAL_SPECS:
            acked, received = self.ledger.acked[signal], self.downstream.received[signal]
            deliveries = self.downstream.deliveries[signal]
            print(f"{signal:8s} acknowledged {len(acked):8d}  received {len(received & acked):8d}  "
                  f"lost {missing[signal]:d}  (deliveries {deliveries}, "
                  f"repeats {deliveries - len(received)})")
        lost = sum(missing.values())
        print(f"acknowledged items lost after the drain: {lost}")
        return lost

    def _report_answers(self) -> int:
        print("answers by class:")
        for kind, answers in sorted(self.ledger.answers.items()):
            print(f"  {kind:46s} {dict(answers.most_common())}")
        faults = sum(n for answers in self.ledger.answers.values() for code, n in answers.items()
                     if code in SERVER_FAULTS)
        print(f"wrong answers: {sum(self.ledger.wrong.values())} {dict(self.ledger.wrong) or ''}")
        print(f"server faults (5xx / INTERNAL other than the overload answers 503/429/UNAVAILABLE): {faults}")
        return faults

    def _report_resources(self, live_streams: float) -> None:
        peak = max(mib for _, mib in self.rss)
        print(f"live streams at the end: {live_streams:.0f} (at most detection.max_live_streams, "
              "default 1000, stay in memory)")
        print(f"gateway RSS: {self.rss[-1][1]:.0f} MiB at the end, peak {peak:.0f} MiB; growth "
              f"{self._rss_slope(self.duration / 2):+.1f} MiB/min over the second half, "
              f"{self._rss_slope(self.restarted_at + 60):+.1f} MiB/min from 60 s after the restart; "
              f"data dir {self.gateway.data_dir_mib():.1f} MiB after the drain")

    def _report_bystander(self) -> None:
        rounds = [(at, latency, code) for at, latency, code in self.bystander
                  if not any(a <= at <= b for a, b in self.excluded)]
        latencies = [latency for _, latency, _ in rounds]
        failed = Counter(code for _, _, code in rounds if code != "OK")
        print(f"bystander: {len(latencies)} rounds outside the kill, p99 {p99(latencies) * 1000:.0f} ms, max "
              f"{max(latencies, default=0) * 1000:.0f} ms, failures {dict(failed) or 0}; the slowest (s into "
              "the run, latency, hostile requests in flight meanwhile):")
        for at, latency, _ in sorted(rounds, key=lambda r: -r[1])[:5]:
            during = sorted({kind for sent, answered, kind in self.ledger.hostile_times
                             if sent <= at and answered >= at - latency})
            print(f"  {at - self.began_wall:5.0f} s {latency * 1000:5.0f} ms  {', '.join(during) or '-'}")

    def _rss_slope(self, since: float) -> float:
        """MiB per minute, least squares over the RSS samples from ``since`` seconds into the run."""
        samples = [(t, mib) for t, mib in self.rss if t >= since and mib > 0]
        if len(samples) < 2:
            return float("nan")
        times, mibs = zip(*samples, strict=True)
        return statistics.linear_regression(times, mibs).slope * 60

    def _drain(self) -> dict[Signal, int]:
        """Wait (at most --drain-seconds) until every acknowledged item arrived; the count still missing."""
        deadline = time.monotonic() + self.args.drain_seconds
        while True:
            missing = {s: len(self.ledger.acked[s] - self.downstream.received[s]) for s in SIGNAL_SPECS}
            if not any(missing.values()) or time.monotonic() > deadline:
                return missing
            time.sleep(1.0)


def _frange(start: float, stop: float, step: float) -> list[float]:
    values = []
    while start < stop:
        values.append(start)
        start += step
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10.0, help="valid requests per second")
    parser.add_argument("--hostile-every", type=float, default=2.0, help="seconds between hostile requests")
    parser.add_argument("--heavy-every", type=float, default=20.0, help="seconds between bombs/65 MiB bodies")
    parser.add_argument("--drain-seconds", type=float, default=180.0)
    parser.add_argument("--keep", action="store_true", help="keep the data dir and log (kept on failure)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    soak = Soak(args, workdir)
    try:
        result = soak.run()
    finally:
        if soak.gateway.exited() is None and soak.gateway.proc is not None:
            soak.gateway.kill()
        soak.downstream.stop()
    if result == 0 and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir}")
    return result


if __name__ == "__main__":
    sys.exit(main())
