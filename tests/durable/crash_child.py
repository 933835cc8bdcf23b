"""Child process of the FIFO crash test: append as fast as it can, confirm some entries, print each ack.

Usage: python -m tests.durable.crash_child PATH
Prints ``ACK <n>`` once the append of entry ``n`` returned and ``DONE <n>`` once it was confirmed;
runs until killed.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

from otlp_gateway.durable import DurableFifo

PRODUCERS = 16


async def main(path: Path) -> None:
    fifo = DurableFifo(path, name="crash-child", memory_bytes=1 << 20)
    await fifo.open()
    numbers = itertools.count()

    async def producer() -> None:
        while True:
            n = next(numbers)  # no await before the append takes its id: id order is n order
            await fifo.append("traces", f"entry-{n}-".encode() * 50, n % 7 + 1)
            print(f"ACK {n}", flush=True)

    async def consumer() -> None:
        # Confirms every third entry (deletes are lazy and batched); the others stay in flight unconfirmed,
        # like requests a sender is still retrying when the process dies.
        in_flight = []
        while True:
            entry = await fifo.take()
            n = int((entry.payload or b"").split(b"-")[1])
            if n % 3 == 0:
                fifo.done(entry)
                print(f"DONE {n}", flush=True)
            else:
                in_flight.append(entry)

    await asyncio.gather(consumer(), *(producer() for _ in range(PRODUCERS)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
