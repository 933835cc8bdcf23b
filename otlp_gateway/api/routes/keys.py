"""API keys (admin): create (the secret is in the response once), list, rotate, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from ..auth import AdminPrincipal
from ..errors import ApiError, error_responses
from ..keys import KeyManager, KeyNotFoundError, KeyRevokedError
from ..schemas import ApiKeyCreate, ApiKeyIssued, ApiKeyList, ApiKeyOut

router = APIRouter(prefix="/api-keys", tags=["api-keys"])
KeyId = Annotated[str, Path(min_length=1, max_length=64, description="The key id (after `dlk_`)")]


def _manager(request: Request) -> KeyManager:
    return KeyManager(request.app.state.ctx.store, request.app.state.key_hasher)


@router.post("", response_model=ApiKeyIssued, status_code=201,
             summary="Create a key; the secret is shown once")
async def create_key(request: Request, who: AdminPrincipal, body: ApiKeyCreate) -> ApiKeyIssued:
    key, presented = await _manager(request).create(body.name, body.role, actor=who.actor)
    return ApiKeyIssued(key=ApiKeyOut.from_key(key), secret=presented)


@router.get("", response_model=ApiKeyList, summary="Every key (never a secret or hash)")
async def list_keys(request: Request, _: AdminPrincipal) -> ApiKeyList:
    return ApiKeyList(items=[ApiKeyOut.from_key(k) for k in await _manager(request).list()])


@router.post("/{key_id}/rotate", response_model=ApiKeyIssued, responses=error_responses(404, 409),
             summary="New secret for the key; the old one is refused from now on")
async def rotate_key(request: Request, who: AdminPrincipal, key_id: KeyId) -> ApiKeyIssued:
    try:
        key, presented = await _manager(request).rotate(key_id, actor=who.actor)
    except KeyNotFoundError:
        raise ApiError(404, "not_found", f"no API key with id {key_id!r}") from None
    except KeyRevokedError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return ApiKeyIssued(key=ApiKeyOut.from_key(key), secret=presented)


@router.post("/{key_id}/revoke", response_model=ApiKeyOut, responses=error_responses(404),
             summary="Revoke the key (idempotent)")
async def revoke_key(request: Request, who: AdminPrincipal, key_id: KeyId) -> ApiKeyOut:
    try:
        key = await _manager(request).revoke(key_id, actor=who.actor)
    except KeyNotFoundError:
        raise ApiError(404, "not_found", f"no API key with id {key_id!r}") from None
    return ApiKeyOut.from_key(key)
