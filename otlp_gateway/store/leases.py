"""The store's part of stream ownership (scale-out): gateway instances with a heartbeat, and one lease per
stream naming the instance that scores it. The protocol itself (who claims, hands over, reports) lives in
``otlp_gateway.streams.ownership``; this is only what the store keeps and its atomic steps."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StreamLease:
    stream_id: str
    owner: str
    """Instance id of the gateway that scores the stream."""
    owner_alive: bool
    """The owner's heartbeat is fresh (judged by the database's clock on Postgres)."""
    owner_heartbeat_at: dt.datetime | None
    """The owner's last heartbeat (``None``: no instance row, long gone)."""
    requested_by: str | None
    """Another gateway was sent the stream and asks for it."""


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    stream_id: str
    requested_by: str


class LeaseStore(Protocol):
    """Each method is one statement, atomic on its own."""

    async def register_instance(self, instance_id: str, token: str, ttl: float) -> None:
        """Insert or take over the instance row; its heartbeat is valid for ``ttl`` seconds."""
        ...

    async def renew_instance(self, instance_id: str, token: str, ttl: float) -> bool:
        """Extend the heartbeat; ``False`` when the row is gone or carries another token (another process
        registered with the same instance id)."""
        ...

    async def retire_instance(self, instance_id: str, token: str) -> None: ...

    async def prune_instances(self, older_than: dt.datetime) -> int:
        """Delete instance rows whose heartbeat lapsed before ``older_than``, then leases without an
        instance row; returns the instances deleted."""
        ...

    async def get_lease(self, stream_id: str) -> StreamLease | None: ...

    async def insert_lease(self, stream_id: str, owner: str) -> bool:
        """Claim a stream nobody owns; ``False`` when it has an owner already."""
        ...

    async def take_lapsed_lease(self, stream_id: str, owner: str, previous: str) -> bool:
        """Take the lease from ``previous`` while its heartbeat has lapsed (compare-and-set)."""
        ...

    async def request_lease(self, stream_id: str, owner: str, requester: str) -> bool:
        """Ask ``owner`` (still the owner) for the stream; ``False`` when already asked or not its owner."""
        ...

    async def withdraw_request(self, stream_id: str, requester: str) -> None: ...

    async def withdraw_requests(self, requester: str) -> None:
        """Every request ``requester`` made (it shuts down)."""
        ...

    async def transfer_lease(self, stream_id: str, owner: str) -> bool:
        """Give the lease to the gateway that asked for it; ``False`` when nobody asks (any more) or the
        requester's heartbeat lapsed."""
        ...

    async def release_lease(self, stream_id: str, owner: str) -> bool: ...

    async def release_leases(self, owner: str) -> int: ...

    async def lease_requests(self, owner: str) -> list[LeaseRequest]:
        """Streams ``owner`` holds that another gateway asks for."""
        ...

    async def count_leases(self, owner: str) -> int: ...

    async def owned_streams(self, owner: str) -> set[str]: ...
