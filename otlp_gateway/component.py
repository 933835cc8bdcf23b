"""The start/stop contract of every long-lived part of the gateway, and the order they start and stop in.

A ``Component``'s ``start()`` returns quickly (long work moves to the background). ``shutdown(grace)`` is
idempotent and safe without ``start()``: it stops taking work, drains what it holds into its consumer
(still running) within ``grace`` seconds, and releases its resources.

``Components`` starts them downstream first, so a consumer is ready before its producers, and stops them
upstream first, so each drains into a live consumer. The components of one tier (the receivers) start
one after the other and stop together. A start failure names the component, and what had started is
shut down again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

log = logging.getLogger(__name__)


class Component(Protocol):
    async def start(self) -> None: ...

    async def shutdown(self, grace: float = ...) -> None: ...


class ComponentStartError(RuntimeError):
    """A component failed to start; ``component`` names it and ``__cause__`` says why."""

    def __init__(self, component: str, cause: BaseException):
        super().__init__(f"{component} failed to start: {cause}")
        self.component = component


class Components:
    def __init__(self) -> None:
        self._tiers: list[list[tuple[str, Component]]] = []
        self._shutdown_started = False

    def add(self, *named: tuple[str, Component]) -> None:
        """Append one tier (downstream tiers first): ``add(("store", store))``."""
        if named:
            self._tiers.append(list(named))

    def items(self) -> list[tuple[str, Component]]:
        """``(name, component)`` in start order."""
        return [entry for tier in self._tiers for entry in tier]

    async def start_all(self, grace: float = 5.0) -> None:
        """Start every component in order; on a failure, shut everything down (within ``grace``) and
        raise ``ComponentStartError`` naming the one that failed."""
        for tier in self._tiers:
            for name, component in tier:
                try:
                    await component.start()
                except Exception as exc:
                    log.error("%s failed to start: %s", name, exc)
                    await self.shutdown_all(grace)
                    raise ComponentStartError(name, exc) from exc

    async def shutdown_all(self, grace: float) -> None:
        """Stop tiers upstream first, each tier's components together; ``grace`` bounds the whole walk.
        Idempotent; one component failing to stop does not keep the others running."""
        if self._shutdown_started:
            return
        self._shutdown_started = True
        deadline = time.monotonic() + grace
        for tier in reversed(self._tiers):
            left = max(0.0, deadline - time.monotonic())
            await asyncio.gather(*(_shutdown(name, component, left) for name, component in tier))


async def _shutdown(name: str, component: Component, grace: float) -> None:
    try:
        await component.shutdown(grace)
    except Exception:
        log.exception("%s: shutdown failed", name)


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a component's background task (None: never started) and wait until it has ended."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
