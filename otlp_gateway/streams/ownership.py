"""Stream ownership across gateways (scale-out): one gateway scores a stream at a time.

Gateways sharing one Postgres each register an instance row and renew it every
``heartbeat_interval_seconds``; a stream's lease names the instance that scores it and is valid while that
instance's heartbeat is younger than ``lease_ttl_seconds``. A gateway opening a stream claims it:

- no lease, or its own: it owns the stream (and loads the stored snapshot *after* the claim);
- the owner's heartbeat lapsed (it crashed or lost the store): it takes the lease over (compare-and-set)
  and resumes from the last stored snapshot, which may be up to ``detection.snapshot_interval_seconds``
  old: logged at WARNING, counted in ``driftlock_stream_handoffs_total{direction="in",reason="lapsed"}``;
- a live owner: it asks for the stream (``requested_by``) and holds the stream's events. The owner sees the
  request at its next heartbeat and, once the stream has been quiet there for ``handoff_quiet_seconds``
  (the router no longer sends it there), snapshots it after its queued work, saves the snapshot and
  passes the lease to the requester in one statement; the requester loads that snapshot and scores the
  held events. The first window after a move is therefore scored from the old owner's latest state.

When both keep receiving the stream (a client that does not route by the same ring) the owner never goes
quiet: after ``handoff_timeout_seconds`` both report a conflict
(``driftlock_stream_ownership_conflicts_total`` and a WARNING naming the stream and the other gateway).
The owner keeps scoring; the other forwards the stream's events unscored
(``driftlock_ownership_unscored_events_total``) and takes the stream over as soon as the owner hands it
over. One detector per stream, one writer of its snapshot: never two.

This module is the lease protocol's client side; ``LiveStreamTable`` drives it. Nothing here runs on the
per-request path of a stream this gateway owns: claims happen when a stream is opened (beside its snapshot
load), heartbeats and handoffs in the background.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, model_validator

from otlp_gateway.settings_base import Duration, StrictModel, parse_duration_seconds
from otlp_gateway.store.leases import LeaseRequest, LeaseStore
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

INSTANCE_RETENTION = dt.timedelta(days=1)
"""Instance rows whose heartbeat lapsed longer ago than this are deleted at start (with leases left over)."""


class OwnershipSettings(StrictModel):
    enabled: bool | None = None
    """Leases per stream in the store. Unset: on with Postgres (gateways may share it), off with the
    embedded SQLite store (one gateway)."""
    instance_id: str | None = Field(None, min_length=1, max_length=200)
    """This gateway's name in the leases; must be unique among running gateways. Unset: ``hostname:pid``
    (in Kubernetes the hostname is the pod name)."""
    heartbeat_interval_seconds: Duration = Field(1.0, gt=0)
    """How often the instance's heartbeat is renewed, handoff requests read and held streams polled."""
    lease_ttl_seconds: Duration = Field(10.0, gt=0)
    """A gateway whose heartbeat is older than this is gone: its streams may be taken over. Unset: the
    larger of 10 s and three heartbeats."""
    handoff_quiet_seconds: Duration = Field(1.0, gt=0)
    """The owner hands a requested stream over once it has received none of its events for this long."""
    handoff_timeout_seconds: Duration = Field(15.0, gt=0)
    """A stream still sent to two gateways after this long is reported as a conflict. Unset: the larger of
    15 s, the lease TTL, and the quiet period plus two heartbeats and a second."""

    def active(self, backend: str) -> bool:
        """Whether leases are kept with a store of ``backend``."""
        return self.enabled if self.enabled is not None else backend == "postgres"

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any) -> Any:
        # the timings depend on each other: an unset one follows those that are set
        if not isinstance(data, dict):
            return data
        try:
            beat = _seconds(data.get("heartbeat_interval_seconds", 1.0))
            data = dict(data)
            if data.get("lease_ttl_seconds") is None:
                data["lease_ttl_seconds"] = max(10.0, 3 * beat)
            ttl = _seconds(data["lease_ttl_seconds"])
            quiet = _seconds(data.get("handoff_quiet_seconds", 1.0))
            if data.get("handoff_timeout_seconds") is None:
                data["handoff_timeout_seconds"] = max(15.0, ttl, quiet + 2 * beat + 1.0)
        except (TypeError, ValueError):
            pass  # the fields' own validation names the bad value
        return data

    @model_validator(mode="after")
    def _consistent(self) -> OwnershipSettings:
        if self.lease_ttl_seconds < 3 * self.heartbeat_interval_seconds:
            raise ValueError("lease_ttl_seconds must be at least 3 heartbeat intervals (one late heartbeat "
                             "must not look like a dead gateway)")
        if self.handoff_timeout_seconds < self.lease_ttl_seconds:
            raise ValueError("handoff_timeout_seconds must be at least lease_ttl_seconds (a crashed owner's "
                             "lease lapses first: that is a takeover, not a conflict)")
        if self.handoff_timeout_seconds <= self.handoff_quiet_seconds + 2 * self.heartbeat_interval_seconds:
            raise ValueError("handoff_timeout_seconds must exceed handoff_quiet_seconds plus two heartbeat "
                             "intervals (the time a clean handoff takes)")
        return self


