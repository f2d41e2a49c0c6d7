"""What the bench reads while and after a point runs: the bench schema in PostgreSQL (drain, the rows of a
point's runs, the final correctness check), /proc snapshots over a measured window, and a py-spy profile.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from analyze import PointRows, WorkerRecords
from procs import Groups, Snapshot, snapshot
from report import summarize_profile
from stack import ROOT, VENV_BIN


class Db:
    """An autocommit connection with search_path = the bench schema (connected once the orchestrator made it)."""

    def __init__(self, url: str, schema: str) -> None:
        self.url, self.schema = url, schema
        self.conn: psycopg.Connection[Any] | None = None

    def connect(self) -> None:
        self.conn = psycopg.connect(self.url, autocommit=True, options=f"-c search_path={self.schema}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def q(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        assert self.conn is not None
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def pg_commits(self) -> int | None:
        """Database-wide committed transactions (pg_stat_database; other users of the database count too,
        and backends flush these counters up to ~1 s late)."""
        if self.conn is None:
            return None
        try:
            return int(self.q("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0][0])
        except Exception:
            return None

    def row_ops(self) -> dict[str, int] | None:
        """Row operations on the bench schema's tables so far (pg_stat_user_tables: inserted + updated +
        deleted tuples, and of the updates those that were HOT), summed over the schema's tables."""
        if self.conn is None:
            return None
        try:
            ins, upd, dele, hot = self.q(
                "SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_del), 0), "
                "coalesce(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables WHERE schemaname = %s",
                (self.schema,),
            )[0]
        except Exception:
            return None
        return {"ins": int(ins), "upd": int(upd), "del": int(dele), "hot": int(hot)}

    async def drain(self, run_ids: list[str], timeout: float) -> tuple[bool, float]:
        """Wait until none of `run_ids` is PENDING or RUNNING; (drained, when)."""
        deadline = time.time() + timeout
        while True:
            left = self.q(
                "SELECT count(*) FROM runs WHERE id = ANY(%s::uuid[]) AND status IN ('PENDING', 'RUNNING')",
                (run_ids,),
            )[0][0]
            if left == 0:
                return True, time.time()
            if time.time() > deadline:
                return False, time.time()
            await asyncio.sleep(0.2)

    def point_rows(self, run_ids: list[str]) -> PointRows:
        runs = {
            r[0]: r
            for r in self.q(
                "SELECT id::text, status, extract(epoch FROM created_at)::float8,"
                " extract(epoch FROM finished_at)::float8 FROM runs WHERE id = ANY(%s::uuid[])",
                (run_ids,),
            )
        }
        steps = self.q(
            "SELECT run_id::text, name, status, extract(epoch FROM updated_at)::float8 FROM steps"
            " WHERE run_id = ANY(%s::uuid[])",
            (run_ids,),
        )
        attempts = self.q(
            "SELECT job_id, run_id::text, step, attempt, status, extract(epoch FROM queued_at)::float8"
            " FROM attempts WHERE run_id = ANY(%s::uuid[])",
            (run_ids,),
        )
        return PointRows(runs, steps, attempts)

    def correctness(self, ids: list[str], records: WorkerRecords) -> dict[str, Any]:
        """Over every accepted trigger: lost (not COMPLETED), stuck (no step update for 5 s), duplicated."""
        rows = self.q(
            "SELECT r.id::text, r.status, extract(epoch FROM now() - max(s.updated_at))::float8 FROM runs r"
            " JOIN steps s ON s.run_id = r.id WHERE r.id = ANY(%s::uuid[]) GROUP BY r.id, r.status",
            (ids,),
        )
        status = {r[0]: r for r in rows}
        lost = [i for i in ids if status.get(i, (None, None))[1] != "COMPLETED"]
        stuck = [i for i in lost if status.get(i) and status[i][1] in ("PENDING", "RUNNING") and status[i][2] > 5]
        dup_attempts = self.q(
            "SELECT count(*) FROM (SELECT run_id, step FROM attempts WHERE status = 'COMPLETED'"
            " GROUP BY run_id, step HAVING count(*) > 1) x"
        )[0][0]
        records.refresh()
        return {
            "runs_accepted": len(ids),
            "lost": len(lost),
            "stuck": len(stuck),
            "duplicated": records.duplicated_jobs(set(ids)) + int(dup_attempts),
            "duplicated_handler_calls": records.duplicated_jobs(set(ids)),
            "duplicated_completed_attempts": int(dup_attempts),
            "runs_by_status": dict(self.q("SELECT status, count(*) FROM runs GROUP BY status")),
            "outbox_rows_left": self.q("SELECT count(*) FROM outbox")[0][0],
            "worker_record_bad_lines": records.bad_lines,
        }


