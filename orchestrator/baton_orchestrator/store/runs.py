"""Runs as the API changes them (trigger replays, cancel, retry and redrive), and as the engine fails them."""

from __future__ import annotations

from typing import Any

from ..engine.pg import Conn, fetchall, fetchone
from . import history

BY_KEY = """SELECT id::text, workflow_version, request_hash, created_at FROM runs
WHERE workflow_id = %(wf)s AND idempotency_key = %(key)s"""
LOCK = """SELECT id::text, status, workflow_id, workflow_version, traceparent FROM runs
WHERE id = %(id)s FOR UPDATE"""
CANCEL_STEPS = """
UPDATE steps SET status = 'CANCELLED', deadline = NULL, next_attempt_at = NULL, updated_at = now()
WHERE run_id = %(id)s AND status IN ('PENDING', 'QUEUED', 'RUNNING', 'FAILED', 'WAITING')"""
CANCEL = "UPDATE runs SET status = 'CANCELLED', updated_at = now(), finished_at = now() WHERE id = %(id)s"
DEAD_STEPS = "SELECT name FROM steps WHERE run_id = %(id)s AND status = 'DEAD_LETTERED' ORDER BY position"
STEP_STATUS = "SELECT status FROM steps WHERE run_id = %(id)s AND name = %(step)s"
STEPS_TO_REOPEN = """SELECT s.name, s.attempt, s.input, s.flow_keys, r.priority
FROM steps s JOIN runs r ON r.id = s.run_id WHERE s.run_id = %(id)s AND s.name = ANY(%(names)s)"""
REOPEN = """UPDATE runs SET status = 'RUNNING', error = NULL, finished_at = NULL, updated_at = now()
WHERE id = %(id)s"""
# The engine's (engine/apply.py): a run a dead-lettered step blocks, or that one fails; runs a result names.
FAIL_BLOCKED = """UPDATE runs SET status = 'FAILED', updated_at = now(), finished_at = now()
WHERE id = %s AND status = 'RUNNING'"""
FAIL_DEAD_LETTERED = """UPDATE runs SET status = 'FAILED', updated_at = now(), finished_at = now(), error = %s::jsonb
WHERE id = %s AND status = 'RUNNING'"""
EXISTING = "SELECT id::text FROM runs WHERE id = ANY(%s::uuid[])"


async def by_key(conn: Conn, workflow_id: str, key: str | None) -> Any:
    """The run an Idempotency-Key started: (id, workflow_version, request_hash, created_at), or None."""
    return await fetchone(conn, BY_KEY, {"wf": workflow_id, "key": key})


async def lock(conn: Conn, run_id: str) -> Any:
    """(id, status, workflow_id, workflow_version, traceparent), locked until the transaction ends; or None.
    `run_id` must be a canonical UUID."""
    return await fetchone(conn, LOCK, {"id": run_id})


async def cancel(conn: Conn, run_id: str) -> None:
    # Open attempts end with their steps (store/history.py), so their late results are recorded as no-ops.
    await conn.execute(history.CANCEL_OPEN_ATTEMPTS, {"id": run_id})
    await conn.execute(CANCEL_STEPS, {"id": run_id})
    await conn.execute(CANCEL, {"id": run_id})


async def dead_steps(conn: Conn, run_id: str) -> list[str]:
    """The run's dead-lettered steps, in definition order."""
    return [r.name for r in await fetchall(conn, DEAD_STEPS, {"id": run_id})]


async def step_status(conn: Conn, run_id: str, step: str) -> str:
    row = await fetchone(conn, STEP_STATUS, {"id": run_id, "step": step})
    assert row is not None, "a dead letter's step exists"
    return str(row.status)


async def steps_to_reopen(conn: Conn, run_id: str, names: list[str]) -> dict[str, Any]:
    """name -> (name, attempt, input, flow_keys, priority) of the steps a retry or redrive re-opens."""
    rows = await fetchall(conn, STEPS_TO_REOPEN, {"id": run_id, "names": names})
    return {r.name: r for r in rows}


async def reopen(conn: Conn, run_id: str) -> None:
    await conn.execute(REOPEN, {"id": run_id})
