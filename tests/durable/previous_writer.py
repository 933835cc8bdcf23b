"""Child process for the upgrade test: the previous version's export spool accepting requests until killed.

Usage: python -m tests.durable.previous_writer DATA_DIR COUNT
Appends COUNT trace requests (tag ``old-<n>``) from 16 concurrent clients with the previous ``Spool``,
prints ``ACK <n>`` after each append returned, forgets (as if delivered) every fifth one and prints
``FORGOT <n>``, then ``READY``, and waits to be SIGKILLed (no close: the WAL is never checkpointed).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.durable.previous.export_spool import Spool
from tests.exporter.support import traces_payload

SPANS = 3


async def main(data_dir: Path, count: int) -> None:
    spool = Spool(data_dir / "export-spool", on_durable=lambda record, payload: None,
                  on_failed=lambda signal, items, size: None)
    await spool.open()
    semaphore = asyncio.Semaphore(16)

    async def client(n: int) -> None:
        async with semaphore:
            record = await spool.append("traces", traces_payload(f"old-{n}", SPANS), SPANS)
        print(f"ACK {n}", flush=True)
        if n % 5 == 0:
            spool.forget(record.id)
            print(f"FORGOT {n}", flush=True)

    await asyncio.gather(*(client(n) for n in range(count)))
    print("READY", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
