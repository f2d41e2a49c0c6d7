"""Schedules and Kafka triggers as the API sees them: create, list, read, delete, pause, resume.
One transaction each, like service.py; the engine loops (engine/scheduler.py, engine/kafka_triggers.py)
read the same tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from . import schedules
from .bus.codec import iso
from .core import Core, ServiceError
from .engine.pg import Conn
from .schedules import ScheduleError, ScheduleSpec, Timing
from .store import schedules as store
from .store import workflows
from .triggers import KafkaTriggerSpec


async def _require_workflow(conn: Conn, workflow_id: str) -> None:
    if not await workflows.exists(conn, workflow_id):
        raise ServiceError(422, "unknown_workflow", f"workflow {workflow_id!r} does not exist; define it first")


async def create_schedule(core: Core, spec: ScheduleSpec, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    try:
        stored = schedules.normalise(spec, now)
    except ScheduleError as exc:
        raise ServiceError(422, "invalid_schedule", str(exc)) from None
    schedule_id = spec.id or str(uuid.uuid4())
    async with core.db.transaction() as conn:
        await _require_workflow(conn, spec.workflow_id)
        row = await store.insert_schedule(
            conn,
            {
                "id": schedule_id,
                "wf": spec.workflow_id,
                "spec": orjson.dumps(stored).decode(),
                "paused": spec.paused,
                "next": Timing.of(stored).after(now),
            },
        )
    if row is None:
        raise ServiceError(409, "schedule_exists", f"schedule {schedule_id!r} already exists; delete it first")
    return _schedule_body(row, 5)


async def list_schedules(core: Core, workflow_id: str | None) -> dict[str, Any]:
    async with core.db.connection() as conn:
        rows = await store.list_schedules(conn, workflow_id)
    return {"items": [_schedule_body(r, 0) for r in rows]}


async def get_schedule(core: Core, schedule_id: str, upcoming: int) -> dict[str, Any]:
    async with core.db.connection() as conn:
        row = await store.get_schedule(conn, schedule_id)
    if row is None:
        raise ServiceError(404, "schedule_not_found", f"schedule {schedule_id!r} does not exist")
    return _schedule_body(row, upcoming)


async def delete_schedule(core: Core, schedule_id: str) -> None:
    async with core.db.connection() as conn:
        gone = await store.delete_schedule(conn, schedule_id)
    if not gone:
        raise ServiceError(404, "schedule_not_found", f"schedule {schedule_id!r} does not exist")


async def pause_schedule(core: Core, schedule_id: str, paused: bool) -> dict[str, Any]:
    """Pause, or resume from the next future slot: slots that passed while paused never fire."""
    now = datetime.now(UTC)
    async with core.db.transaction() as conn:
        row = await store.get_schedule(conn, schedule_id, for_update=True)
        if row is None:
            raise ServiceError(404, "schedule_not_found", f"schedule {schedule_id!r} does not exist")
        if row.paused != paused:
            nxt = row.next_fire_at if paused else Timing.of(row.spec).after(now)
            row = await store.set_paused(conn, schedule_id, paused, nxt)
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
    async with core.db.transaction() as conn:
        await _require_workflow(conn, spec.workflow_id)
        row = await store.insert_trigger(
            conn,
            {
                "id": trigger_id,
                "wf": spec.workflow_id,
                "topic": spec.topic,
                "path": spec.key_path,
                "group": group,
                "start": spec.start_from,
            },
        )
    if row is None:
        raise ServiceError(409, "trigger_exists", f"Kafka trigger {trigger_id!r} already exists; delete it first")
    return trigger_body(row)


async def list_kafka_triggers(core: Core) -> dict[str, Any]:
    async with core.db.connection() as conn:
        rows = await store.list_triggers(conn)
    return {"items": [trigger_body(r) for r in rows]}


async def get_kafka_trigger(core: Core, trigger_id: str) -> dict[str, Any]:
    async with core.db.connection() as conn:
        row = await store.get_trigger(conn, trigger_id)
    if row is None:
        raise ServiceError(404, "trigger_not_found", f"Kafka trigger {trigger_id!r} does not exist")
    return trigger_body(row)


async def delete_kafka_trigger(core: Core, trigger_id: str) -> None:
    async with core.db.connection() as conn:
        gone = await store.delete_trigger(conn, trigger_id)
    if not gone:
        raise ServiceError(404, "trigger_not_found", f"Kafka trigger {trigger_id!r} does not exist")


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
