"""Schedules and Kafka triggers as the API sees them: create, list, read, delete, pause, resume.
One transaction each, like service.py; the engine loops (engine/scheduler.py, engine/kafka_triggers.py)
read the same tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schedules
from .bus.codec import iso
from .core import Core, ServiceError
from .schedules import ScheduleError, ScheduleSpec, Timing
from .triggers import KafkaTriggerSpec

MAX_LISTED = 1000


async def _require_workflow(conn: AsyncConnection, workflow_id: str) -> None:
    found = (await conn.execute(text("SELECT 1 FROM workflows WHERE id = :id LIMIT 1"), {"id": workflow_id})).first()
    if found is None:
        raise ServiceError(422, "unknown_workflow", f"workflow {workflow_id!r} does not exist; define it first")


async def create_schedule(core: Core, spec: ScheduleSpec, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    try:
        stored = schedules.normalise(spec, now)
    except ScheduleError as exc:
        raise ServiceError(422, "invalid_schedule", str(exc)) from None
    schedule_id = spec.id or str(uuid.uuid4())
    async with core.db.begin() as conn:
        await _require_workflow(conn, spec.workflow_id)
        row = (
            await conn.execute(
                text("""INSERT INTO schedules (id, workflow_id, spec, paused, next_fire_at)
                VALUES (:id, :wf, CAST(:spec AS jsonb), :paused, :next) ON CONFLICT (id) DO NOTHING RETURNING *"""),
                {
                    "id": schedule_id,
                    "wf": spec.workflow_id,
                    "spec": orjson.dumps(stored).decode(),
                    "paused": spec.paused,
                    "next": Timing.of(stored).after(now),
                },
            )
        ).first()
    if row is None:
        raise ServiceError(409, "schedule_exists", f"schedule {schedule_id!r} already exists; delete it first")
    return _schedule_body(row, 5)


async def list_schedules(core: Core, workflow_id: str | None) -> dict[str, Any]:
    only = "WHERE workflow_id = :wf" if workflow_id else ""
    async with core.db.connect() as conn:
        rows = (
            await conn.execute(
                text(f"SELECT * FROM schedules {only} ORDER BY id LIMIT {MAX_LISTED}"), {"wf": workflow_id}
            )
        ).all()
    return {"items": [_schedule_body(r, 0) for r in rows]}


async def get_schedule(core: Core, schedule_id: str, upcoming: int) -> dict[str, Any]:
    async with core.db.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM schedules WHERE id = :id"), {"id": schedule_id})).first()
    if row is None:
        raise ServiceError(404, "schedule_not_found", f"schedule {schedule_id!r} does not exist")
    return _schedule_body(row, upcoming)


async def delete_schedule(core: Core, schedule_id: str) -> None:
    await _delete(core, "schedules", "schedule", schedule_id)


async def pause_schedule(core: Core, schedule_id: str, paused: bool) -> dict[str, Any]:
    """Pause, or resume from the next future slot: slots that passed while paused never fire."""
    now = datetime.now(UTC)
    async with core.db.begin() as conn:
        row = (
            await conn.execute(text("SELECT * FROM schedules WHERE id = :id FOR UPDATE"), {"id": schedule_id})
        ).first()
        if row is None:
            raise ServiceError(404, "schedule_not_found", f"schedule {schedule_id!r} does not exist")
        if row.paused != paused:
            nxt = row.next_fire_at if paused else Timing.of(row.spec).after(now)
            row = (
                await conn.execute(
                    text("""UPDATE schedules SET paused = :p, next_fire_at = :n, queued_slot = NULL,
                    updated_at = now() WHERE id = :id RETURNING *"""),
                    {"p": paused, "n": nxt, "id": schedule_id},
                )
            ).one()
    return _schedule_body(row, 5)


def _schedule_body(row: Any, upcoming: int) -> dict[str, Any]:
    spec = row.spec
    body = {"id": row.id, **{k: v for k, v in spec.items() if k != "anchor"}, "paused": row.paused}
    body.update(
        next_fire_at=None if row.paused else iso(row.next_fire_at),
        queued_slot=iso(row.queued_slot) if row.queued_slot else None,
        last_run_id=str(row.last_run_id) if row.last_run_id else None,
        last_fired_at=iso(row.last_fired_at) if row.last_fired_at else None,
        last_error=row.last_error,
        created_at=iso(row.created_at),
    )
    if upcoming and not row.paused:
        # From the stored next slot: when the engine is behind, that slot is still the next to fire.
        rest = Timing.of(spec).upcoming(row.next_fire_at, upcoming - 1)
        body["upcoming"] = [iso(t) for t in [row.next_fire_at, *rest]]
    return body


async def create_kafka_trigger(core: Core, spec: KafkaTriggerSpec) -> dict[str, Any]:
    trigger_id = spec.id or str(uuid.uuid4())
    group = spec.group_id or f"{core.settings.engine_group_id}-trigger-{trigger_id}"
    async with core.db.begin() as conn:
        await _require_workflow(conn, spec.workflow_id)
        row = (
            await conn.execute(
                text("""INSERT INTO kafka_triggers (id, workflow_id, topic, key_path, group_id, start_from)
                VALUES (:id, :wf, :topic, :path, :group, :start) ON CONFLICT (id) DO NOTHING RETURNING *"""),
                {
                    "id": trigger_id,
                    "wf": spec.workflow_id,
                    "topic": spec.topic,
                    "path": spec.key_path,
                    "group": group,
                    "start": spec.start_from,
                },
            )
        ).first()
    if row is None:
        raise ServiceError(409, "trigger_exists", f"Kafka trigger {trigger_id!r} already exists; delete it first")
    return trigger_body(row)


async def list_kafka_triggers(core: Core) -> dict[str, Any]:
    async with core.db.connect() as conn:
        rows = (await conn.execute(text(f"SELECT * FROM kafka_triggers ORDER BY id LIMIT {MAX_LISTED}"))).all()
    return {"items": [trigger_body(r) for r in rows]}


async def get_kafka_trigger(core: Core, trigger_id: str) -> dict[str, Any]:
    async with core.db.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM kafka_triggers WHERE id = :id"), {"id": trigger_id})).first()
    if row is None:
        raise ServiceError(404, "trigger_not_found", f"Kafka trigger {trigger_id!r} does not exist")
    return trigger_body(row)


async def delete_kafka_trigger(core: Core, trigger_id: str) -> None:
    await _delete(core, "kafka_triggers", "trigger", trigger_id)


def trigger_body(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "workflow_id": row.workflow_id,
        "topic": row.topic,
        "key_path": row.key_path,
        "group_id": row.group_id,
        "start_from": row.start_from,
        "dlt_topic": f"{row.topic}.DLT",
        "created_at": iso(row.created_at),
    }


async def _delete(core: Core, table: str, what: str, item_id: str) -> None:
    async with core.db.begin() as conn:
        gone = (await conn.execute(text(f"DELETE FROM {table} WHERE id = :id RETURNING id"), {"id": item_id})).first()
    if gone is None:
        label = "Kafka trigger" if what == "trigger" else what
        raise ServiceError(404, f"{what}_not_found", f"{label} {item_id!r} does not exist")
