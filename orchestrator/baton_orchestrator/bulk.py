"""Bulk actions on a filtered set of runs or dead letters (the dashboard and the JSON API)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from . import service
from .core import Core, ServiceError
from .store import filters

BULK_LIMIT = 1000  # most runs or dead letters one bulk call touches; the answer says how many matched
CANCELLABLE, RETRYABLE = ("PENDING", "RUNNING"), ("FAILED",)


async def _each(ids: list[Any], one: Callable[[Any], Awaitable[Any]]) -> dict[str, Any]:
    # One transaction per item, through the same function as the single-item endpoint: a run that
    # changed state since it was listed (finished, already cancelled) is skipped and reported, not an error.
    done, skipped = [], []
    for item in ids:
        try:
            await one(item)
            done.append(item)
        except ServiceError as exc:
            if exc.status not in (404, 409):
                raise
            skipped.append({"id": item, "code": exc.code})
    return {"matched": len(ids), "done": len(done), "ids": done, "skipped": skipped}


async def cancel_runs(core: Core, f: filters.RunFilter, limit: int = BULK_LIMIT) -> dict[str, Any]:
    ids = await filters.run_ids(core.db, f, CANCELLABLE, limit)
    return await _each(ids, lambda run_id: service.cancel(core, run_id))


async def retry_runs(core: Core, f: filters.RunFilter, limit: int = BULK_LIMIT) -> dict[str, Any]:
    ids = await filters.run_ids(core.db, f, RETRYABLE, limit)
    return await _each(ids, lambda run_id: service.retry_run(core, run_id))


async def redrive_dead_letters(core: Core, f: filters.DeadLetterFilter, limit: int = BULK_LIMIT) -> dict[str, Any]:
    ids = await filters.dead_letter_ids(core.db, f, limit)
    return await _each(ids, lambda dl_id: service.redrive(core, dl_id, None, False))


async def discard_dead_letters(core: Core, f: filters.DeadLetterFilter, limit: int = BULK_LIMIT) -> dict[str, Any]:
    ids = await filters.dead_letter_ids(core.db, f, limit)
    return await _each(ids, lambda dl_id: service.discard(core, dl_id))
