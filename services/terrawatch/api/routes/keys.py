"""``/ops/keys``: API key management (admin only). A new key is shown once, in the create response."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from terrawatch.api.deps import ApiDeps
from terrawatch.service.keys import KEY_ID_PATTERN, Principal, Role

KeyId = Annotated[str, Path(pattern=KEY_ID_PATTERN, description="The key's public id.")]


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="Who or what uses the key.")
    role: Role


class KeyCreated(BaseModel):
    id: str
    name: str
    role: Role
    key: str = Field(description="The full key. It is not stored and cannot be shown again.")


class KeyOut(BaseModel):
    id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None


def keys_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/ops/keys", tags=["keys"])

    @router.get("", response_model=list[KeyOut], summary="All keys (never their secrets).")
    def list_keys(_: Principal = Depends(deps.admin)) -> list[dict]:
        return deps.runbook.keys.list()

    @router.post("", response_model=KeyCreated, status_code=201, summary="Create a key; the response shows it once.")
    def create(body: KeyIn, request: Request, who: Principal = Depends(deps.admin)) -> dict:
        key_id, key = deps.runbook.keys.create(body.name, body.role, who.actor,
                                               audit=deps.auditor(who, request, "key.create"))
        return {"id": key_id, "name": body.name, "role": body.role, "key": key}

    @router.delete("/{key_id}", status_code=204, summary="Revoke a key.")
    def revoke(key_id: KeyId, request: Request, who: Principal = Depends(deps.admin)) -> None:
        deps.runbook.keys.revoke(key_id, audit=deps.auditor(who, request, "key.revoke"))

    return router
