"""Applying attempt outcomes (results and timeouts) to steps and runs, set-based, in the caller's transaction.

Exactly-once transitions: an outcome is applied only when it names the step's current job and that
attempt is still open (QUEUED/RUNNING); the row lock taken here serialises it against timers and other
engine replicas. Anything else is recorded as a no-op.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..bus.codec import dlt_headers, encode_job
from ..settings import Settings
from . import transitions as tr
from .dispatch import JobSpec, Outbound, add_events, add_outbox, queue_jobs

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


@dataclass(slots=True)
class Applied:
    outbound: list[Outbound]
    applied: list[tuple[Outcome, str]]  # (outcome, new step status)
    ignored: list[Outcome]
    retries: int = 0
    dead_letters: int = 0
    runs_finished: dict[str, str] | None = None


class Definitions:
    """Workflow versions are immutable, so each is read once and cached."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], dict[str, Any]] = {}

    async def get(self, conn: AsyncConnection, workflow_id: str, version: int) -> dict[str, Any]:
        key = (workflow_id, version)
        if key not in self._cache:
            row = (
                await conn.execute(
                    text("SELECT definition FROM workflows WHERE id = :id AND version = :v"),
                    {"id": workflow_id, "v": version},
                )
            ).one()
            definition = row[0]
            definition["_by_name"] = {s["name"]: s for s in definition["steps"]}
            self._cache[key] = definition
        return self._cache[key]


