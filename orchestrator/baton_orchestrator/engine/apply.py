"""Applying attempt outcomes (results and timeouts) to steps and runs, in the caller's transaction.

Exactly-once transitions: an outcome is applied only when it names the step's current job and that
attempt is still open (QUEUED/RUNNING); the row lock taken here serialises it against timers and other
engine replicas. Anything else is recorded as a no-op.

The common case costs two statements per batch: one that locks the open attempts, and one (writes.py)
that writes every change. A step with one parent needs nothing more: its input is the output in hand.
Only fan-ins, templates and a run's last steps read the run's other steps.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from .. import flow
from ..bus.codec import dlt_headers, encode_job
from ..model import Workflow
from ..settings import Settings
from ..store import dead_letters, runs, workflows
from ..store import transitions as steps_sql
from . import transitions as tr
from .pg import Conn
from .writes import JobSpec, Outbound, Writes, flush, now_utc

log = logging.getLogger("baton.engine")


@dataclass(slots=True)
class Outcome:
    """A final outcome of one attempt: COMPLETED or FAILED, from a worker or from a timeout."""

    job_id: str
    run_id: str
    step: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    worker: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    traceparent: bytes | None = None  # the result record's header (tracing on): the result span's parent


@dataclass(slots=True)
class Applied:
    outbound: list[Outbound] = field(default_factory=list)
    applied: list[tuple[Outcome, str]] = field(default_factory=list)  # (outcome, new step status)
    ignored: list[Outcome] = field(default_factory=list)
    retries: int = 0
    dead_letters: int = 0
    runs_finished: dict[str, str] = field(default_factory=dict)
    rows: dict[str, _Row] = field(default_factory=dict)  # the locked attempts by job id (for result spans)
    flow_freed: bool = False  # a step of a flow-controlled workflow ended: its slot is free once committed


class Definitions:
    """Workflow versions are immutable, so each is read once and cached as its model (model.py)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], Workflow] = {}
        # Latest version per workflow id as last seen: only a hint (statements that rely on it check it).
        self.latest: dict[str, int] = {}

    def saw_latest(self, workflow_id: str, version: int | None) -> int | None:
        if version is None:
            self.latest.pop(workflow_id, None)
        else:
            self.latest[workflow_id] = max(version, self.latest.get(workflow_id, 0))
        return version

    async def latest_version(self, conn: Conn, workflow_id: str) -> int | None:
        cur = await conn.execute(workflows.LATEST_VERSION, (workflow_id,))
        row = await cur.fetchone()
        return self.saw_latest(workflow_id, row[0] if row else None)

    async def get(self, conn: Conn, workflow_id: str, version: int) -> Workflow:
        key = (workflow_id, version)
        if key not in self._cache:
            cur = await conn.execute(workflows.DEFINITION, (workflow_id, version))
            row = await cur.fetchone()
            assert row is not None, f"workflow {workflow_id} v{version} is referenced but missing"
            self._cache[key] = Workflow.from_definition(row[0], version)
        return self._cache[key]


