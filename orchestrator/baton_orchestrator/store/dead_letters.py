"""Dead letters: the engine writes them; the API redrives, discards, and resolves a retried run's."""

from __future__ import annotations

from typing import Any

from ..engine.pg import Conn, fetchone

# The engine gives a step up (engine/apply.py): the dead letter keeps what the job carried.
INSERT = """INSERT INTO dead_letters (run_id, step, job_id, action, attempt, reason, error, input)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)"""
LOCK = "SELECT id, run_id::text AS run_id, step, status FROM dead_letters WHERE id = %(id)s FOR UPDATE"
STATUS = "SELECT status FROM dead_letters WHERE id = %(id)s"
REDRIVE = "UPDATE dead_letters SET status = 'REDRIVEN', resolved_at = now() WHERE id = %(id)s"
REDRIVE_RUN = """UPDATE dead_letters SET status = 'REDRIVEN', resolved_at = now()
WHERE run_id = %(id)s AND status = 'OPEN'"""
DISCARD = """UPDATE dead_letters SET status = 'DISCARDED', resolved_at = now()
WHERE id = %(id)s AND status = 'OPEN' RETURNING id"""


async def lock(conn: Conn, dead_letter_id: int) -> Any:
    """The row (id, run_id, step, status), locked until the transaction ends; None when there is none."""
    return await fetchone(conn, LOCK, {"id": dead_letter_id})


async def status(conn: Conn, dead_letter_id: int) -> str | None:
    row = await fetchone(conn, STATUS, {"id": dead_letter_id})
    return row.status if row else None


async def redrive(conn: Conn, dead_letter_id: int) -> None:
    await conn.execute(REDRIVE, {"id": dead_letter_id})


async def redrive_run(conn: Conn, run_id: str) -> None:
    """Every open dead letter of a run (retried as a whole) is resolved."""
    await conn.execute(REDRIVE_RUN, {"id": run_id})


async def discard(conn: Conn, dead_letter_id: int) -> bool:
    """True when an open dead letter was discarded."""
    return await fetchone(conn, DISCARD, {"id": dead_letter_id}) is not None
