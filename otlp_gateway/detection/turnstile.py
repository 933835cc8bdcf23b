"""Ordered admission on the event loop: tickets are served strictly in the order they were issued.

Requests are extracted concurrently with the loop, but their events must reach the stream shards in
arrival order; each request takes a ticket on arrival and dispatches only when its turn comes. A ticket
must be released exactly once, whether or not its holder waited (cancellation included).
"""

from __future__ import annotations

import asyncio


class Turnstile:
    def __init__(self) -> None:
        self._issued = 0
        self._serving = 0
        self._released: set[int] = set()
        self._waiters: dict[int, asyncio.Future[None]] = {}

    def ticket(self) -> int:
        ticket = self._issued
        self._issued += 1
        return ticket

    async def wait(self, ticket: int) -> None:
        if ticket == self._serving:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = waiter
        try:
            await waiter
        finally:
            self._waiters.pop(ticket, None)

    def release(self, ticket: int) -> None:
        self._released.add(ticket)
        while self._serving in self._released:
            self._released.discard(self._serving)
            self._serving += 1
        waiter = self._waiters.get(self._serving)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
