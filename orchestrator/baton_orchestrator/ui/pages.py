"""Dashboard pages under /ui/. A browser's navigation gets a shell without data (it asks for an API key
when BATON_API_KEYS is set); the shell then fetches the same URL with htmx (`HX-Request`), bearer
token attached, and only that request is authorised and rendered with data."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .. import bulk, service
from ..api.deps import CoreDep, require_api_key
from ..core import Core, ServiceError
from ..definitions import NAME_RE
from ..store import filters, queries
from . import backlog, views
from .render import render

router = APIRouter(prefix="/ui", include_in_schema=False, default_response_class=HTMLResponse)
PAGE = 50


def _is_fragment(request: Request) -> bool:
    return request.headers.get("hx-request") == "true" and "hx-history-restore-request" not in request.headers


async def _page(request: Request) -> Response | None:
    """The shell for a navigation, else None after checking the key (the caller renders the data)."""
    if not _is_fragment(request):
        return render(request, "shell.html", {})
    await require_api_key(request)
    return None


def _params(request: Request, keys: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k in keys if (v := request.query_params.get(k, "").strip())}


def _run_filter(params: dict[str, str]) -> filters.RunFilter:
    try:
        return views.run_filter(params)
    except ValueError:
        raise ServiceError(422, "invalid_filter", "from/to must be ISO 8601 times") from None


@router.get("/")
async def runs_page(request: Request, core: CoreDep) -> Response:
    if shell := await _page(request):
        return shell
    params = _params(request, views.FILTER_KEYS)
    f = _run_filter(params)
    cursor = request.query_params.get("cursor") or None
    page = await filters.list_runs_filtered(core.db, f, PAGE, cursor)
    workflows = (await queries.list_workflows(core.db, 500, None))["items"]
    return render(
        request,
        "runs.html",
        {
            "runs": page["items"],
            "next_cursor": page["next_cursor"],
            "cursor": cursor,
            "filters": params,
            "counts": await filters.run_counts(core.db, f),
            "workflows": [w["id"] for w in workflows],
            "statuses": filters.RUN_STATUSES,
        },
    )


@router.get("/counts")
async def counts_fragment(request: Request, core: CoreDep) -> Response:
    await require_api_key(request)
    params = _params(request, views.FILTER_KEYS)
    counts = await filters.run_counts(core.db, _run_filter(params))
    return render(request, "counts.html", {"counts": counts, "filters": params})


@router.get("/runs/{run_id}/row")
async def run_row(request: Request, core: CoreDep, run_id: str) -> Response:
    await require_api_key(request)
    return render(request, "run_row.html", {"run": await filters.get_run_summary(core.db, run_id)})


@router.get("/runs/confirm")
async def confirm_bulk(request: Request, core: CoreDep, action: str) -> Response:
    """How many runs a bulk action would touch, with the button that does it."""
    await require_api_key(request)
    if action not in ("cancel", "retry"):
        raise ServiceError(422, "invalid_action", "action must be cancel or retry")
    params = _params(request, views.FILTER_KEYS)
    statuses = bulk.CANCELLABLE if action == "cancel" else bulk.RETRYABLE
    ids = await filters.run_ids(core.db, _run_filter(params), statuses, bulk.BULK_LIMIT)
    return render(request, "confirm.html", {"action": action, "count": len(ids), "params": params, "kind": "runs"})


@router.get("/runs/{run_id}")
async def run_page(request: Request, core: CoreDep, run_id: str) -> Response:
    if shell := await _page(request):
        return shell
    return render(request, "run.html", await _run_context(core, run_id))


@router.get("/runs/{run_id}/detail")
async def run_detail(request: Request, core: CoreDep, run_id: str) -> Response:
    await require_api_key(request)
    return render(request, "run_detail.html", await _run_context(core, run_id))


async def _run_context(core: Core, run_id: str) -> dict[str, Any]:
    run = await queries.get_run(core.pool, run_id)
    wf = await queries.get_workflow(core.db, run["workflow_id"], run["workflow_version"])
    status = {s["name"]: s["status"] for s in run["steps"]}
    return {"run": run, "dag": views.dag(wf["steps"], status)}


@router.get("/dlq")
async def dlq_page(request: Request, core: CoreDep) -> Response:
    if shell := await _page(request):
        return shell
    params = _params(request, views.DLQ_FILTER_KEYS)
    f = filters.DeadLetterFilter(**params)
    cursor = request.query_params.get("cursor") or None
    page = await filters.list_open_dead_letters(core.db, f, PAGE, cursor)
    return render(
        request,
        "dlq.html",
        {
            "items": page["items"],
            "next_cursor": page["next_cursor"],
            "filters": params,
            "reasons": filters.DEAD_LETTER_REASONS,
        },
    )


@router.get("/dlq/confirm")
async def confirm_dlq(request: Request, core: CoreDep, action: str) -> Response:
    await require_api_key(request)
    if action not in ("redrive", "discard"):
        raise ServiceError(422, "invalid_action", "action must be redrive or discard")
    params = _params(request, views.DLQ_FILTER_KEYS)
    ids = await filters.dead_letter_ids(core.db, filters.DeadLetterFilter(**params), bulk.BULK_LIMIT)
    return render(request, "confirm.html", {"action": action, "count": len(ids), "params": params, "kind": "dlq"})


@router.get("/workers")
async def workers_page(request: Request, core: CoreDep) -> Response:
    if shell := await _page(request):
        return shell
    return render(request, "workers.html", await _workers_context(core))


@router.get("/workers/live")
async def workers_live(request: Request, core: CoreDep) -> Response:
    await require_api_key(request)
    return render(request, "workers_live.html", await _workers_context(core))


async def _workers_context(core: Core) -> dict[str, Any]:
    try:
        workers, error = (await service.workers(core))["items"], None
    except ServiceError as exc:
        workers, error = [], exc.message
    lag = await backlog.backlog(core, workers)
    return {"workers": workers, "backlog": lag["items"], "error": error or lag["error"]}


@router.get("/workflows")
async def workflows_page(request: Request, core: CoreDep) -> Response:
    if shell := await _page(request):
        return shell
    cursor = request.query_params.get("cursor") or None
    page = await queries.list_workflows(core.db, PAGE, cursor)
    return render(request, "workflows.html", {"workflows": page["items"], "next_cursor": page["next_cursor"]})


@router.get("/workflows/{workflow_id}")
async def workflow_page(request: Request, core: CoreDep, workflow_id: str, version: int | None = None) -> Response:
    if shell := await _page(request):
        return shell
    if not NAME_RE.match(workflow_id):  # not a name any workflow can have (PostgreSQL text refuses NUL)
        raise ServiceError(404, "workflow_not_found", f"workflow {workflow_id!r} does not exist")
    wf = await queries.get_workflow(core.db, workflow_id, version)
    shown = {k: v for k, v in wf.items() if not k.startswith("_")}
    return render(
        request,
        "workflow.html",
        {
            "wf": wf,
            "yaml": yaml.safe_dump(shown, sort_keys=False, allow_unicode=True),
            "versions": await filters.workflow_versions(core.db, workflow_id),
            "dag": views.dag(wf["steps"]),
        },
    )
