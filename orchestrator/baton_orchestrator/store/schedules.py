"""Schedules and Kafka triggers: what the API writes and the engine's scheduler and trigger loops read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..engine.pg import Conn, fetchall, fetchone

MAX_LISTED = 1000

INSERT_SCHEDULE = """INSERT INTO schedules (id, workflow_id, spec, paused, next_fire_at)
VALUES (%(id)s, %(wf)s, CAST(%(spec)s AS jsonb), %(paused)s, %(next)s) ON CONFLICT (id) DO NOTHING RETURNING *"""
LIST_SCHEDULES = f"SELECT * FROM schedules ORDER BY id LIMIT {MAX_LISTED}"
LIST_SCHEDULES_OF = f"SELECT * FROM schedules WHERE workflow_id = %(wf)s ORDER BY id LIMIT {MAX_LISTED}"
GET_SCHEDULE = "SELECT * FROM schedules WHERE id = %(id)s"
LOCK_SCHEDULE = "SELECT * FROM schedules WHERE id = %(id)s FOR UPDATE"
PAUSE_SCHEDULE = """UPDATE schedules SET paused = %(p)s, next_fire_at = %(n)s, queued_slot = NULL,
updated_at = now() WHERE id = %(id)s RETURNING *"""
DELETE_SCHEDULE = "DELETE FROM schedules WHERE id = %(id)s RETURNING id"
# The scheduler's pass: replicas split the due rows (SKIP LOCKED).
DUE = """
SELECT s.id, s.workflow_id, s.spec, s.next_fire_at, s.queued_slot, s.last_run_id, r.status AS last_status
FROM schedules s LEFT JOIN runs r ON r.id = s.last_run_id
WHERE NOT s.paused AND (s.next_fire_at <= %(now)s OR s.queued_slot IS NOT NULL)
ORDER BY s.next_fire_at LIMIT %(limit)s
FOR UPDATE OF s SKIP LOCKED"""
ADVANCE = """
UPDATE schedules SET next_fire_at = %(next)s, queued_slot = %(queued)s, last_run_id = CAST(%(run)s AS uuid),
    last_fired_at = COALESCE(%(fired)s, last_fired_at), last_error = CAST(%(error)s AS jsonb), updated_at = now()
WHERE id = %(id)s"""

INSERT_TRIGGER = """INSERT INTO kafka_triggers (id, workflow_id, topic, key_path, group_id, start_from)
VALUES (%(id)s, %(wf)s, %(topic)s, %(path)s, %(group)s, %(start)s) ON CONFLICT (id) DO NOTHING RETURNING *"""
LIST_TRIGGERS = f"SELECT * FROM kafka_triggers ORDER BY id LIMIT {MAX_LISTED}"
ALL_TRIGGERS = "SELECT * FROM kafka_triggers"
GET_TRIGGER = "SELECT * FROM kafka_triggers WHERE id = %(id)s"
DELETE_TRIGGER = "DELETE FROM kafka_triggers WHERE id = %(id)s RETURNING id"


async def insert_schedule(conn: Conn, params: dict[str, Any]) -> Any:
    """The new row; None when the id is taken. `params`: id, wf, spec (JSON text), paused, next."""
    return await fetchone(conn, INSERT_SCHEDULE, params)


async def list_schedules(conn: Conn, workflow_id: str | None) -> list[Any]:
    if workflow_id:
        return await fetchall(conn, LIST_SCHEDULES_OF, {"wf": workflow_id})
    return await fetchall(conn, LIST_SCHEDULES)


async def get_schedule(conn: Conn, schedule_id: str, for_update: bool = False) -> Any:
    return await fetchone(conn, LOCK_SCHEDULE if for_update else GET_SCHEDULE, {"id": schedule_id})


async def set_paused(conn: Conn, schedule_id: str, paused: bool, next_fire_at: datetime) -> Any:
    return await fetchone(conn, PAUSE_SCHEDULE, {"p": paused, "n": next_fire_at, "id": schedule_id})


async def delete_schedule(conn: Conn, schedule_id: str) -> bool:
    return await fetchone(conn, DELETE_SCHEDULE, {"id": schedule_id}) is not None


async def due(conn: Conn, now: datetime, limit: int) -> list[Any]:
    return await fetchall(conn, DUE, {"now": now, "limit": limit})


async def advance(conn: Conn, params: dict[str, Any]) -> None:
    """`params`: id, next, queued, run (text or None), fired, error (JSON text or None)."""
    await conn.execute(ADVANCE, params)


async def insert_trigger(conn: Conn, params: dict[str, Any]) -> Any:
    """The new row; None when the id is taken. `params`: id, wf, topic, path, group, start."""
    return await fetchone(conn, INSERT_TRIGGER, params)


async def list_triggers(conn: Conn, limit: bool = True) -> list[Any]:
    return await fetchall(conn, LIST_TRIGGERS if limit else ALL_TRIGGERS)


async def get_trigger(conn: Conn, trigger_id: str) -> Any:
    return await fetchone(conn, GET_TRIGGER, {"id": trigger_id})


async def delete_trigger(conn: Conn, trigger_id: str) -> bool:
    return await fetchone(conn, DELETE_TRIGGER, {"id": trigger_id}) is not None
