"""Child process for the crash-safety test: accept batches as fast as it can and print each ack.

Usage: python -m tests.exporter.crash_child ENDPOINT DATA_DIR
Prints ``ACK <n>`` after ``consume()`` returned for the batch tagged ``crash-<n>``; runs until killed.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

from otlp_gateway.batch import TelemetryBatch
from tests.exporter.support import SPANS_PER_CRASH_BATCH, new_exporter, traces_payload

CONCURRENT_CLIENTS = 16
SPANS_PER_BATCH = SPANS_PER_CRASH_BATCH


async def main(endpoint: str, data_dir: Path) -> None:
    exporter, _ = new_exporter(endpoint, data_dir)
    await exporter.start()
    numbers = itertools.count()

    async def client() -> None:
        while True:
            n = next(numbers)
            await exporter.consume(TelemetryBatch("traces", traces_payload(f"crash-{n}", SPANS_PER_BATCH),
                                                  SPANS_PER_BATCH))
            sys.stdout.write(f"ACK {n}\n")
            sys.stdout.flush()

    await asyncio.gather(*(client() for _ in range(CONCURRENT_CLIENTS)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