_LOCK_OPEN = text(
    """
    SELECT s.run_id::text, s.name, s.job_id, s.attempt, s.max_attempts, s.action, s.input,
           s.deadline, s.timeout_ms, r.workflow_id, r.workflow_version, r.status
    FROM steps s JOIN runs r ON r.id = s.run_id
    JOIN unnest(CAST(:run_ids AS uuid[]), CAST(:names AS text[]), CAST(:job_ids AS text[])) AS x(r, n, j)
      ON s.run_id = x.r AND s.name = x.n AND s.job_id = x.j
    WHERE s.status IN ('QUEUED', 'RUNNING')
    ORDER BY s.run_id, s.name
    FOR UPDATE OF s
    """
)
_FINISH_STEPS = text(
    """
    UPDATE steps s SET status = x.status, output = x.output::jsonb, error = x.error::jsonb,
           next_attempt_at = x.next_at, deadline = NULL, updated_at = now()
    FROM unnest(CAST(:run_ids AS uuid[]), CAST(:names AS text[]), CAST(:statuses AS text[]),
                CAST(:outputs AS text[]), CAST(:errors AS text[]), CAST(:next_ats AS timestamptz[]))
         AS x(run_id, name, status, output, error, next_at)
    WHERE s.run_id = x.run_id AND s.name = x.name
    """
)
_FINISH_ATTEMPTS = text(
    """
    UPDATE attempts a SET status = x.status, output = x.output::jsonb, error = x.error::jsonb,
           worker = x.worker::jsonb, started_at = COALESCE(x.started::timestamptz, a.started_at),
           finished_at = COALESCE(x.finished::timestamptz, now())
    FROM unnest(CAST(:job_ids AS text[]), CAST(:statuses AS text[]), CAST(:outputs AS text[]),
                CAST(:errors AS text[]), CAST(:workers AS text[]), CAST(:starteds AS text[]),
                CAST(:finisheds AS text[])) AS x(job_id, status, output, error, worker, started, finished)
    WHERE a.job_id = x.job_id
    """
)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class Applier:
    def __init__(self, settings: Settings, definitions: Definitions) -> None:
        self.settings = settings
        self.definitions = definitions

    async def apply(self, conn: AsyncConnection, outcomes: list[Outcome]) -> Applied:
        """Apply final outcomes; returns the jobs to publish after commit and what happened."""
        first: dict[str, Outcome] = {}
        ignored: list[Outcome] = []
        for o in outcomes:
            (ignored.append(o) if o.job_id in first else first.__setitem__(o.job_id, o))
        rows = (
            await conn.execute(
                _LOCK_OPEN,
                {
                    "run_ids": [o.run_id for o in first.values()],
                    "names": [o.step for o in first.values()],
                    "job_ids": list(first),
                },
            )
        ).all()
        matched = {r.job_id: r for r in rows}
        ignored += [o for j, o in first.items() if j not in matched]
        result = Applied([], [], ignored, runs_finished={})
        if not matched:
            await self._record_ignored(conn, ignored)
            return result
        plans = []
        for job_id, row in matched.items():
            outcome = first[job_id]
            definition = await self.definitions.get(conn, row.workflow_id, row.workflow_version)
            plans.append((outcome, row, definition["_by_name"][row.name]))
        await self._finish(conn, plans, result)
        await self._record_ignored(conn, ignored)
        touched = sorted({o.run_id for o, _, _ in plans})
        result.outbound += await self.schedule(conn, touched, result)
        return result

    async def _finish(self, conn: AsyncConnection, plans: list[Any], result: Applied) -> None:
        now = datetime.now(UTC)
        statuses, next_ats, dead, events = [], [], [], []
        for outcome, row, step_def in plans:
            status, next_at = "COMPLETED", None
            if outcome.status != "COMPLETED":
                decision = tr.decide_failure(step_def["retry"], row.attempt, row.max_attempts, outcome.error or {})
                if decision.retry:
                    status, next_at = "FAILED", now + timedelta(seconds=decision.delay)
                    result.retries += 1
                else:
                    status = "DEAD_LETTERED"
                    dead.append((outcome, row, decision.reason))
            statuses.append(status)
            next_ats.append(next_at)
            result.applied.append((outcome, status))
            events.append(
                (
                    outcome.run_id,
                    outcome.step,
                    f"step_{status.lower()}",
                    {
                        "attempt": row.attempt,
                        "job_id": outcome.job_id,
                        "error": outcome.error,
                        "retry_at": next_at.isoformat() if next_at else None,
                    },
                )
            )
        base = {
            "run_ids": [o.run_id for o, _, _ in plans],
            "names": [o.step for o, _, _ in plans],
            "statuses": statuses,
            "outputs": [
                _json(o.output if s == "COMPLETED" else None) for (o, _, _), s in zip(plans, statuses, strict=True)
            ],
            "errors": [_json(o.error) for o, _, _ in plans],
        }
        await conn.execute(_FINISH_STEPS, {**base, "next_ats": next_ats})
        await conn.execute(
            _FINISH_ATTEMPTS,
            {
                "job_ids": [o.job_id for o, _, _ in plans],
                "statuses": [o.status for o, _, _ in plans],
                "outputs": base["outputs"],
                "errors": base["errors"],
                "workers": [_json(o.worker) for o, _, _ in plans],
                "starteds": [o.started_at for o, _, _ in plans],
                "finisheds": [o.finished_at for o, _, _ in plans],
            },
        )
        await add_events(conn, events)
        if dead:
            result.outbound += await self.dead_letter(conn, dead)
            result.dead_letters += len(dead)
            assert result.runs_finished is not None
            result.runs_finished.update({o.run_id: "FAILED" for o, _, _ in dead})

    async def dead_letter(self, conn: AsyncConnection, dead: list[tuple[Outcome, Any, str]]) -> list[Outbound]:
        """Give steps up: a dead_letters row, the job on the jobs DLT, and the run FAILED."""
        await conn.execute(
            text(
                """
                INSERT INTO dead_letters (run_id, step, job_id, action, attempt, reason, error, input)
                SELECT r, s, j, a, n, why, e::jsonb, i::jsonb
                FROM unnest(CAST(:runs AS uuid[]), CAST(:steps AS text[]), CAST(:jobs AS text[]),
                            CAST(:actions AS text[]), CAST(:attempts AS int[]), CAST(:reasons AS text[]),
                            CAST(:errors AS text[]), CAST(:inputs AS text[])) AS x(r, s, j, a, n, why, e, i)
                """
            ),
            {
                "runs": [o.run_id for o, _, _ in dead],
                "steps": [o.step for o, _, _ in dead],
                "jobs": [o.job_id for o, _, _ in dead],
                "actions": [r.action for _, r, _ in dead],
                "attempts": [r.attempt for _, r, _ in dead],
                "reasons": [why for _, _, why in dead],
                "errors": [_json(o.error) for o, _, _ in dead],
                "inputs": [_json(r.input) for _, r, _ in dead],
            },
        )
        failed_runs = sorted({o.run_id for o, _, _ in dead})
        await conn.execute(
            text(
                """
                UPDATE runs SET status = 'FAILED', updated_at = now(), finished_at = now(),
                       error = x.e::jsonb
                FROM unnest(CAST(:runs AS uuid[]), CAST(:errors AS text[])) AS x(r, e)
                WHERE runs.id = x.r AND runs.status = 'RUNNING'
                """
            ),
            {
                "runs": [o.run_id for o, _, _ in dead],
                "errors": [_json({"step": o.step, **(o.error or {})}) for o, _, _ in dead],
            },
        )
        await add_events(conn, [(r, None, "run_failed", {}) for r in failed_runs])
        msgs = []
        for outcome, row, why in dead:
            err = outcome.error or {}
            log.warning(
                "step dead-lettered (%s): %s: %s",
                why,
                err.get("type"),
                err.get("message"),
                extra={"run_id": outcome.run_id, "step": outcome.step, "job_id": outcome.job_id},
            )
            value = self._original_job(outcome.job_id, row)
            headers = dlt_headers(
                reason=why,
                error_type=str(err.get("type", "Error")),
                message=str(err.get("message", "")),
                stacktrace=str(err.get("stacktrace") or ""),
                original_topic=self.settings.job_topic(row.action),
                job_id=outcome.job_id,
            )
            msgs.append((self.settings.jobs_dlt_topic, outcome.run_id.encode(), value, headers))
        return await add_outbox(conn, msgs)

    @staticmethod
    def _original_job(job_id: str, row: Any) -> bytes:
        # The DLT carries the job as it was sent, rebuilt from the locked step row (same fields, same job_id).
        deadline = row.deadline or datetime.now(UTC)
        return encode_job(
            job_id=job_id,
            run_id=row.run_id,
            workflow_id=row.workflow_id,
            workflow_version=row.workflow_version,
            step=row.name,
            action=row.action,
            attempt=row.attempt,
            max_attempts=row.max_attempts,
            input=row.input,
            deadline=deadline,
            timeout_ms=row.timeout_ms,
            created_at=deadline - timedelta(milliseconds=row.timeout_ms),
        )

    async def _record_ignored(self, conn: AsyncConnection, ignored: list[Outcome]) -> None:
        if not ignored:
            return
        known = (
            (
                await conn.execute(
                    text("SELECT id::text FROM runs WHERE id = ANY(CAST(:ids AS uuid[]))"),
                    {"ids": sorted({o.run_id for o in ignored})},
                )
            )
            .scalars()
            .all()
        )
        known_set = set(known)
        for o in ignored:
            if o.run_id not in known_set:
                log.warning("result for unknown run ignored", extra={"run_id": o.run_id, "job_id": o.job_id})
        await add_events(
            conn,
            [
                (o.run_id, o.step, "result_ignored", {"job_id": o.job_id, "status": o.status})
                for o in ignored
                if o.run_id in known_set
            ],
        )

    async def schedule(self, conn: AsyncConnection, run_ids: list[str], result: Applied) -> list[Outbound]:
        """Queue every ready step of these runs and complete the runs that are done."""
        if not run_ids:
            return []
        rows = (
            await conn.execute(
                text(
                    """
                    SELECT r.id::text AS run_id, r.workflow_id, r.workflow_version, r.status AS run_status,
                           r.input AS run_input, s.name, s.status, s.output, s.attempt, s.max_attempts
                    FROM runs r JOIN steps s ON s.run_id = r.id
                    WHERE r.id = ANY(CAST(:ids AS uuid[])) ORDER BY r.id, s.position
                    """
                ),
                {"ids": run_ids},
            )
        ).all()
        by_run: dict[str, list[Any]] = {}
        for row in rows:
            by_run.setdefault(row.run_id, []).append(row)
        jobs: list[JobSpec] = []
        completed: list[str] = []
        blocked: list[str] = []
        for run_id, srows in by_run.items():
            head = srows[0]
            if head.run_status != "RUNNING":
                continue
            definition = await self.definitions.get(conn, head.workflow_id, head.workflow_version)
            status = {r.name: r.status for r in srows}
            outputs = {r.name: r.output for r in srows if r.status == "COMPLETED"}
            if tr.run_outcome(status) == "COMPLETED":
                completed.append(run_id)
                continue
            by_name = {r.name: r for r in srows}
            ready = tr.ready_steps(definition["steps"], status)
            if not ready and tr.is_blocked(status):
                blocked.append(run_id)
            for name in ready:
                step = definition["_by_name"][name]
                prev = by_name[name]
                attempt = prev.attempt + 1
                jobs.append(
                    JobSpec(
                        run_id=run_id,
                        workflow_id=head.workflow_id,
                        workflow_version=head.workflow_version,
                        step=name,
                        action=step["action"],
                        attempt=attempt,
                        max_attempts=prev.attempt + step["retry"]["max_retries"] + 1,
                        input=tr.step_input(step, head.run_input, outputs),
                        timeout_s=step["timeout"],
                    )
                )
        if completed:
            await self._complete_runs(conn, completed, by_run, result)
        if blocked:
            await self._fail_blocked(conn, blocked, result)
        return await queue_jobs(conn, self.settings, jobs)

    async def _fail_blocked(self, conn: AsyncConnection, run_ids: list[str], result: Applied) -> None:
        # Nothing open, nothing retrying, nothing ready, yet not complete: a dead-lettered step blocks
        # the rest. Leaving the run RUNNING would make it stuck forever.
        await conn.execute(
            text("""UPDATE runs SET status = 'FAILED', updated_at = now(), finished_at = now()
                    WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'RUNNING'"""),
            {"ids": run_ids},
        )
        await add_events(conn, [(r, None, "run_failed", {"reason": "blocked by dead-lettered steps"}) for r in run_ids])
        assert result.runs_finished is not None
        result.runs_finished.update({r: "FAILED" for r in run_ids})

    async def _complete_runs(
        self, conn: AsyncConnection, completed: list[str], by_run: dict[str, list[Any]], result: Applied
    ) -> None:
        # A run's output is its sink steps' output: one sink -> that output, several -> {name: output}.
        outputs = []
        for run_id in completed:
            srows = by_run[run_id]
            definition = await self.definitions.get(conn, srows[0].workflow_id, srows[0].workflow_version)
            parents = {d for s in definition["steps"] for d in s["depends_on"]}
            sinks = [s["name"] for s in definition["steps"] if s["name"] not in parents]
            out = {r.name: r.output for r in srows}
            outputs.append(_json(out[sinks[0]] if len(sinks) == 1 else {n: out[n] for n in sinks}))
        await conn.execute(
            text(
                """
                UPDATE runs SET status = 'COMPLETED', output = x.o::jsonb, updated_at = now(), finished_at = now()
                FROM unnest(CAST(:ids AS uuid[]), CAST(:outs AS text[])) AS x(id, o)
                WHERE runs.id = x.id AND runs.status = 'RUNNING'
                """
            ),
            {"ids": completed, "outs": outputs},
        )
        await add_events(conn, [(c, None, "run_completed", {}) for c in completed])
        assert result.runs_finished is not None
        result.runs_finished.update({c: "COMPLETED" for c in completed})
