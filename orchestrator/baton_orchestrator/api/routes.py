"""HTTP routes (DESIGN §7): parse, call one service or query function, respond."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import bulk, flow, service, tracing, waits
from ..bus.values import check_value
from ..core import ServiceError
from ..definitions import WorkflowSpec
from ..store import filters, queries
from ..ui import backlog
from . import schemas
from .deps import CoreDep, require_api_key
from .errors import ERROR_RESPONSES
from .schemas import doc

router = APIRouter(
    dependencies=[Depends(require_api_key)], default_response_class=JSONResponse, responses=ERROR_RESPONSES
)
RunStatus = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page")]
Wait = Annotated[
    float | None,
    Query(
        ge=0,
        description="Seconds to wait for the run to finish (long poll, woken by the commit that finishes it); "
        "at most BATON_MAX_WAIT_SECONDS (300).",
    ),
]
# Ids as the definitions allow them: anything else (a NUL, 5,000 characters) is a clear 422, never a 500.
_ID_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
WorkflowId = Annotated[str, Path(pattern=_ID_PATTERN, description="A workflow id")]
WorkflowFilter = Annotated[str | None, Query(pattern=_ID_PATTERN, description="Only this workflow's")]
IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Replays with the same key return the original run (200); another body is a 409.",
    ),
]


class _InputBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: Any = Field(None, description="Any JSON value; the first step's payload.")

    @field_validator("input")
    @classmethod
    def _storable(cls, v: Any) -> Any:
        check_value(v, "input")  # NUL, lone surrogates, > 128 levels, integers beyond 64 bits: 422
        return v


class TriggerRequest(_InputBody):
    priority: int | None = Field(
        None,
        ge=flow.MIN_PRIORITY,
        le=flow.MAX_PRIORITY,
        strict=True,
        description="1 (lowest) to 5; default: the workflow's `priority`, else 3. Orders held steps (flow control).",
    )


class RedriveRequest(_InputBody):
    input: Any = Field(None, description="Replace the step's input for the new attempt (optional).")


# First route of the router: the busiest endpoint should not be matched against every other path.
@router.post(
    "/workflow/{workflow_id}/trigger",
    tags=["runs"],
    status_code=201,
    summary="Start a run (201 new, 200 idempotent replay)",
    response_model=None,
    responses={
        **doc(
            schemas.TriggerAnswer, 201, "A new run (with ?wait=: the finished run, shaped as GET /workflow/run/{id})"
        ),
        **doc(
            schemas.TriggerAnswer, 200, "Idempotent replay: the run this key already started (with ?wait=: its detail)"
        ),
        **doc(schemas.Run, 202, "With ?wait=: the run as it stands when the wait ended"),
    },
)
async def trigger(
    core: CoreDep,
    request: Request,
    workflow_id: WorkflowId,
    idempotency_key: IdemKey = None,
    body: Annotated[TriggerRequest | None, Body()] = None,
    wait: Wait = None,
) -> Response:
    # The caller's W3C `traceparent` (not a documented parameter: any value is accepted, a bad one ignored).
    parent = request.headers.get("traceparent") if tracing.TRACER is not None else None
    status, payload = await service.trigger(
        core, workflow_id, body.input if body else None, idempotency_key, body.priority if body else None, parent
    )
    if wait is not None:
        # Trigger-and-wait: the finished run (201/200), or 202 with the run as it stands when the wait ends.
        run = await waits.wait_for_run(core, payload["run_id"], wait)
        done = run.status in waits.TERMINAL_RUN
        return Response(run.body, status if done else 202, media_type="application/json")
    # The body is built from plain JSON types: encoded once, without FastAPI's generic serialisation pass.
    return Response(orjson.dumps(payload), status, media_type="application/json")


@router.post(
    "/workflow",
    status_code=201,
    tags=["workflows"],
    summary="Define a workflow (new version)",
    response_model=None,
    responses=doc(schemas.Workflow, 201),
)
async def define_workflow(core: CoreDep, spec: WorkflowSpec) -> dict[str, Any]:
    return await service.define(core, spec)


@router.get(
    "/workflow",
    tags=["workflows"],
    summary="List workflows (latest versions)",
    response_model=None,
    responses=doc(schemas.WorkflowPage),
)
async def list_workflows(core: CoreDep, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    return await queries.list_workflows(core.db, limit, cursor)


@router.get(
    "/workflow/runs",
    tags=["runs"],
    summary="List runs, newest first",
    response_model=None,
    responses=doc(schemas.RunPage),
)
async def list_runs(
    core: CoreDep,
    workflow_id: WorkflowFilter = None,
    status: RunStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await queries.list_runs(core.db, workflow_id, status, limit, cursor)


@router.get(
    "/workflow/run/{run_id}",
    tags=["runs"],
    summary="A run with every step and attempt",
    response_model=None,
    responses=doc(schemas.Run),
)
async def get_run(
    core: CoreDep,
    run_id: str,
    wait: Wait = None,
    changed_from: Annotated[
        str | None,
        Query(max_length=64, description="With wait: answer once the run's `version` differs from this one"),
    ] = None,
) -> Response:
    # The body is built by PostgreSQL in one statement and sent as it is (store/queries.py).
    if wait is not None:
        run = await waits.wait_for_run(core, run_id, wait, changed_from)
    else:
        run = await queries.run_detail(core.pool, run_id)
    return Response(run.body, media_type="application/json")


@router.post(
    "/workflow/run/{run_id}/cancel",
    tags=["runs"],
    summary="Cancel a running run",
    response_model=None,
    responses=doc(schemas.RunChange),
)
async def cancel_run(core: CoreDep, run_id: str) -> dict[str, Any]:
    return await service.cancel(core, run_id)


@router.post(
    "/workflow/run/{run_id}/retry",
    tags=["runs"],
    summary="Retry a FAILED run from its failed steps",
    response_model=None,
    responses=doc(schemas.RunChange),
)
async def retry_run(core: CoreDep, run_id: str) -> dict[str, Any]:
    return await service.retry_run(core, run_id)


@router.get(
    "/workflow/{workflow_id}",
    tags=["workflows"],
    summary="A workflow definition",
    response_model=None,
    responses=doc(schemas.Workflow),
)
async def get_workflow(
    core: CoreDep, workflow_id: WorkflowId, version: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    return await queries.get_workflow(core.db, workflow_id, version)


@router.get(
    "/dlq", tags=["dead letters"], summary="Dead letters", response_model=None, responses=doc(schemas.DeadLetterPage)
)
async def list_dlq(
    core: CoreDep,
    status: Literal["OPEN", "REDRIVEN", "DISCARDED"] = "OPEN",
    limit: Limit = 50,
    cursor: Cursor = None,
    workflow_id: WorkflowFilter = None,
) -> dict[str, Any]:
    return await queries.list_dead_letters(core.db, status, limit, cursor, workflow_id)


@router.post(
    "/dlq/{dead_letter_id}/redrive",
    tags=["dead letters"],
    summary="Re-open the step with a fresh attempt budget (optionally new input)",
    response_model=None,
    responses=doc(schemas.Redriven),
)
async def redrive(
    core: CoreDep, dead_letter_id: int, body: Annotated[RedriveRequest | None, Body()] = None
) -> dict[str, Any]:
    has_input = body is not None and "input" in body.model_fields_set
    return await service.redrive(core, dead_letter_id, body.input if body else None, has_input)


@router.delete("/dlq/{dead_letter_id}", tags=["dead letters"], status_code=204, summary="Discard a dead letter")
async def discard(core: CoreDep, dead_letter_id: int) -> Response:
    await service.discard(core, dead_letter_id)
    return Response(status_code=204)


@router.get(
    "/workers",
    tags=["workers"],
    summary="Workers seen in the last 15 s",
    response_model=None,
    responses=doc(schemas.Workers),
)
async def workers(core: CoreDep) -> dict[str, Any]:
    return await service.workers(core)


# ----------------------------------------------------------------- counts, backlog and bulk actions
def run_filter(
    workflow_id: WorkflowFilter = None,
    status: RunStatus | None = None,
    created_after: Annotated[datetime | None, Query(description="Runs created at or after (ISO 8601)")] = None,
    created_before: Annotated[datetime | None, Query(description="Runs created before (ISO 8601)")] = None,
    q: Annotated[str | None, Query(max_length=255, description="A run id or an idempotency key")] = None,
) -> filters.RunFilter:
    return filters.RunFilter(workflow_id, status, created_after, created_before, q)


DeadLetterReason = Literal["retries_exhausted", "non_retryable", "timeout", "payload_too_large", "invalid_result"]


def dead_letter_filter(
    action: str | None = None,
    reason: DeadLetterReason | None = None,
    workflow_id: WorkflowFilter = None,
    run_id: str | None = None,
) -> filters.DeadLetterFilter:
    return filters.DeadLetterFilter(action, reason, workflow_id, run_id)


RunFilterDep = Annotated[filters.RunFilter, Depends(run_filter)]
DeadLetterFilterDep = Annotated[filters.DeadLetterFilter, Depends(dead_letter_filter)]


@router.get("/workflow/runs/counts", tags=["runs"], summary="Runs per status (the filter's status ignored)")
async def run_counts(core: CoreDep, f: RunFilterDep) -> dict[str, int]:
    return await filters.run_counts(core.db, f)


@router.post("/workflow/runs/cancel", tags=["runs"], summary="Cancel every PENDING/RUNNING run the filter matches")
async def cancel_runs(core: CoreDep, f: RunFilterDep) -> dict[str, Any]:
    return await bulk.cancel_runs(core, f)


@router.post("/workflow/runs/retry", tags=["runs"], summary="Retry every FAILED run the filter matches")
async def retry_runs(core: CoreDep, f: RunFilterDep) -> dict[str, Any]:
    return await bulk.retry_runs(core, f)


@router.post("/dlq/redrive", tags=["dead letters"], summary="Redrive every open dead letter the filter matches")
async def redrive_dead_letters(core: CoreDep, f: DeadLetterFilterDep) -> dict[str, Any]:
    return await bulk.redrive_dead_letters(core, f)


@router.post("/dlq/discard", tags=["dead letters"], summary="Discard every open dead letter the filter matches")
async def discard_dead_letters(core: CoreDep, f: DeadLetterFilterDep) -> dict[str, Any]:
    return await bulk.discard_dead_letters(core, f)


@router.get("/workers/backlog", tags=["workers"], summary="Per action: workers present and consumer lag")
async def workers_backlog(core: CoreDep) -> dict[str, Any]:
    try:
        present = (await service.workers(core))["items"]
    except ServiceError:
        present = []  # Redis down: the lag is still worth showing
    return await backlog.backlog(core, present)
