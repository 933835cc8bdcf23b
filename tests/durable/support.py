"""Helpers shared by the durable-queue tests."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from otlp_gateway.durable import DurableFifo, Entry


def run(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    """Run one async scenario on a fresh loop, with a hard deadline so a hang fails instead of stalling."""
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def contents(path: Path, **kwargs: Any) -> list[tuple[int, str, int, bytes]]:
    """(id, tag, count, payload) of every entry a fresh open of ``path`` hands out, oldest first; the
    file is closed again without confirming anything."""
    fifo = DurableFifo(path, name="inspect", **kwargs)
    await fifo.open()
    found: list[Entry] = []
    while fifo.pending_entries > len(found):
        found.append(await fifo.take())
    out = [(e.id, e.tag, e.count, e.payload or b"") for e in found]
    await fifo.close()
    return out
