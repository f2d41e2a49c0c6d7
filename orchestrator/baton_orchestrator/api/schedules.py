"""Routes for schedules (/schedules) and Kafka triggers (/triggers/kafka): parse, call automations, respond."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from .. import automations
from ..schedules import ScheduleSpec
from ..settings import ACTION_PATTERN
from ..triggers import KafkaTriggerSpec
from .deps import CoreDep, require_api_key
from .errors import ERROR_RESPONSES

# Ids are [A-Za-z0-9._-]: anything else (a NUL, say) is a 422 here instead of a database error.
ItemId = Annotated[str, Path(pattern=ACTION_PATTERN)]
WorkflowFilter = Annotated[str | None, Query(pattern=ACTION_PATTERN)]

router = APIRouter(
    dependencies=[Depends(require_api_key)], default_response_class=JSONResponse, responses=ERROR_RESPONSES
)


@router.post("/schedules", status_code=201, tags=["schedules"], summary="Create a schedule (cron or interval)")
async def create_schedule(core: CoreDep, spec: ScheduleSpec) -> dict[str, Any]:
    return await automations.create_schedule(core, spec)


@router.get("/schedules", tags=["schedules"], summary="List schedules")
async def list_schedules(core: CoreDep, workflow_id: WorkflowFilter = None) -> dict[str, Any]:
    return await automations.list_schedules(core, workflow_id)


@router.get("/schedules/{schedule_id}", tags=["schedules"], summary="A schedule with its next fire times")
async def get_schedule(
    core: CoreDep, schedule_id: ItemId, upcoming: Annotated[int, Query(ge=1, le=100, description="Fire times")] = 5
) -> dict[str, Any]:
    return await automations.get_schedule(core, schedule_id, upcoming)


@router.delete("/schedules/{schedule_id}", status_code=204, tags=["schedules"], summary="Delete a schedule")
async def delete_schedule(core: CoreDep, schedule_id: ItemId) -> Response:
    await automations.delete_schedule(core, schedule_id)
    return Response(status_code=204)


@router.post("/schedules/{schedule_id}/pause", tags=["schedules"], summary="Pause a schedule")
async def pause_schedule(core: CoreDep, schedule_id: ItemId) -> dict[str, Any]:
    return await automations.pause_schedule(core, schedule_id, paused=True)


@router.post("/schedules/{schedule_id}/resume", tags=["schedules"], summary="Resume from the next future slot")
async def resume_schedule(core: CoreDep, schedule_id: ItemId) -> dict[str, Any]:
    return await automations.pause_schedule(core, schedule_id, paused=False)


@router.post("/triggers/kafka", status_code=201, tags=["triggers"], summary="Start a workflow per record of a topic")
async def create_kafka_trigger(core: CoreDep, spec: KafkaTriggerSpec) -> dict[str, Any]:
    return await automations.create_kafka_trigger(core, spec)


@router.get("/triggers/kafka", tags=["triggers"], summary="List Kafka triggers")
async def list_kafka_triggers(core: CoreDep) -> dict[str, Any]:
    return await automations.list_kafka_triggers(core)


@router.get("/triggers/kafka/{trigger_id}", tags=["triggers"], summary="A Kafka trigger")
async def get_kafka_trigger(core: CoreDep, trigger_id: ItemId) -> dict[str, Any]:
    return await automations.get_kafka_trigger(core, trigger_id)


@router.delete("/triggers/kafka/{trigger_id}", status_code=204, tags=["triggers"], summary="Delete a Kafka trigger")
async def delete_kafka_trigger(core: CoreDep, trigger_id: ItemId) -> Response:
    await automations.delete_kafka_trigger(core, trigger_id)
    return Response(status_code=204)