class Applier:
    def __init__(self, settings: Settings, definitions: Definitions) -> None:
        self.settings = settings
        self.definitions = definitions
        # Set after a commit that freed a flow-control slot: the gate's release loop looks at once.
        self.flow_wake = asyncio.Event()

    async def apply(self, conn: Conn, outcomes: list[Outcome], writes: Writes) -> Applied:
        """Apply final outcomes into `writes`, flush them, and return the jobs to publish after commit."""
        result = Applied()
        first: dict[str, Outcome] = {}
        for o in outcomes:
            (result.ignored.append(o) if o.job_id in first else first.__setitem__(o.job_id, o))
        # Always lock in (run, step) order, so concurrent engines and timers cannot deadlock.
        lock_args = sorted(({"run_id": o.run_id, "name": o.step, "job_id": j} for j, o in first.items()), key=_lock_key)
        cur = await conn.execute(steps_sql.LOCK_OPEN, (orjson.dumps(lock_args).decode(),))
        rows = {r[2]: _Row(*r) for r in await cur.fetchall()}
        result.rows = rows
        result.ignored += [o for j, o in first.items() if j not in rows]
        completed: list[tuple[Outcome, _Row, Workflow]] = []
        dead: list[tuple[Outcome, _Row, str]] = []
        for job_id, row in rows.items():
            outcome = first[job_id]
            definition = await self.definitions.get(conn, row.workflow_id, row.workflow_version)
            status = self._finish(writes, outcome, row, definition, result, dead)
            if status == "COMPLETED":
                completed.append((outcome, row, definition))
        if dead:
            await self._dead_letter(conn, writes, dead, result)
        failed_runs = {o.run_id for o, _, _ in dead}
        await self._schedule_completed(conn, writes, [c for c in completed if c[0].run_id not in failed_runs], result)
        await self._record_ignored(conn, writes, result.ignored)
        result.outbound, _ = await flush(conn, writes)
        return result

    def _finish(
        self,
        writes: Writes,
        outcome: Outcome,
        row: _Row,
        definition: Workflow,
        result: Applied,
        dead: list[tuple[Outcome, _Row, str]],
    ) -> str:
        status, next_at = "COMPLETED", None
        if outcome.status != "COMPLETED":
            policy = definition.by_name[row.name].retry
            decision = tr.decide_failure(policy, row.attempt, row.max_attempts, outcome.error or {})
            if decision.retry:
                status, next_at = "FAILED", now_utc() + timedelta(seconds=decision.delay)
                result.retries += 1
            else:
                status = "DEAD_LETTERED"
                dead.append((outcome, row, decision.reason))
        writes.finished.append(
            {
                "run_id": outcome.run_id,
                "name": outcome.step,
                "job_id": outcome.job_id,
                "status": status,
                "astatus": outcome.status,
                "output": outcome.output if status == "COMPLETED" else None,
                "error": outcome.error,
                "next_at": next_at.isoformat() if next_at else None,
                "worker": outcome.worker,
                "started": outcome.started_at,
                "finished": outcome.finished_at,
            }
        )
        data: dict[str, Any] = {"attempt": row.attempt, "job_id": outcome.job_id}
        if outcome.error:
            data["error"] = outcome.error
        if next_at:
            data["retry_at"] = next_at.isoformat()
        writes.event(outcome.run_id, outcome.step, f"step_{status.lower()}", data)
        result.applied.append((outcome, status))
        result.flow_freed |= definition.uses_flow and status != "FAILED"  # a retry keeps its slot
        return status

    async def _schedule_completed(
        self,
        conn: Conn,
        writes: Writes,
        completed: list[tuple[Outcome, _Row, Workflow]],
        result: Applied,
    ) -> None:
        """Queue the children a completion unlocks; finish runs whose last step completed."""
        now, slow_runs = now_utc(), set()
        running = [(o, r, d) for o, r, d in completed if r.run_status == "RUNNING"]
        for outcome, row, definition in running:
            if row.name not in definition.simple:
                slow_runs.add(outcome.run_id)
        for outcome, row, definition in running:
            if outcome.run_id in slow_runs:
                continue
            by_name = definition.by_name
            for child in by_name[row.name].children:
                job = JobSpec.for_step(outcome.run_id, definition, by_name[child], 1, outcome.output, row.traceparent)
                writes.queue(self.settings, job, now)
        if slow_runs:
            in_batch = {(o.run_id, o.step): o.output for o, _, _ in completed}
            await self.schedule(conn, writes, sorted(slow_runs), result, in_batch)

    async def schedule(
        self,
        conn: Conn,
        writes: Writes,
        run_ids: list[str],
        result: Applied,
        in_batch: dict[tuple[str, str], Any] | None = None,
    ) -> None:
        """The general rule, reading each run's steps: queue every ready step, finish done or blocked runs.

        `in_batch` holds completions this transaction has written into `writes` but not flushed yet.
        """
        in_batch = in_batch or {}
        cur = await conn.execute(steps_sql.RUN_STEPS, (run_ids,))
        by_run: dict[str, list[Any]] = {}
        for r in await cur.fetchall():
            by_run.setdefault(r[0], []).append(r)
        now = now_utc()
        for run_id, srows in by_run.items():
            run_status, run_input = srows[0][1], srows[0][2]
            if run_status != "RUNNING":
                continue
            wf = await self.definitions.get(conn, srows[0][7], srows[0][8])
            status = {r[3]: ("COMPLETED" if (run_id, r[3]) in in_batch else r[4]) for r in srows}
            outputs = {r[3]: in_batch.get((run_id, r[3]), r[5]) for r in srows if status[r[3]] == "COMPLETED"}
            attempts = {r[3]: r[6] for r in srows}
            ready, skipped = tr.plan(wf.steps, status, run_input, outputs)
            for name in skipped:
                writes.skip(run_id, name)
            if tr.run_outcome(status) == "COMPLETED":
                self._complete_run(writes, run_id, wf, outputs, result)
                continue
            if not ready and tr.is_blocked(status):
                await self._fail_blocked(conn, writes, run_id, result)
            for name in ready:
                step = wf.by_name[name]
                need = flow.step_need(wf, name, run_input, outputs, srows[0][9]) if wf.uses_flow else None
                step_in = tr.step_input(step, run_input, outputs)
                # srows[0][10]: the run's traceparent
                job = JobSpec.for_step(run_id, wf, step, attempts[name] + 1, step_in, srows[0][10], need)
                writes.queue(self.settings, job, now)

    @staticmethod
    def _complete_run(writes: Writes, run_id: str, wf: Workflow, outputs: dict[str, Any], result: Applied) -> None:
        output = wf.run_output(outputs)
        writes.runs_done.append({"run_id": run_id, "output": output})
        writes.event(run_id, None, "run_completed")
        result.runs_finished[run_id] = "COMPLETED"

    async def _fail_blocked(self, conn: Conn, writes: Writes, run_id: str, result: Applied) -> None:
        # Nothing open, nothing retrying, nothing ready, yet not complete: a dead-lettered step blocks
        # the rest. Leaving the run RUNNING would make it stuck forever.
        await conn.execute(runs.FAIL_BLOCKED, (run_id,))
        writes.event(run_id, None, "run_failed", {"reason": "blocked by dead-lettered steps"})
        result.runs_finished[run_id] = "FAILED"

    async def _dead_letter(
        self, conn: Conn, writes: Writes, dead: list[tuple[Outcome, _Row, str]], result: Applied
    ) -> None:
        """Give steps up: a dead_letters row, the job on the jobs DLT, and the run FAILED (rare path)."""
        for outcome, row, why in dead:
            err = outcome.error or {}
            log.warning(
                "step dead-lettered (%s): %s: %s",
                why,
                err.get("type"),
                err.get("message"),
                extra={"run_id": outcome.run_id, "step": outcome.step, "job_id": outcome.job_id},
            )
            cur = await conn.execute(steps_sql.STEP_INPUT, (outcome.run_id, outcome.step))
            step_input = (await cur.fetchone() or (None,))[0]
            await conn.execute(
                dead_letters.INSERT,
                (
                    outcome.run_id,
                    outcome.step,
                    outcome.job_id,
                    row.action,
                    row.attempt,
                    why,
                    orjson.dumps(err).decode(),
                    orjson.dumps(step_input).decode(),
                ),
            )
            updated = await conn.execute(
                runs.FAIL_DEAD_LETTERED,
                (orjson.dumps({"step": outcome.step, **err}).decode(), outcome.run_id),
            )
            if updated.rowcount:
                writes.event(outcome.run_id, None, "run_failed", {"step": outcome.step})
                result.runs_finished[outcome.run_id] = "FAILED"
            writes.add_outbox(
                "dlt",
                outcome.run_id,
                outcome.step,
                outcome.job_id,
                self.settings.jobs_dlt_topic,
                outcome.run_id.encode(),
                self._original_job(outcome.job_id, row, step_input),
                dlt_headers(
                    reason=why,
                    error_type=str(err.get("type", "Error")),
                    message=str(err.get("message", "")),
                    stacktrace=str(err.get("stacktrace") or ""),
                    original_topic=self.settings.job_topic(row.action),
                    job_id=outcome.job_id,
                ),
            )
        result.dead_letters += len(dead)

    @staticmethod
    def _original_job(job_id: str, row: _Row, step_input: Any) -> bytes:
        # The DLT carries the job as it was sent, rebuilt from the locked step row (same fields, same job_id).
        deadline = row.deadline or now_utc()
        return encode_job(
            job_id=job_id,
            run_id=row.run_id,
            workflow_id=row.workflow_id,
            workflow_version=row.workflow_version,
            step=row.name,
            action=row.action,
            attempt=row.attempt,
            max_attempts=row.max_attempts,
            input=step_input,
            deadline=deadline,
            timeout_ms=row.timeout_ms,
            created_at=deadline - timedelta(milliseconds=row.timeout_ms),
        )

    async def _record_ignored(self, conn: Conn, writes: Writes, ignored: list[Outcome]) -> None:
        if not ignored:
            return
        cur = await conn.execute(runs.EXISTING, (sorted({o.run_id for o in ignored}),))
        known = {r[0] for r in await cur.fetchall()}
        for o in ignored:
            if o.run_id not in known:
                log.warning("result for unknown run ignored", extra={"run_id": o.run_id, "job_id": o.job_id})
            else:
                writes.event(o.run_id, o.step, "result_ignored", {"job_id": o.job_id, "status": o.status})


def _lock_key(arg: dict[str, str]) -> tuple[str, str]:
    return arg["run_id"], arg["name"]


@dataclass(slots=True)
class _Row:
    run_id: str
    name: str
    job_id: str
    attempt: int
    max_attempts: int
    action: str
    deadline: Any
    timeout_ms: int
    workflow_id: str
    workflow_version: int
    run_status: str
    traceparent: str | None
