"""API keys: ``dlk_<key_id>.<secret>``, the secret shown once and stored only as an argon2id hash.

The lifecycle (create, rotate, revoke) lives here so the REST routes and the CLI share it and both write
the audit log. Hashing and verifying are memory-hard on purpose (~0.15 s, 64 MiB), so verification is
only ever spent on a well-formed key whose id exists and is live (a malformed key or an unknown id costs a
regular expression and one store read), runs on ``max_parallel`` worker threads at a low CPU priority
(nice 10, so guessing cannot slow the event loop that serves everyone else) with at most ``max_waiting``
queued (429 beyond: 32 parallel wrong secrets cost 2 x 64 MiB, not 2 GiB). A
successful verification is remembered for ``cache_seconds`` per (key id, stored hash, presented secret
digest): the next request with the same key costs one store read, and rotating or revoking the key (which
changes the stored row) invalidates the memory at once, on every replica.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from otlp_gateway.store.base import ApiKey, ApiKeyStore, ApiRole, AuditEntry
from otlp_gateway.telemetry.metrics import GatewayMetrics

from .settings import KeyHashSettings, KeyVerificationSettings

log = logging.getLogger(__name__)

KEY_PREFIX = "dlk_"
VERIFY_NICENESS = 10
"""CPU priority of key verification threads (and the argon2 lane threads they start)."""
ROLES: tuple[ApiRole, ...] = ("admin", "operator", "read")
_PRESENTED = re.compile(r"^dlk_([0-9a-f]{16})\.([A-Za-z0-9_-]{20,128})$")


def password_hasher(settings: KeyHashSettings | None = None) -> PasswordHasher:
    """argon2id with the configured cost (defaults: RFC 9106 low-memory profile)."""
    s = settings or KeyHashSettings()
    return PasswordHasher(time_cost=s.time_cost, memory_cost=s.memory_kib, parallelism=s.parallelism)


_verifier = PasswordHasher()  # verification reads the cost parameters from each stored hash


class KeyNotFoundError(LookupError):
    """No API key with that id."""


class KeyRevokedError(RuntimeError):
    """The key is revoked; it can no longer be rotated."""


class VerificationBusy(RuntimeError):
    """Too many key verifications are running or queued; the caller should retry shortly."""


def new_key_id() -> str:
    return secrets.token_hex(8)


def format_key(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}{key_id}.{secret}"


def parse_key(presented: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed presented key, else ``None``."""
    match = _PRESENTED.match(presented)
    return (match.group(1), match.group(2)) if match else None