@dataclass
class Window:
    """/proc snapshots and PostgreSQL commit counters at the start and end of a measured window."""

    a: Snapshot
    b: Snapshot
    commits0: int | None
    commits1: int | None
    rows0: dict[str, int] | None = None
    rows1: dict[str, int] | None = None


async def sample_window(groups: Groups, db: Db, peak_pss: dict[str, int], tw0: float, tw1: float) -> Window:
    """Snapshots at tw0 and tw1; in between, once a second, the largest PSS per group goes into `peak_pss`.

    Snapshots run in a thread: one takes ~60 ms (the broker JVM's smaps alone ~35 ms), and this event loop
    is also the load generator's, so sampling inline delayed every arrival behind it once a second (bursty
    load, and latency measured from the schedule that was really the harness's own stall).
    """
    await asyncio.sleep(max(0.0, tw0 - time.time()))
    commits0 = await asyncio.to_thread(db.pg_commits)
    rows0 = await asyncio.to_thread(db.row_ops)
    a = await asyncio.to_thread(snapshot, groups)
    while time.time() < tw1 - 1.0:
        await asyncio.sleep(1.0)
        s = await asyncio.to_thread(snapshot, groups)
        for k, v in s.rss_kb.items():
            peak_pss[k] = max(peak_pss.get(k, 0), v)
    await asyncio.sleep(max(0.0, tw1 - time.time()))
    b = await asyncio.to_thread(snapshot, groups)
    commits1 = await asyncio.to_thread(db.pg_commits)
    rows1 = await asyncio.to_thread(db.row_ops)
    for k, v in b.rss_kb.items():
        peak_pss[k] = max(peak_pss.get(k, 0), v)
    return Window(a, b, commits0, commits1, rows0, rows1)


async def py_spy(pid: int | None, t0: float, seconds: float, raw: Path, svg: Path) -> dict[str, Any]:
    """py-spy on the orchestrator from t0: collapsed stacks (for the top-N table), then a flame graph SVG."""
    spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if not spy or pid is None:
        return {"error": "py-spy not found (pip install py-spy into .venv)"}
    await asyncio.sleep(max(0.0, t0 - time.time()))
    half = max(2, int(seconds / 2))
    info: dict[str, Any] = {"pid": pid, "seconds_each": half, "rate_hz": 100}
    for fmt, path in (("raw", raw), ("flamegraph", svg)):
        # --nonblocking reads the process without pausing it: blocking sampling at these rates slowed
        # the orchestrator several-fold, which distorts the very profile it takes. Blocking is the fallback.
        for extra in (["--nonblocking"], []):
            argv = [spy, "record", "--pid", str(pid), "--duration", str(half), "--rate", "100",
                    "--format", fmt, "-o", str(path), *extra]  # fmt: skip
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            out, _ = await proc.communicate()
            if proc.returncode == 0 and path.exists():
                info[fmt] = {"file": str(path.relative_to(ROOT)), "argv": " ".join(argv[1:])}
                break
            info.setdefault("errors", []).append(f"{' '.join(argv[1:])}: {out.decode(errors='replace')[-300:]}")
    if raw.exists():
        info["top"] = summarize_profile(raw)
    return info


def row_ops_per_step(rows0: dict[str, int], rows1: dict[str, int], steps: int) -> dict[str, float]:
    """PostgreSQL row operations (inserts + updates + deletes, all of the bench schema's tables) per step
    completed in the window; HOT updates are a share of the updates (they touch no index). The statistics
    collector flushes a backend's counters up to ~1 s late, so a short window is approximate."""
    d = {k: rows1[k] - rows0[k] for k in rows0}
    return {
        "pg_row_ops_per_step": round((d["ins"] + d["upd"] + d["del"]) / steps, 2),
        "pg_rows_ins_upd_del_hot_per_step": [round(d[k] / steps, 2) for k in ("ins", "upd", "del", "hot")],
    }
