"""Operational endpoints, open even when API keys are required: /health and /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..store import queries
from .deps import CoreDep

router = APIRouter(tags=["operations"])
OPEN_STATUSES = ("PENDING", "RUNNING")


async def _check(coro: Any, timeout: float = 2.0) -> dict[str, Any]:
    try:
        await asyncio.wait_for(coro, timeout)
        return {"status": "up"}
    except Exception as exc:
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}


@router.get("/health", summary="PostgreSQL, Kafka and Redis reachability (503 when a required one is down)")
async def health(core: CoreDep) -> JSONResponse:
    db, kafka, redis = await asyncio.gather(
        _check(core.db.ping()), _check(core.topics.cluster_ok()), _check(core.redis.ping())
    )
    core.redis_ok = redis["status"] == "up"
    required_up = db["status"] == "up" and kafka["status"] == "up"
    status = ("ok" if core.redis_ok else "degraded") if required_up else "down"
    body = {"status": status, "role": core.role, "checks": {"postgres": db, "kafka": kafka, "redis": redis}}
    return JSONResponse(body, 200 if required_up else 503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(core: CoreDep) -> Response:
    try:
        counts = await asyncio.wait_for(queries.open_run_counts(core.db), 2.0)
        for status in OPEN_STATUSES:
            core.metrics.runs_by_status.labels(status).set(counts.get(status, 0))
    except Exception:
        pass  # the gauges keep their last values; the counters are still worth serving
    return Response(generate_latest(core.metrics.registry), media_type=CONTENT_TYPE_LATEST)
