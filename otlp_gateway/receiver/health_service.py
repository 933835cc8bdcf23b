"""``grpc.health.v1.Health`` on the OTLP gRPC port, following the gateway's ``HealthState`` phase.

SERVING only while the phase is ``Phase.SERVING``; NOT_SERVING otherwise. The overall status ("") and each
OTLP service name are reported. Phase changes may come from any thread: they are handed to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from otlp_gateway.health import HealthState, Phase

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcHealthBridge:
    def __init__(self, state: HealthState, services: Iterable[str]):
        self._state = state
        self._services = ("", *services)
        self._servicer = health.aio.HealthServicer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._tasks: set[asyncio.Task] = set()

    async def attach(self, server: grpc.aio.Server) -> None:
        """Register the servicer, publish the current phase and follow later changes."""
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        self._loop = asyncio.get_running_loop()
        await self._publish()
        self._state.on_change(self._on_phase)

    async def close(self) -> None:
        """Report NOT_SERVING to watchers and ignore later phase changes (HealthState keeps listeners)."""
        if self._loop is not None and not self._closed:
            self._closed = True
            await self._servicer.enter_graceful_shutdown()

    def _on_phase(self, _phase: Phase) -> None:
        loop = self._loop
        if loop is None or self._closed or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between: nobody is listening
            loop.call_soon_threadsafe(self._schedule_publish)

    def _schedule_publish(self) -> None:
        task = asyncio.get_running_loop().create_task(self._publish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self) -> None:
        # read the phase now rather than the one notified: out-of-order tasks still end on the latest
        phase = self._state.phase
        if self._closed:
            return
        status = _SERVING if phase is Phase.SERVING else _NOT_SERVING
        for service in self._services:
            await self._servicer.set(service, status)
