"""The scheduler loop: fires due schedule slots as runs (schedules.py decides which).

Due rows are locked with FOR UPDATE SKIP LOCKED, so engine replicas split them; each slot is triggered
with the Idempotency-Key `schedule:<id>:<slot>` and `next_fire_at` advances in the same transaction.
A crash between the two re-fires the slot on the next pass, and the runs table's unique
(workflow_id, idempotency_key) turns that into a replay: no slot ever makes two runs. Nothing here runs
per step: one query per pass when nothing is due.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from .. import service
from ..core import Core, ServiceError
from ..schedules import RUNNING, State, iso_slot, slot_key, tick
from ..store import schedules as store
from .pg import Conn

log = logging.getLogger("baton.scheduler")


def utc_now() -> datetime:
    return datetime.now(UTC)


class SchedulerLoop:
    def __init__(self, core: Core, clock: Callable[[], datetime] = utc_now) -> None:
        self.core, self.clock = core, clock

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # e.g. PostgreSQL away: the next pass re-fires, keys make it a replay
                log.warning("schedule sweep failed (retrying): %s", exc)
            await asyncio.sleep(self.core.settings.schedule_interval_seconds)

    async def sweep(self) -> int:
        """One pass; returns how many schedules were due."""
        now = self.clock()
        async with self.core.db.transaction() as conn:
            rows = await store.due(conn, now, self.core.settings.schedule_batch)
            for row in rows:
                await self._fire(conn, row, now)
        return len(rows)

    async def _fire(self, conn: Conn, row: Any, now: datetime) -> None:
        state = State(row.next_fire_at, row.queued_slot, row.last_status in RUNNING)
        plan = tick(row.spec, state, now, self.core.settings.schedule_misfire_grace_seconds)
        if plan.dropped:
            log.info("schedule %s: %d slot(s) dropped by its catch-up/overlap policy", row.id, plan.dropped)
        run_id, fired, error = row.last_run_id, None, None
        for slot in plan.fire:
            try:
                status, body = await service.trigger(
                    self.core, row.workflow_id, row.spec["input"], slot_key(row.id, slot)
                )
            except ServiceError as exc:
                error = {"code": exc.code, "message": exc.message, "slot": iso_slot(slot)}
                log.warning("schedule %s: slot %s not fired: %s", row.id, iso_slot(slot), exc.message)
                if exc.status >= 500:  # transient: the row stays as it was; the next pass replays what fired
                    return
                continue
            if status == 200:  # normal only after a crash or a failed pass: the slot's run already existed
                log.info("schedule %s: slot %s replayed run %s", row.id, iso_slot(slot), body["run_id"])
            run_id, fired = body["run_id"], now
        await store.advance(
            conn,
            {
                "id": row.id,
                "next": plan.next_fire_at,
                "queued": plan.queued_slot,
                "run": str(run_id) if run_id else None,
                "fired": fired,
                "error": orjson.dumps(error).decode() if error else None,
            },
        )
