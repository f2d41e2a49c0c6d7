"""Dependency aliases for routes: the Core, and bearer-token auth when BATON_API_KEYS is set."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from ..core import Core, ServiceError


# async: a plain `def` dependency would cost a thread-pool hop on every request.
async def get_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


async def require_api_key(request: Request) -> None:
    keys = request.app.state.settings.api_key_list
    if keys:
        check_bearer(keys, request.headers.get("authorization", ""))


def check_bearer(keys: list[str], header: str) -> None:
    """401 without a bearer token, 403 when it is none of `keys` (api/fast.py calls this too)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ServiceError(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <key>'")
    # Compare against every key in constant time, so timing does not reveal a prefix or which key matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    if not matched:
        raise ServiceError(403, "forbidden", "the bearer token is not valid")


CoreDep = Annotated[Core, Depends(get_core)]
