"""Workflow definitions: versions (immutable once written) and the rate limits they declare."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from ..engine.pg import Conn, fetchone

# A per-id advisory lock makes concurrent definitions of one id get consecutive versions.
LOCK_ID = "SELECT pg_advisory_xact_lock(hashtext(%(id)s))"
NEXT_VERSION = "SELECT COALESCE(max(version), 0) + 1 FROM workflows WHERE id = %(id)s"
INSERT = """INSERT INTO workflows (id, version, definition) VALUES (%(id)s, %(v)s, CAST(%(d)s AS jsonb))
RETURNING created_at"""
LATEST_VERSION = "SELECT max(version) FROM workflows WHERE id = %s"
DEFINITION = "SELECT definition FROM workflows WHERE id = %s AND version = %s"
EXISTS = "SELECT 1 FROM workflows WHERE id = %(id)s LIMIT 1"
DECLARE_RATE_LIMITS = """
INSERT INTO rate_limits (action, rate_per_s, burst, tokens, declared_by)
SELECT x.action, x.rate, x.burst, x.burst, %(wf)s
FROM json_to_recordset(CAST(%(rows)s AS json)) AS x(action text, rate float8, burst int)
ON CONFLICT (action) DO UPDATE SET rate_per_s = EXCLUDED.rate_per_s, burst = EXCLUDED.burst,
    tokens = least(rate_limits.tokens, EXCLUDED.burst), declared_by = EXCLUDED.declared_by"""


async def insert_next_version(conn: Conn, definition: dict[str, Any]) -> tuple[int, datetime]:
    """Store `definition` as its id's next version (set into it); call inside a transaction."""
    await conn.execute(LOCK_ID, {"id": definition["id"]})
    row = await fetchone(conn, NEXT_VERSION, {"id": definition["id"]})
    assert row is not None
    definition["version"] = version = row[0]
    params = {"id": definition["id"], "v": version, "d": orjson.dumps(definition).decode()}
    created = await fetchone(conn, INSERT, params)
    assert created is not None
    return version, created.created_at


async def exists(conn: Conn, workflow_id: str) -> bool:
    return await fetchone(conn, EXISTS, {"id": workflow_id}) is not None


async def declare_rate_limits(conn: Conn, workflow_id: str, rows: list[dict[str, Any]]) -> None:
    """`rows`: {"action", "rate" (per second), "burst"}; an action's bucket is shared, the last one declared wins."""
    await conn.execute(DECLARE_RATE_LIMITS, {"rows": orjson.dumps(rows).decode(), "wf": workflow_id})
