"""The detection worker threads: one ``SerialExecutor`` per shard; a stream always runs on the same shard.

One thread per shard keeps each stream's work in submission order (determinism) while several shards
use several cores: the detector kernels are numba ``nogil`` functions, so shards run in parallel.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from otlp_gateway.serial import SerialExecutor

T = TypeVar("T")


class ShardPool:
    def __init__(self, shards: int, name: str = "driftlock-detect"):
        self._executors = [SerialExecutor(f"{name}-{i}") for i in range(shards)]

    def __len__(self) -> int:
        return len(self._executors)

    def shard_of(self, stream_id: str) -> int:
        """Stable across processes (unlike ``hash``), so a restart shards streams the same way."""
        return zlib.crc32(stream_id.encode()) % len(self._executors)

    def submit(self, shard: int, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._executors[shard].submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        for executor in self._executors:
            executor.shutdown(wait=wait)
