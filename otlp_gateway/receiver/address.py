"""``host:port`` listen addresses (the ``HostPort`` settings type) split for the servers."""

from __future__ import annotations


def split_listen(address: str) -> tuple[str, int]:
    """``"127.0.0.1:4317"`` -> ``("127.0.0.1", 4317)``; ``"[::1]:0"`` -> ``("::1", 0)``; an empty host
    means every interface (``"0.0.0.0"``)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def grpc_address(address: str) -> str:
    host, port = split_listen(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
