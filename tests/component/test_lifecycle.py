"""The component contract, on the gateway's real components: ``shutdown`` is safe without ``start`` and
idempotent; the gateway starts them downstream first and stops them upstream first; a start failure names
the component and stops what had started."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from otlp_gateway.app import Gateway
from otlp_gateway.component import ComponentStartError
from otlp_gateway.config import GatewayConfig, load_config
from tests.fixtures.gateway import gateway_config_dict
from tests.fixtures.waiting import free_ports

START_ORDER = ["anomaly store", "API", "anomaly writer", "incident sink", "stream pruner", "exporter",
               "data dir budget", "kernel warm-up", "detection stage", "request decoders", "memory limiter",
               "OTLP gRPC receiver", "OTLP HTTP receiver", "API application"]


def _config(tmp_path: Path, **sections: dict) -> GatewayConfig:
    data = gateway_config_dict(tmp_path / "data", forward_to=f"grpc://127.0.0.1:{free_ports(1)[0]}",
                               **sections)
    return load_config(None, env={}, overrides={(key,): value for key, value in data.items()})


def test_every_component_shuts_down_safely_without_start_and_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        gateway = Gateway(_config(tmp_path))
        components = gateway.build()
        assert [name for name, _ in components.items()] == START_ORDER
        for name, component in components.items():
            for _ in range(2):
                try:
                    await asyncio.wait_for(component.shutdown(1.0), 30)
                except Exception as exc:  # reported with the component's name
                    pytest.fail(f"{name}: shutdown without start raised {exc!r}")

    asyncio.run(scenario())


def test_started_components_stop_upstream_first_and_a_second_shutdown_does_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        gateway = Gateway(_config(tmp_path))
        await gateway.start()
        stopped: list[str] = []
        for name, component in gateway.components.items():
            shutdown = component.shutdown

            async def recording(grace: float = 0.0, name: str = name, shutdown=shutdown) -> None:
                stopped.append(name)
                await shutdown(grace)

            component.shutdown = recording  # type: ignore[method-assign]
        await gateway.shutdown(10.0)
        receivers = {"OTLP gRPC receiver", "OTLP HTTP receiver"}
        assert stopped[0] == "API application"  # the last tier, stopped first
        assert set(stopped[1:3]) == receivers  # one tier: stopped together
        assert stopped[3:] == [n for n in reversed(START_ORDER) if n not in receivers][1:]
        for _name, component in gateway.components.items():  # each one again: a no-op
            await asyncio.wait_for(component.shutdown(1.0), 30)
        assert stopped.count("exporter") == 2

    asyncio.run(scenario())


def test_a_start_failure_names_the_component_and_stops_what_had_started(tmp_path: Path) -> None:
    grpc_port, api_port = free_ports(2)
    taken = socket.socket()
    taken.bind(("127.0.0.1", grpc_port))
    taken.listen(1)
    try:
        config = _config(tmp_path, receiver={"grpc_listen": f"127.0.0.1:{grpc_port}",
                                             "http_listen": "127.0.0.1:0"},
                         api={"listen": f"127.0.0.1:{api_port}"})

        async def scenario() -> None:
            gateway = Gateway(config)
            with pytest.raises(ComponentStartError) as failure:
                await gateway.start()
            assert failure.value.component == "OTLP gRPC receiver"
            assert "OTLP gRPC receiver failed to start" in str(failure.value)
            assert gateway.store is not None
            with pytest.raises(Exception):  # noqa: B017 - closed: any use fails
                await gateway.store.ping()

        asyncio.run(scenario())
        with socket.socket() as probe:  # the API had started: it was shut down, its port is free again
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", api_port))
    finally:
        taken.close()
