"""EXPLAIN (ANALYZE, BUFFERS) of the engine's hot statements on a schema with 100k+ steps (R2.6 writes).

    .venv/bin/python bench/explain_writes.py [--runs 12000] [--batch 50]

Creates schema explain_<ts> with the orchestrator's migrations, fills it with finished 10-step runs
(history rows included) and a few hundred open ones, then runs one batch the way the engine does, each
hot statement under EXPLAIN in a transaction that is rolled back: the apply lock, the flush (finish
`--batch` steps and queue their successors), insert_run (one run, first job queued) and the relay's scan.
It calls the engine's own functions (a wrapper turns their statements into EXPLAINs), so the same script
measures the code of whichever checkout it is run from. Prints the plan lines with loops, buffers and
times; the schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from baton_orchestrator import db as bdb
from baton_orchestrator.engine import epoch
from baton_orchestrator.engine import relay as erelay
from baton_orchestrator.engine import writes as ew
from baton_orchestrator.model import Workflow
from baton_orchestrator.settings import Settings
from baton_orchestrator.store import transitions as transitions_sql

FILL = """
INSERT INTO workflows (id, version, definition) VALUES ('explain', 1, '{}');
INSERT INTO runs (id, workflow_id, workflow_version, status, created_at, finished_at)
SELECT md5('r' || i)::uuid, 'explain', 1, CASE WHEN i <= %(open)s THEN 'RUNNING' ELSE 'COMPLETED' END,
       now() - interval '1 hour', now() FROM generate_series(1, %(runs)s) i;
INSERT INTO steps (run_id, name, position, action, status, attempt, max_attempts, timeout_ms, job_id, updated_at)
SELECT md5('r' || i)::uuid, 's' || p, p, 'noop',
       CASE WHEN i > %(open)s OR p < 5 THEN 'COMPLETED' WHEN p = 5 THEN 'QUEUED' ELSE 'PENDING' END,
       CASE WHEN i > %(open)s OR p <= 5 THEN 1 ELSE 0 END, 4, 300000,
       CASE WHEN i > %(open)s OR p <= 5 THEN md5('j' || i || ':' || p) END, now()
FROM generate_series(1, %(runs)s) i, generate_series(0, 9) p;
INSERT INTO attempts (job_id, run_id, step, attempt, status, queued_at, started_at, finished_at)
SELECT job_id, run_id, name, 1, 'COMPLETED', now(), now(), now() FROM steps WHERE status = 'COMPLETED';
-- Before migration 0008 an open attempt had its attempts row from queueing on.
INSERT INTO attempts (job_id, run_id, step, attempt, status, queued_at)
SELECT job_id, run_id, name, 1, 'QUEUED', now() FROM steps WHERE status = 'QUEUED' AND NOT EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'steps' AND column_name = 'queued_at');
-- The open runs' queued steps belong to one dispatch epoch; half of them above its watermark.
INSERT INTO dispatchers (epoch, acked_upto) VALUES (%(epoch)s, 250);
UPDATE steps s SET dispatch_epoch = %(epoch)s, dispatch_seq = x.n
FROM (SELECT run_id, name, row_number() OVER (ORDER BY run_id) AS n FROM steps WHERE status = 'QUEUED') x
WHERE s.run_id = x.run_id AND s.name = x.name;
ANALYZE
"""
EPOCH = "11111111-1111-1111-1111-111111111111"


def dispatcher() -> Any:
    d = epoch.Dispatcher()
    d.epoch, d._last = EPOCH, 1000  # the filled epoch; every flush carries a new watermark
    return d


class Explaining:
    """Stands in for a psycopg connection: statements matching `capture` run under EXPLAIN first."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], capture: dict[str, str], plans: dict[str, list[str]]):
        self.conn, self.capture, self.plans = conn, capture, plans
        self.driver_connection = self

    async def get_raw_connection(self) -> Explaining:
        return self

    async def execute(self, sql: str, params: Any = None) -> Any:
        for name, marker in self.capture.items():
            if marker in sql:
                async with self.conn.transaction(force_rollback=True):
                    cur = await self.conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                    self.plans[name] = [r[0] for r in await cur.fetchall()]
        return await self.conn.execute(sql, params)


_RETRY = {"max_retries": 3}
_WF = Workflow.from_definition(
    {
        "id": "explain",
        "steps": [
            {"name": f"s{i}", "action": "noop", "depends_on": [], "retry": _RETRY, "timeout": 300.0} for i in range(10)
        ],
    },
    1,
)


def job(run_id: str, step: str) -> ew.JobSpec:
    return ew.JobSpec.for_step(run_id, _WF, _WF.by_name[step], 1, {"x": 1}, None)


