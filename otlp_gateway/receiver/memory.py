"""Where the memory limiter's figures come from: the process's resident set and the memory it may use.

``MemoryReader`` is the limiter's one input (tests give it a reader of their own): ``memory_reader`` picks
``CgroupMemory`` (the working set of the cgroup whose limit binds: every process of the container, each page
once) where there is one, else ``ProcessMemory`` (the resident sets of the process and its children, with
psutil, already a dependency for the runtime gauges). ``memory_ceiling`` finds the
container's limit: cgroup v2 ``memory.max`` of this process's cgroup and its parents (a limit can sit on
any level), else cgroup v1 ``memory.limit_in_bytes``, never above the machine's RAM.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


class MemoryReader(Protocol):
    def rss_bytes(self) -> int:
        """The process's resident memory now, in bytes."""
        ...


class ProcessMemory:
    """The resident set of this process and of its child processes (detection's detector and extraction
    processes, the forkserver that starts them): the container's limit counts them all. Pages they share
    count once per process, so the figure errs high: the limiter refuses early rather than late.

    Finding the children reads every process's entry in ``/proc`` (~0.8 ms with 70 processes, more on a
    host without a process namespace), so they are listed again every ``relist_seconds`` only; reading
    their resident sets in between costs a file read each."""

    def __init__(self, relist_seconds: float = 10.0) -> None:
        self._process = psutil.Process()
        self._relist_seconds = relist_seconds
        self._children: list[psutil.Process] = []
        self._listed_at = -math.inf

    def rss_bytes(self) -> int:
        now = time.monotonic()
        if now - self._listed_at >= self._relist_seconds:
            self._children = self._process.children(recursive=True)
            self._listed_at = now
        total = self._process.memory_info().rss
        for child in self._children:
            try:
                total += child.memory_info().rss
            except psutil.Error:  # ended since it was listed
                continue
        return int(total)


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit on this level


def _own_cgroup_v2(proc_cgroup: Path) -> str | None:
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


@dataclass(frozen=True)
class CgroupLevel:
    """The cgroup level whose memory limit binds: its directory and its limit in bytes."""

    path: Path
    limit: int
    v2: bool


def cgroup_level(root: Path = CGROUP_ROOT,
                 proc_cgroup: Path = Path("/proc/self/cgroup")) -> CgroupLevel | None:
    """The level with the tightest memory limit on this process's cgroup, or None when there is none."""
    levels: list[CgroupLevel] = []
    own = _own_cgroup_v2(proc_cgroup)
    if own is not None:
        level = root / own.lstrip("/")
        while True:  # inside a container the namespace root is the container's own cgroup
            found = _read_limit(level / "memory.max")
            if found is not None:
                levels.append(CgroupLevel(level, found, True))
            if level == root or root not in level.parents:
                break
            level = level.parent
    v1 = _read_limit(root / "memory" / "memory.limit_in_bytes")
    if v1 is not None and v1 < 1 << 60:  # v1 writes "no limit" as a huge page-rounded number
        levels.append(CgroupLevel(root / "memory", v1, False))
    return min(levels, key=lambda found: found.limit) if levels else None


def cgroup_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The tightest memory limit on this process's cgroup, or None when there is none."""
    level = cgroup_level(root, proc_cgroup)
    return level.limit if level is not None else None


class CgroupMemory:
    """The working set of the cgroup level whose limit binds: its memory in use less its inactive file
    pages (v2 ``memory.current`` - ``inactive_file``, v1 ``memory.usage_in_bytes`` - ``total_inactive_file``),
    what the kubelet compares with the limit and what the kernel cannot reclaim before it kills. It counts
    every process of the container once per page (the gateway, its detector and extraction processes, the
    forkserver: the pages they share, once) and the page cache of the files they write while in use."""

    def __init__(self, level: CgroupLevel) -> None:
        self.level = level
        self._usage = level.path / ("memory.current" if level.v2 else "memory.usage_in_bytes")
        self._stat = level.path / "memory.stat"
        self._inactive = b"inactive_file " if level.v2 else b"total_inactive_file "

    def readable(self) -> bool:
        try:
            self.rss_bytes()
        except (OSError, ValueError):
            return False
        return True

    def rss_bytes(self) -> int:
        usage = int(self._usage.read_bytes())
        inactive = 0
        for line in self._stat.read_bytes().splitlines():
            if line.startswith(self._inactive):
                inactive = int(line[len(self._inactive):])
                break
        return max(0, usage - inactive)


def memory_reader(level: Callable[[], CgroupLevel | None] = cgroup_level) -> tuple[MemoryReader, str]:
    """(what the limiter reads, in words): the cgroup's working set where a cgroup limit binds and can be
    read, else the resident sets of this process and its children."""
    found = level()
    if found is not None:
        reader = CgroupMemory(found)
        if reader.readable():
            return reader, f"the working set of the cgroup {found.path}"
    return ProcessMemory(), "the resident sets of the gateway and its child processes"


def memory_ceiling(cgroup: Callable[[], int | None] = cgroup_limit) -> tuple[int, str]:
    """(bytes the process may use, where that figure comes from)."""
    total = int(psutil.virtual_memory().total)
    limit = cgroup()
    if limit is not None and limit < total:
        return limit, "the cgroup memory limit"
    return total, "the machine's RAM (no cgroup memory limit)"


class _MallocTrim:
    """glibc's ``malloc_trim(0)``: hands freed heap pages back to the kernel, so the resident set shows
    what is in use rather than what was once used. Nothing on other C libraries."""

    def __init__(self) -> None:
        self._fn: Callable[[int], int] | None = None
        name = ctypes.util.find_library("c")
        try:
            fn = ctypes.CDLL(name).malloc_trim if name else None
        except (OSError, AttributeError):
            fn = None
        if fn is not None:
            fn.argtypes = [ctypes.c_size_t]
            fn.restype = ctypes.c_int
            self._fn = fn

    @property
    def available(self) -> bool:
        return self._fn is not None

    def __call__(self) -> None:
        if self._fn is not None:
            self._fn(0)


malloc_trim = _MallocTrim()