def _seconds(value: Any) -> float:
    return parse_duration_seconds(value) if isinstance(value, str) else float(value)


def default_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Claim:
    owned: bool
    holder: str | None = None
    """When not owned: the live gateway that owns the stream (it has been asked for it)."""
    took_over_from: str | None = None
    """Owned by taking the lease of a gateway whose heartbeat had lapsed."""


@dataclass(slots=True)
class Beat:
    requests: list[LeaseRequest]
    """Streams this gateway owns that another gateway asks for."""
    leases: int
    """Leases the store says this gateway holds."""


@dataclass(slots=True)
class _Episode:
    other: str
    since: float
    reported: bool = False


@dataclass
class ConflictLog:
    """Conflicts reported once per episode (stream, other gateway)."""

    episodes: dict[str, _Episode] = field(default_factory=dict)

    def begin(self, stream_id: str, other: str, now: float) -> _Episode:
        episode = self.episodes.get(stream_id)
        if episode is None or episode.other != other:
            episode = self.episodes[stream_id] = _Episode(other, now)
        return episode

    def end(self, stream_id: str) -> None:
        self.episodes.pop(stream_id, None)


class StreamOwnership:
    """This gateway's side of the leases: register, heartbeat, claim, hand over, release, report."""

    def __init__(self, store: LeaseStore, settings: OwnershipSettings, metrics: GatewayMetrics,
                 instance_id: str | None = None):
        self.store = store
        self.settings = settings
        self.instance_id = instance_id or settings.instance_id or default_instance_id()
        self._token = secrets.token_hex(8)
        self._metrics = metrics
        self._registered = False
        self._beat_failing = False
        self.owner_requests = ConflictLog()
        """Requests for streams this gateway owns, by stream: when first seen, whether reported."""

    # --- instance ---------------------------------------------------------------------------------
    async def register(self) -> bool:
        """Announce this instance (and prune long-gone ones); ``False`` when the store cannot be reached
        now (the heartbeat retries)."""
        try:
            await self.store.register_instance(self.instance_id, self._token, self.settings.lease_ttl_seconds)
            if not self._registered:
                await self.store.prune_instances(dt.datetime.now(dt.UTC) - INSTANCE_RETENTION)
        except Exception as exc:
            log.warning("ownership: could not register gateway instance %s in the store (%s); retrying at "
                        "the next heartbeat", self.instance_id, exc)
            return False
        if not self._registered:
            log.info("ownership: streams are leased to this gateway as %r (heartbeat every %.3gs, lease "
                     "valid %.3gs)", self.instance_id, self.settings.heartbeat_interval_seconds,
                     self.settings.lease_ttl_seconds, extra={"instance_id": self.instance_id})
        self._registered = True
        return True

    async def heartbeat(self) -> Beat | None:
        """Renew this instance, read the requests for its streams and count its leases; ``None`` when the
        store failed (logged once per outage, counted)."""
        try:
            if not self._registered:
                if not await self.register():
                    raise ConnectionError("not registered")
            elif not await self.store.renew_instance(self.instance_id, self._token,
                                                     self.settings.lease_ttl_seconds):
                log.error("ownership: the instance row of %r was gone or held by another process: instance "
                          "ids must be unique among running gateways (detection.ownership.instance_id); "
                          "registering again", self.instance_id)
                await self.store.register_instance(self.instance_id, self._token,
                                                   self.settings.lease_ttl_seconds)
            requests = await self.store.lease_requests(self.instance_id)
            leases = await self.store.count_leases(self.instance_id)
        except Exception as exc:
            self._metrics.ownership_heartbeat_failures.inc()
            if not self._beat_failing:
                log.warning("ownership: heartbeat failed (%s); other gateways may take this gateway's "
                            "streams over once its lease lapses (%.3gs)", exc,
                            self.settings.lease_ttl_seconds)
            self._beat_failing = True
            return None
        if self._beat_failing:
            log.info("ownership: heartbeat restored")
            self._beat_failing = False
        return Beat(requests, leases)

    async def close(self) -> None:
        """Release every lease, withdraw every request and retire the instance (after the streams were
        snapshotted)."""
        try:
            released = await self.store.release_leases(self.instance_id)
            await self.store.withdraw_requests(self.instance_id)
            await self.store.retire_instance(self.instance_id, self._token)
        except Exception as exc:
            log.warning("ownership: could not release this gateway's leases (%s); other gateways take its "
                        "streams over once they lapse (%.3gs)", exc, self.settings.lease_ttl_seconds)
            return
        log.info("ownership: released %d stream leases", released)

    # --- leases -----------------------------------------------------------------------------------
    async def claim(self, stream_id: str) -> Claim:
        """Own ``stream_id`` if nobody else alive does; else ask its owner for it. A store failure counts
        as owned: detection never stops over the store (the heartbeat's reconciliation checks later)."""
        me = self.instance_id
        try:
            for _ in range(3):  # a lease can change between the read and the write: read again
                lease = await self.store.get_lease(stream_id)
                if lease is None:
                    if await self.store.insert_lease(stream_id, me):
                        return Claim(True)
                    continue
                if lease.owner == me:
                    return Claim(True)
                if not lease.owner_alive:
                    if await self.store.take_lapsed_lease(stream_id, me, lease.owner):
                        self._took_over(stream_id, lease.owner, lease.owner_heartbeat_at)
                        return Claim(True, took_over_from=lease.owner)
                    continue
                if lease.requested_by != me:
                    await self.store.request_lease(stream_id, lease.owner, me)
                return Claim(False, holder=lease.owner)
        except Exception as exc:
            log.warning("ownership: could not claim stream %s (%s); scoring it here", stream_id, exc)
            return Claim(True)
        log.warning("ownership: the lease of stream %s kept changing; scoring it here", stream_id)
        return Claim(True)

    def _took_over(self, stream_id: str, previous: str, heartbeat: dt.datetime | None) -> None:
        self._metrics.stream_handoffs.labels("in", "lapsed").inc()
        last = heartbeat.isoformat() if heartbeat else "long ago"
        log.warning("ownership: took stream %s over from gateway %r, whose heartbeat lapsed (last %s): it "
                    "resumes from its last stored snapshot; what %r scored after that snapshot is not in "
                    "the detector", stream_id, previous, last, previous,
                    extra={"stream_id": stream_id, "previous_owner": previous})

    async def let_go(self, stream_id: str) -> str:
        """Give the lease to the gateway asking for it, else release it (after the stream's snapshot was
        saved). Returns ``transferred``, ``released`` or ``failed``."""
        try:
            if await self.store.transfer_lease(stream_id, self.instance_id):
                return "transferred"
            await self.store.release_lease(stream_id, self.instance_id)
            return "released"
        except Exception as exc:
            log.warning("ownership: could not release stream %s (%s); it lapses with this gateway's "
                        "heartbeat or at the next reconciliation", stream_id, exc)
            return "failed"

    async def withdraw(self, stream_id: str) -> None:
        """No longer ask for ``stream_id`` (its events stopped coming here)."""
        try:
            await self.store.withdraw_request(stream_id, self.instance_id)
        except Exception as exc:
            log.warning("ownership: could not withdraw the request for stream %s (%s)", stream_id, exc)

    async def owned(self) -> set[str] | None:
        """The streams the store says this gateway owns (``None`` when it cannot be read)."""
        try:
            return await self.store.owned_streams(self.instance_id)
        except Exception as exc:
            log.warning("ownership: could not list this gateway's leases (%s)", exc)
            return None

    # --- reports ----------------------------------------------------------------------------------
    def conflict(self, side: str, stream_id: str, other: str, detail: str) -> None:
        """A stream sent to two gateways at once: counted per side (``owner``: this gateway scores it and
        another asks for it; ``requester``: another scores it) and logged at WARNING."""
        self._metrics.ownership_conflicts.labels(side).inc()
        log.warning("ownership conflict: stream %s is sent both to this gateway (%r) and to %r: a client "
                    "does not route by the gateways' consistent-hash ring (collector loadbalancing exporter, "
                    "routing_key service); %s", stream_id, self.instance_id, other, detail,
                    extra={"stream_id": stream_id, "other_gateway": other, "side": side})