async def batch(conn: psycopg.AsyncConnection[Any], settings: Settings, n: int, plans: dict[str, list[str]]) -> None:
    cur = await conn.execute("SELECT run_id::text, name, job_id FROM steps WHERE status = 'QUEUED' LIMIT %s", (n,))
    open_steps = await cur.fetchall()
    lock = orjson.dumps([{"run_id": r, "name": s, "job_id": j} for r, s, j in sorted(open_steps)]).decode()
    async with conn.transaction(force_rollback=True):
        cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + transitions_sql.LOCK_OPEN, (lock,))
        plans["apply lock"] = [r[0] for r in await cur.fetchall()]
    writes, now = ew.Writes(dispatch=dispatcher()), datetime.now(UTC)
    for r, s, j in open_steps:
        writes.finished.append(
            {
                "run_id": r,
                "name": s,
                "job_id": j,
                "status": "COMPLETED",
                "astatus": "COMPLETED",
                "output": 1,
                "error": None,
                "next_at": None,
                "worker": {"id": "w"},
                "started": None,
                "finished": None,
            }
        )
        writes.event(r, s, "step_completed", {"attempt": 1, "job_id": j})
        writes.queue(settings, job(r, "s6"), now)
    wrapped = Explaining(conn, {"flush": "json_to_recordset(%(fin)s::json)"}, plans)
    async with conn.transaction(force_rollback=True):
        await ew.flush(wrapped, writes)  # type: ignore[arg-type]
    run_id = str(uuid.uuid4())
    first = ew.Writes(dispatch=dispatcher())
    first.queue(settings, job(run_id, "s0"), now)
    first.event(run_id, None, "run_started", {"workflow_version": 1})
    rows = [
        {
            "name": f"s{p}",
            "position": p,
            "action": "noop",
            "status": "PENDING",
            "attempt": 0,
            "max_attempts": 4,
            "timeout_ms": 300000,
        }
        for p in range(10)
    ]
    run = {
        "id": run_id,
        "wf": "explain",
        "v": 1,
        "status": "RUNNING",
        "input": "1",
        "output": None,
        "key": None,
        "hash": None,
        "tp": None,
    }
    wrapped = Explaining(conn, {"insert_run": "max(version) AS v FROM workflows"}, plans)
    async with conn.transaction(force_rollback=True):
        await ew.insert_run(wrapped, run, rows, first)  # type: ignore[arg-type]
    async with conn.transaction(force_rollback=True):
        cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + erelay._RELAY_DUE, {"grace": 5, "busy": []})
        plans["relay outbox scan"] = [r[0] for r in await cur.fetchall()]
        own = {"epoch": EPOCH, "seqs": list(range(251, 301))}
        cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + erelay._OWN_DUE, own)
        plans["relay own unacked (50 seqs)"] = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + erelay._DEAD_DUE, {"epoch": EPOCH, "acked": 250})
        plans["relay dead epoch scan"] = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + transitions_sql.EXPIRED)
        plans["timer expired scan"] = [r[0] for r in await cur.fetchall()]


async def amain(args: argparse.Namespace) -> None:
    schema = f"explain_{int(time.time())}"
    settings = Settings(database_schema=schema)
    await asyncio.to_thread(bdb.migrate, settings)
    url = settings.database_url
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, options=f"-c search_path={schema}") as conn:
        try:
            for stmt in FILL.split(";\n"):
                if stmt.strip():
                    await conn.execute(stmt, {"runs": args.runs, "open": min(args.runs, 500), "epoch": EPOCH})
            n = (await (await conn.execute("SELECT count(*) FROM steps")).fetchone() or (0,))[0]
            print(f"schema {schema}: {n:,} steps")
            plans: dict[str, list[str]] = {}
            for _ in range(2):  # the first round warms the caches and the plans
                await batch(conn, settings, args.batch, plans)
            for name, lines in plans.items():
                print(f"\n== {name} (batch {args.batch})")
                keep = [
                    ln
                    for ln in lines
                    if any(
                        k in ln
                        for k in (
                            "Scan",
                            "Update",
                            "Insert",
                            "Delete",
                            "Buffers",
                            "Execution",
                            "Planning Time",
                            "Lock",
                            "Loop",
                        )
                    )
                ]
                print("\n".join(keep))
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=12000, help="10-step runs to fill the schema with")
    ap.add_argument("--batch", type=int, default=50, help="steps finished (and successors queued) in the batch")
    asyncio.run(amain(ap.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("BATON_LOG_LEVEL", "WARNING")
    main()
