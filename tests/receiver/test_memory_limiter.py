"""The memory limiter's state machine, driven by a reader whose figure the test sets; its limits from the
settings and the cgroup files; its log lines and gauges."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from otlp_gateway.config import ConfigError, load_config
from otlp_gateway.receiver.memory import (
    CgroupLevel,
    CgroupMemory,
    ProcessMemory,
    cgroup_level,
    cgroup_limit,
    memory_ceiling,
    memory_reader,
)
from otlp_gateway.receiver.memory_limiter import (
    LOG_QUIET_SECONDS,
    RELIEF_INTERVAL_SECONDS,
    LimiterState,
    MemoryLimiter,
    MemoryLimits,
)
from otlp_gateway.receiver.settings import MemoryLimiterSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

MiB = 1024 * 1024


class SetMemory:
    """A ``MemoryReader`` reporting what the test sets; ``freeable`` bytes vanish when the heap is trimmed."""

    def __init__(self, mib: float) -> None:
        self.value = int(mib * MiB)
        self.freeable = 0
        self.trims = 0

    def rss_bytes(self) -> int:
        return self.value

    def set(self, mib: float, freeable_mib: float = 0) -> None:
        self.value = int(mib * MiB)
        self.freeable = int(freeable_mib * MiB)

    def trim(self) -> None:
        self.trims += 1
        self.value -= self.freeable
        self.freeable = 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(limit: int = 100, spike: int = 20, start_mib: float = 50):
    reader = SetMemory(start_mib)
    clock = Clock()
    metrics = GatewayMetrics()
    settings = MemoryLimiterSettings(limit_mib=limit, spike_limit_mib=spike)
    limiter = MemoryLimiter(settings, metrics, reader=reader, clock=clock, free_heap=reader.trim)
    return limiter, reader, clock, metrics


def sample(metrics: GatewayMetrics, name: str, labels: str = "") -> float:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(f"{name}{labels} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} not exported")


def test_state_follows_the_soft_and_hard_limits():
    limiter, reader, _, metrics = make()
    assert (limiter.limits.hard_bytes, limiter.limits.soft_bytes) == (100 * MiB, 80 * MiB)
    assert limiter.check() is LimiterState.ACCEPTING and not limiter.refusing
    reader.set(79.9)
    assert limiter.check() is LimiterState.ACCEPTING
    reader.set(80)
    assert limiter.check() is LimiterState.REFUSING and limiter.refusing
    assert sample(metrics, "driftlock_memory_limiter_state") == 1
    reader.set(100)
    assert limiter.check() is LimiterState.HARD and limiter.refusing
    assert sample(metrics, "driftlock_memory_limiter_state") == 2
    reader.set(90)
    assert limiter.check() is LimiterState.REFUSING
    reader.set(60)
    assert limiter.check() is LimiterState.ACCEPTING and not limiter.refusing
    assert sample(metrics, "driftlock_memory_limiter_state") == 0
    assert sample(metrics, "driftlock_memory_limiter_rss_bytes") == 60 * MiB
    assert sample(metrics, "driftlock_memory_limiter_limit_bytes", '{limit="soft"}') == 80 * MiB
    assert sample(metrics, "driftlock_memory_limiter_limit_bytes", '{limit="hard"}') == 100 * MiB


def test_freed_heap_is_handed_back_before_deciding():
    """Memory freed inside the process but still resident must not keep the limiter refusing."""
    limiter, reader, _, _ = make()
    reader.set(85, freeable_mib=10)
    assert limiter.check() is LimiterState.ACCEPTING and reader.trims == 1
    assert limiter.rss == 75 * MiB
    reader.set(50)
    limiter.check()
    assert reader.trims == 1  # below the soft limit nothing is trimmed


def test_relief_runs_above_the_hard_limit_at_most_once_per_interval():
    limiter, reader, clock, _ = make()
    relieved: list[float] = []

    def relief() -> None:
        relieved.append(clock.now)
        reader.set(reader.value / MiB - 5)

    limiter.add_relief(relief)
    reader.set(90)
    limiter.check()
    assert relieved == []  # soft only: refusing, nothing more
    reader.set(120)
    assert limiter.check() is LimiterState.HARD and relieved == [clock.now]
    assert limiter.rss == 115 * MiB  # the reading after relief decides
    clock.now += RELIEF_INTERVAL_SECONDS / 2
    reader.set(120)
    limiter.check()
    assert len(relieved) == 1
    clock.now += RELIEF_INTERVAL_SECONDS
    limiter.check()
    assert len(relieved) == 2


def test_a_failing_relief_is_logged_and_the_check_goes_on(caplog):
    limiter, reader, _, _ = make()
    limiter.add_relief(lambda: 1 / 0)
    reader.set(150)
    with caplog.at_level(logging.ERROR, "otlp_gateway.receiver.memory_limiter"):
        assert limiter.check() is LimiterState.HARD
    assert "a relief step failed" in caplog.text


def test_transitions_are_logged_once_per_episode_and_rate_limited(caplog):
    limiter, reader, clock, _ = make()
    name = "otlp_gateway.receiver.memory_limiter"
    with caplog.at_level(logging.INFO, name):
        reader.set(90)
        for _ in range(5):  # staying in the state logs nothing more
            limiter.check()
            clock.now += 1
        limiter.note_refused("grpc")
        limiter.note_refused("http")
        reader.set(50)
        limiter.check()
        clock.now += 1
        # two more short episodes within the quiet period: not logged, counted
        for _ in range(2):
            reader.set(90)
            limiter.check()
            clock.now += 1
            reader.set(50)
            limiter.check()
            clock.now += 1
        clock.now += LOG_QUIET_SECONDS
        reader.set(110)
        limiter.check()
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == name]
    assert [level for level, _ in records] == ["WARNING", "INFO", "WARNING", "WARNING"]
    assert "refusing new ingest" in records[0][1] and "90 MiB" in records[0][1]
    assert "accepting again" in records[1][1] and "2 requests refused" in records[1][1]
    assert "2 shorter episodes since the last message" in records[2][1]
    assert "hard limit of 100 MiB" in records[3][1]


def test_a_long_episode_started_in_the_quiet_period_is_still_logged(caplog):
    limiter, reader, clock, _ = make()
    with caplog.at_level(logging.INFO, "otlp_gateway.receiver.memory_limiter"):
        reader.set(90)
        limiter.check()
        reader.set(50)
        limiter.check()
        clock.now += 1
        reader.set(90)
        limiter.check()  # suppressed: within the quiet period
        assert len(caplog.records) == 2
        clock.now += LOG_QUIET_SECONDS
        limiter.check()  # still refusing once the quiet period is over: said now
        assert len(caplog.records) == 3 and caplog.records[-1].levelname == "WARNING"
        reader.set(50)
        limiter.check()
    assert caplog.records[-1].levelname == "INFO"


def test_readiness_reason_and_refusal_message_while_refusing():
    limiter, reader, _, metrics = make()
    limiter.check()
    assert limiter.reason() is None
    reader.set(85)
    limiter.check()
    assert "memory limiter refusing ingest: 85 MiB resident, soft limit 80 MiB" in (limiter.reason() or "")
    assert "low on memory" in limiter.message()
    limiter.note_refused("grpc")
    assert sample(metrics, "driftlock_memory_limiter_refused_requests_total", '{transport="grpc"}') == 1


def test_limits_from_a_percentage_of_the_ceiling():
    settings = MemoryLimiterSettings(limit_percentage=80)
    limits = MemoryLimits.resolve(settings, ceiling=lambda: (1024 * MiB, "the cgroup memory limit"))
    assert limits.hard_bytes == int(1024 * MiB * 0.8)
    assert limits.soft_bytes == limits.hard_bytes - int(limits.hard_bytes * 0.2)
    assert "80 % of 1024 MiB, the cgroup memory limit" in limits.basis
    explicit = MemoryLimits.resolve(MemoryLimiterSettings(limit_mib=500, spike_limit_mib=100,
                                                          limit_percentage=5))
    assert (explicit.hard_bytes, explicit.soft_bytes) == (500 * MiB, 400 * MiB)
    with pytest.raises(ValueError, match="must be below the hard limit"):
        MemoryLimits.resolve(MemoryLimiterSettings(limit_percentage=10, spike_limit_mib=200),
                             ceiling=lambda: (1024 * MiB, "RAM"))


def test_config_keys_and_validation(tmp_path: Path):
    path = tmp_path / "gw.yaml"
    path.write_text("receiver:\n  memory_limiter:\n    check_interval_seconds: 250ms\n    limit_mib: 600\n"
                    "    spike_limit_mib: 120\n")
    settings = load_config(path, env={}).receiver.memory_limiter
    assert (settings.check_interval_seconds, settings.limit_mib, settings.spike_limit_mib) == (0.25, 600, 120)
    assert load_config(None, env={}).receiver.memory_limiter.limit_percentage == 80
    path.write_text("receiver:\n  memory_limiter:\n    limit_mib: 100\n    spike_limit_mib: 100\n")
    with pytest.raises(ConfigError, match="spike_limit_mib"):
        load_config(path, env={})


def test_cgroup_v2_limit_is_the_tightest_of_the_process_cgroup_and_its_parents(tmp_path: Path):
    root = tmp_path / "cgroup"
    own = root / "kubepods" / "pod1" / "gateway"
    own.mkdir(parents=True)
    (own / "memory.max").write_text("max\n")
    (own.parent / "memory.max").write_text(f"{1024 * MiB}\n")
    (root / "kubepods" / "memory.max").write_text(f"{4096 * MiB}\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/kubepods/pod1/gateway\n")
    assert cgroup_limit(root, proc) == 1024 * MiB
    # inside a container's namespace the process sits at the root and memory.max is its own
    container = tmp_path / "ns"
    container.mkdir()
    (container / "memory.max").write_text(f"{512 * MiB}\n")
    proc.write_text("0::/\n")
    assert cgroup_limit(container, proc) == 512 * MiB


def test_cgroup_v1_and_no_limit(tmp_path: Path):
    root = tmp_path / "cgroup"
    (root / "memory").mkdir(parents=True)
    proc = tmp_path / "proc-cgroup"
    proc.write_text("4:memory:/some/where\n")
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroup_limit(root, proc) is None  # v1's "no limit"
    (root / "memory" / "memory.limit_in_bytes").write_text(f"{768 * MiB}\n")
    assert cgroup_limit(root, proc) == 768 * MiB
    assert memory_ceiling(lambda: 768 * MiB) == (768 * MiB, "the cgroup memory limit")
    total, source = memory_ceiling(lambda: None)
    assert total > 0 and "RAM" in source


def test_a_cgroup_limit_is_compared_with_the_cgroups_working_set(tmp_path: Path):
    """Where the limit comes from a cgroup, the limiter reads that cgroup's use less its inactive file pages:
    every process of the container once per page (a forkserver's children share most of theirs with it)."""
    root = tmp_path / "cgroup"
    own = root / "kubepods" / "pod1" / "gateway"
    own.mkdir(parents=True)
    (own / "memory.max").write_text("max\n")
    pod = own.parent
    (pod / "memory.max").write_text(f"{1024 * MiB}\n")
    (pod / "memory.current").write_text(f"{700 * MiB}\n")
    (pod / "memory.stat").write_text(f"anon {500 * MiB}\nfile {200 * MiB}\nactive_file {50 * MiB}\n"
                                     f"inactive_file {150 * MiB}\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/kubepods/pod1/gateway\n")
    level = cgroup_level(root, proc)
    assert level is not None and level.path == pod and level.limit == 1024 * MiB
    reader, words = memory_reader(lambda: level)
    assert isinstance(reader, CgroupMemory) and str(pod) in words
    assert reader.rss_bytes() == 550 * MiB
    (pod / "memory.current").write_text(f"{900 * MiB}\n")  # read at every check
    assert reader.rss_bytes() == 750 * MiB
    # cgroup v1: the memory controller's usage and its total_inactive_file
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text(f"{768 * MiB}\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text(f"{600 * MiB}\n")
    (v1 / "memory" / "memory.stat").write_text(f"cache {300 * MiB}\ninactive_file {1 * MiB}\n"
                                               f"total_inactive_file {100 * MiB}\n")
    proc.write_text("4:memory:/some/where\n")
    v1_level = cgroup_level(v1, proc)
    assert v1_level is not None and not v1_level.v2
    assert memory_reader(lambda: v1_level)[0].rss_bytes() == 500 * MiB


def test_without_a_readable_cgroup_or_with_limit_mib_the_gateways_processes_are_read(tmp_path: Path):
    assert isinstance(memory_reader(lambda: None)[0], ProcessMemory)
    unreadable = CgroupLevel(tmp_path, 1024 * MiB, True)  # a limit, but no memory.current beside it
    reader, words = memory_reader(lambda: unreadable)
    assert isinstance(reader, ProcessMemory) and "resident sets" in words
    limiter = MemoryLimiter(MemoryLimiterSettings(limit_mib=512), GatewayMetrics())
    assert "resident sets" in limiter.reading  # an explicit budget is the gateway's, as the Collector's is


def test_the_process_memory_counts_child_processes() -> None:
    """Detector and extraction processes are the gateway's children; the container's limit counts them."""
    import subprocess
    import sys

    from otlp_gateway.receiver.memory import ProcessMemory

    reader = ProcessMemory(relist_seconds=0.0)  # lists the children at every reading
    before = reader.rss_bytes()
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nblock = bytearray(96 << 20)\n"
                              "block[::4096] = b'x' * len(block[::4096])\nprint('ready', flush=True)\n"
                              "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert reader.rss_bytes() - before >= 90 * MiB
        listed_once = ProcessMemory()  # the default lists the children once per 10 s: this one now
        assert listed_once.rss_bytes() - before >= 90 * MiB
    finally:
        child.kill()
        child.wait()
