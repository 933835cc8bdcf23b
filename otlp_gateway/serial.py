"""One named thread that runs blocking calls in submission order, awaited from the event loop.

Blocking I/O (SQLite, spool files) and per-stream detection must not run on the event loop, and each
needs its calls in order; a single-thread executor gives both. This is the one place such a thread is made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class SerialExecutor:
    """A single worker thread named ``name``; calls run one at a time, in the order submitted."""

    def __init__(self, name: str):
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)``; the returned future completes on the worker thread."""
        return self._pool.submit(fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the worker thread, awaited without blocking the event loop."""
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking calls; with ``wait=False`` queued calls are cancelled (idempotent)."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
