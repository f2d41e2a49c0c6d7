"""Filtered reads for the dashboard and the bulk actions: runs and dead letters by workflow, status, time
range, run id or idempotency key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..bus.codec import UUID_RE, iso
from ..core import ServiceError
from ..definitions import NAME_RE
from ..engine.pg import PgPool
from .queries import _id_part, _run_summary, _time_part, _ts, _uuid_part, decode_cursor, encode_cursor

# ----------------------------------------------------------------- dashboard and bulk actions (filters)
RUN_STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")

# {where}: a filter's conditions, built from fixed text with every value a parameter.
RUNS = "SELECT * FROM runs WHERE {where} ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
RUN = "SELECT * FROM runs WHERE id = CAST(%(id)s AS uuid)"
RUN_COUNTS = "SELECT status, count(*) AS n FROM runs WHERE {where} GROUP BY status"
RUN_IDS = """SELECT id::text FROM runs WHERE {where} AND status = ANY(%(statuses)s)
            ORDER BY created_at LIMIT %(limit)s"""
DEAD_LETTERS = """SELECT d.*, r.workflow_id FROM dead_letters d JOIN runs r ON r.id = d.run_id
                WHERE {where} AND d.id < %(before)s ORDER BY d.id DESC LIMIT %(limit)s"""
DEAD_LETTER_IDS = """SELECT d.id FROM dead_letters d JOIN runs r ON r.id = d.run_id
            WHERE {where} ORDER BY d.id LIMIT %(limit)s"""
DEAD_LETTER = "SELECT d.*, r.workflow_id FROM dead_letters d JOIN runs r ON r.id = d.run_id WHERE d.id = %(id)s"
VERSIONS = "SELECT version, created_at FROM workflows WHERE id = %(id)s ORDER BY version DESC"
KNOWN_ACTIONS = """SELECT DISTINCT s->>'action' FROM (SELECT DISTINCT ON (id) definition FROM workflows
            ORDER BY id, version DESC) w, jsonb_array_elements(w.definition->'steps') s ORDER BY 1"""


@dataclass(frozen=True)
class RunFilter:
    """The runs a list, a count or a bulk action covers: the same filters everywhere, so a bulk action
    touches exactly the runs the filtered list shows."""

    workflow_id: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None  # a run id or an idempotency key

    def where(self, with_status: bool = True) -> tuple[str, dict[str, Any]]:
        where, params = ["TRUE"], dict[str, Any]()
        if not _searchable(self.workflow_id, self.q):
            return "FALSE", params  # no run has such a name or key (and PostgreSQL text refuses NUL)
        if self.workflow_id:
            where.append("workflow_id = %(f_wf)s")
            params["f_wf"] = self.workflow_id
        if self.status and with_status:
            where.append("status = %(f_status)s")
            params["f_status"] = self.status
        if self.created_after:
            where.append("created_at >= %(f_after)s")
            params["f_after"] = self.created_after
        if self.created_before:
            where.append("created_at < %(f_before)s")
            params["f_before"] = self.created_before
        if self.q:
            params["f_q"] = self.q
            if UUID_RE.match(self.q.lower()):
                params["f_q_id"] = self.q  # its own parameter: one parameter gets one type
                where.append("(id = CAST(%(f_q_id)s AS uuid) OR idempotency_key = %(f_q)s)")
            else:
                where.append("idempotency_key = %(f_q)s")
        return " AND ".join(where), params


async def list_runs_filtered(db: PgPool, f: RunFilter, limit: int, cursor: str | None) -> dict[str, Any]:
    where, params = f.where()
    params["limit"] = limit + 1
    if cursor:
        created, rid = decode_cursor(cursor, _time_part, _uuid_part)
        where += " AND (created_at, id) < (CAST(%(c_at)s AS timestamptz), CAST(%(c_id)s AS uuid))"
        params.update({"c_at": created, "c_id": rid})
    rows = await db.fetchall(RUNS.format(where=where), params)
    page = rows[:limit]
    nxt = encode_cursor(page[-1].created_at.isoformat(), str(page[-1].id)) if len(rows) > limit else None
    return {"items": [_run_summary(r) for r in page], "next_cursor": nxt}


async def get_run_summary(db: PgPool, run_id: str) -> dict[str, Any]:
    """One run's list row (no steps): what a live list re-renders when a change names the run."""
    if not UUID_RE.match(run_id.lower()):
        raise ServiceError(404, "run_not_found", f"run {run_id!r} does not exist")
    run = await db.fetchone(RUN, {"id": run_id})
    if run is None:
        raise ServiceError(404, "run_not_found", f"run {run_id!r} does not exist")
    return _run_summary(run)