def _lower_priority() -> None:
    """Thread initializer: on Linux niceness is per thread and inherited by the threads it starts."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), VERIFY_NICENESS)
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted: verification still works
        log.debug("key verification runs at normal priority: %s", exc)


def _verify(secret_hash: str, secret: str) -> bool:
    try:
        return _verifier.verify(secret_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def public_view(key: ApiKey) -> dict[str, Any]:
    """A key as it may be shown or audited: never the hash."""
    return {"key_id": key.key_id, "name": key.name, "role": key.role,
            "created_at": key.created_at.isoformat(),
            "rotated_at": key.rotated_at.isoformat() if key.rotated_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None}


class KeyVerifier:
    """Checks presented keys against the store, with bounded parallel verification and a short, bounded
    memory of successful checks."""

    def __init__(self, store: ApiKeyStore, settings: KeyVerificationSettings | None = None,
                 metrics: GatewayMetrics | None = None, cache_size: int = 1024,
                 touch_every_seconds: float = 60.0, clock=time.monotonic):
        settings = settings or KeyVerificationSettings()
        self._store = store
        self._metrics = metrics
        self._verified: OrderedDict[tuple[str, str, bytes], float] = OrderedDict()
        self._cache_size = cache_size
        self._cache_seconds = settings.cache_seconds
        self._max_queued = settings.max_parallel + settings.max_waiting
        self._executor = ThreadPoolExecutor(settings.max_parallel, thread_name_prefix="key-verify",
                                            initializer=_lower_priority)
        self._queued = 0
        self._clock = clock
        self._touch_every = dt.timedelta(seconds=touch_every_seconds)

    async def verify(self, presented: str) -> ApiKey | None:
        """The key's row when ``presented`` is a live key with the right secret, else ``None``; raises
        ``VerificationBusy`` when too many verifications are already queued."""
        parsed = parse_key(presented)
        if parsed is None:
            return self._result(None, "malformed")
        key_id, secret = parsed
        key = await self._store.get_api_key(key_id)
        if key is None or key.revoked_at is not None:
            return self._result(None, "unknown")
        memo = (key_id, key.secret_hash, hashlib.sha256(secret.encode()).digest())
        now = self._clock()
        expires = self._verified.get(memo)
        if expires is not None and expires > now:
            self._verified.move_to_end(memo)
            outcome = "cached"
        else:
            self._verified.pop(memo, None)
            if not await self._verify_limited(key.secret_hash, secret):
                return self._result(None, "wrong_secret")
            if self._cache_seconds > 0:
                self._verified[memo] = self._clock() + self._cache_seconds
                while len(self._verified) > self._cache_size:
                    self._verified.popitem(last=False)
            outcome = "verified"
        now_utc = dt.datetime.now(dt.UTC)
        # last_used_at is coarse on purpose: one write a minute per key, not one per request.
        if key.last_used_at is None or now_utc - key.last_used_at > self._touch_every:
            await self._store.touch_api_key(key_id, now_utc)
        return self._result(key, outcome)

    async def _verify_limited(self, secret_hash: str, secret: str) -> bool:
        if self._queued >= self._max_queued:
            self._result(None, "busy")
            raise VerificationBusy("too many API key verifications in progress; retry in a second")
        self._queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, _verify, secret_hash,
                                                                    secret)
        finally:
            self._queued -= 1

    def _result(self, key: ApiKey | None, outcome: str) -> ApiKey | None:
        if self._metrics is not None:
            self._metrics.key_verifications.labels(outcome).inc()
        return key


class KeyManager:
    """Create, list, rotate and revoke keys; every change is written to the audit log as ``actor``."""

    def __init__(self, store: ApiKeyStore, hasher: PasswordHasher | None = None):
        self._store = store
        self._hasher = hasher or password_hasher()

    async def _hash(self, secret: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, secret)

    async def create(self, name: str, role: ApiRole, actor: str) -> tuple[ApiKey, str]:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        if not name.strip():
            raise ValueError("name must not be empty")
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id=new_key_id(), name=name.strip(), role=role,
                     secret_hash=await self._hash(secret), created_at=dt.datetime.now(dt.UTC))
        await self._store.create_api_key(key)
        await self._store.append_audit(AuditEntry(actor=actor, action="api_key.create",
                                                  target=f"api_key:{key.key_id}", before=None,
                                                  after=public_view(key)))
        return key, format_key(key.key_id, secret)

    async def list(self) -> list[ApiKey]:
        return await self._store.list_api_keys()

    async def _get(self, key_id: str) -> ApiKey:
        key = await self._store.get_api_key(key_id)
        if key is None:
            raise KeyNotFoundError(key_id)
        return key

    async def rotate(self, key_id: str, actor: str) -> tuple[ApiKey, str]:
        """A new secret for the same key id and role; the old secret stops working at once."""
        before = await self._get(key_id)
        if before.revoked_at is not None:
            raise KeyRevokedError(f"API key {key_id} is revoked; create a new key instead")
        secret = secrets.token_urlsafe(32)
        after = dataclasses.replace(before, secret_hash=await self._hash(secret),
                                    rotated_at=dt.datetime.now(dt.UTC))
        await self._store.update_api_key(after)
        await self._store.append_audit(AuditEntry(actor=actor, action="api_key.rotate",
                                                  target=f"api_key:{key_id}", before=public_view(before),
                                                  after=public_view(after)))
        return after, format_key(key_id, secret)

    async def revoke(self, key_id: str, actor: str) -> ApiKey:
        """Idempotent: revoking a revoked key changes nothing and writes no audit row."""
        before = await self._get(key_id)
        if before.revoked_at is not None:
            return before
        after = dataclasses.replace(before, revoked_at=dt.datetime.now(dt.UTC))
        await self._store.update_api_key(after)
        await self._store.append_audit(AuditEntry(actor=actor, action="api_key.revoke",
                                                  target=f"api_key:{key_id}", before=public_view(before),
                                                  after=public_view(after)))
        return after


# --- CLI helpers (``otlp-gateway api-keys {create,list,rotate,revoke}``); the audit actor is ``cli``.
# ``hasher``: pass ``password_hasher(config.api.key_hash)`` to honour the configured cost.

async def cli_create_key(store: ApiKeyStore, name: str, role: str,
                         hasher: PasswordHasher | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the presented key ``dlk_<id>.<secret>`` (shown once)."""
    return await KeyManager(store, hasher).create(name, role, actor="cli")  # type: ignore[arg-type]


async def cli_list_keys(store: ApiKeyStore) -> list[ApiKey]:
    return await KeyManager(store).list()


async def cli_rotate_key(store: ApiKeyStore, key_id: str, hasher: PasswordHasher | None = None) -> str:
    """Returns the new presented key; raises ``KeyNotFoundError`` / ``KeyRevokedError``."""
    _, presented = await KeyManager(store, hasher).rotate(key_id, actor="cli")
    return presented


async def cli_revoke_key(store: ApiKeyStore, key_id: str) -> None:
    """Raises ``KeyNotFoundError``; revoking twice is a no-op."""
    await KeyManager(store).revoke(key_id, actor="cli")
