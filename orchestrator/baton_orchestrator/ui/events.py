"""The live feed of one browser tab: Server-Sent Events of every run change, from the process's one
LISTEN connection (feed.py). The browser re-fetches only what a change names; nothing polls.

Read with fetch(), not EventSource: EventSource cannot send an Authorization header, and a key or a
token in the URL would end up in logs and history. fetch sends the same bearer key as every other call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse

from ..api.deps import CoreDep, require_api_key
from ..core import ServiceError
from ..feed import TooManyWaiters

router = APIRouter(prefix="/ui", include_in_schema=False)
IDLE_SECONDS = 15.0


@router.get("/events")
async def events(request: Request, core: CoreDep) -> EventSourceResponse:
    await require_api_key(request)
    try:
        sub = core.feed.subscribe(None)
        changes = sub.__enter__()
    except TooManyWaiters as exc:
        raise ServiceError(503, "too_many_waiters", str(exc)) from None

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            yield {"event": "ready", "data": "{}"}
            while True:
                started = time.monotonic()
                change = await changes.next(IDLE_SECONDS)
                if change is not None:
                    data = {"run_id": change.run_id, "type": change.type, "step": change.step}
                    yield {"event": "change", "data": orjson.dumps(data).decode()}
                elif time.monotonic() - started < IDLE_SECONDS - 0.5:
                    # Woken early without a change: the feed reconnected and may have missed some.
                    yield {"event": "resync", "data": "{}"}
        finally:
            sub.__exit__(None, None, None)

    # "\n" separators: the browser side splits events on blank lines. Pings keep proxies from closing it.
    return EventSourceResponse(stream(), ping=IDLE_SECONDS, sep="\n", headers={"Cache-Control": "no-store"})
