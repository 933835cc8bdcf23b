"""A counting OTLP gRPC downstream (traces and logs) in a process of its own, so that its CPU stays out of
the figures of the process under test: ``python bench/downstream.py`` prints ``ENDPOINT grpc://...`` and
serves until killed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CountingDownstream


async def serve() -> None:
    downstream = CountingDownstream()
    await downstream.start()
    print(f"ENDPOINT grpc://127.0.0.1:{downstream.port}", flush=True)
    await downstream.server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve())