async def run_counts(db: PgPool, f: RunFilter) -> dict[str, int]:
    """Runs per status under the filter (its own status filter ignored, so every status shows)."""
    where, params = f.where(with_status=False)
    rows = await db.fetchall(RUN_COUNTS.format(where=where), params)
    counts = dict.fromkeys(RUN_STATUSES, 0)
    counts.update({r.status: r.n for r in rows})
    return counts


async def run_ids(db: PgPool, f: RunFilter, statuses: tuple[str, ...], limit: int) -> list[str]:
    """Ids of the filtered runs that are in one of `statuses`, oldest first, at most `limit`."""
    where, params = f.where()
    params.update({"statuses": list(statuses), "limit": limit})
    return [r.id for r in await db.fetchall(RUN_IDS.format(where=where), params)]


def _searchable(name: str | None, other: str | None) -> bool:
    """A filter that can match at all: names follow NAME_RE, keys and names never hold NUL."""
    return (not name or bool(NAME_RE.match(name))) and "\x00" not in (other or "")


DEAD_LETTER_REASONS = ("retries_exhausted", "non_retryable", "timeout", "payload_too_large", "invalid_result")


@dataclass(frozen=True)
class DeadLetterFilter:
    """Open dead letters by action, reason, workflow or run: what a bulk redrive or discard covers."""

    action: str | None = None
    reason: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        where, params = ["d.status = 'OPEN'"], dict[str, Any]()
        if not _searchable(self.workflow_id, self.action):
            return "FALSE", params
        for column, value in (
            ("d.action", self.action),
            ("d.reason", self.reason),
            ("r.workflow_id", self.workflow_id),
        ):
            if value:
                key = f"f_{len(params)}"
                where.append(f"{column} = %({key})s")
                params[key] = value
        if self.run_id:
            if not UUID_RE.match(self.run_id.lower()):
                where.append("FALSE")
            else:
                where.append("d.run_id = CAST(%(f_run)s AS uuid)")
                params["f_run"] = self.run_id
        return " AND ".join(where), params


def _dead_letter(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "run_id": str(r.run_id),
        "workflow_id": r.workflow_id,
        "step": r.step,
        "action": r.action,
        "job_id": r.job_id,
        "attempt": r.attempt,
        "reason": r.reason,
        "error": r.error,
        "input": r.input,
        "status": r.status,
        "created_at": iso(r.created_at),
        "resolved_at": _ts(r.resolved_at),
    }


async def list_open_dead_letters(db: PgPool, f: DeadLetterFilter, limit: int, cursor: str | None) -> dict[str, Any]:
    where, params = f.where()
    params.update({"before": decode_cursor(cursor, _id_part)[0] if cursor else 2**62, "limit": limit + 1})
    rows = await db.fetchall(DEAD_LETTERS.format(where=where), params)
    page = rows[:limit]
    return {
        "items": [_dead_letter(r) for r in page],
        "next_cursor": encode_cursor(page[-1].id) if len(rows) > limit else None,
    }


async def dead_letter_ids(db: PgPool, f: DeadLetterFilter, limit: int) -> list[int]:
    where, params = f.where()
    params["limit"] = limit
    return [r.id for r in await db.fetchall(DEAD_LETTER_IDS.format(where=where), params)]


async def get_dead_letter(db: PgPool, dead_letter_id: int) -> dict[str, Any]:
    row = await db.fetchone(DEAD_LETTER, {"id": dead_letter_id})
    if row is None:
        raise ServiceError(404, "dead_letter_not_found", f"dead letter {dead_letter_id} does not exist")
    return _dead_letter(row)


async def workflow_versions(db: PgPool, workflow_id: str) -> list[dict[str, Any]]:
    """Every version of a definition, newest first (the dashboard lists them)."""
    rows = await db.fetchall(VERSIONS, {"id": workflow_id})
    return [{"version": r.version, "created_at": iso(r.created_at)} for r in rows]


async def known_actions(db: PgPool) -> list[str]:
    """Actions of the latest version of every workflow: the job topics a backlog view covers."""
    return [r[0] for r in await db.fetchall(KNOWN_ACTIONS) if r[0]]
