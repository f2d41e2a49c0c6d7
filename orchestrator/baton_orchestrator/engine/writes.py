"""The hot path's writes: everything one batch changes, in ONE SQL statement.

A batch of transitions becomes a few JSON documents that PostgreSQL unpacks with json_to_recordset, and
one statement of data-modifying CTEs (store/steps.py FLUSH) applies them: finished steps and their
attempts (appended to the history once they end), newly queued jobs (the step row holds the open
attempt and is its job's outbox entry, epoch.py), dead-letter copies (outbox rows), run completions,
run-level events, notifications of step changes, the deletion of outbox rows already published and the
dispatch epoch's watermark when it moved.
The cost per batch is one round trip and one commit, whatever its size (DESIGN §10).

The batch is a parameter whose size the planner cannot see, so no join is left to its choice: each row
of the batch finds its target with a primary-key lookup in a LATERAL subquery (LIMIT 1 keeps it from
being flattened into a join) and the UPDATE takes that row by `ctid`. Left to itself, a cached plan
either walked a whole index as the outer side (192 buffers to update one run) or, given `key = ANY(keys)`,
compared every batch row with every candidate row (79,000 comparisons for a batch of 122). The rows
are locked by the applying transaction or guarded by their status, so a row updated concurrently (whose
ctid then changes) is skipped exactly when the status guard would have skipped it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from .. import tracing
from ..bus.codec import Headers, encode_job, job_headers
from ..flow import Need
from ..settings import Settings
from ..store import steps as sql
from .epoch import DISPATCHER, Dispatcher
from .pg import Conn

if TYPE_CHECKING:
    from ..model import Step, Workflow

# Notification lines per pg_notify (a payload must stay under 8,000 bytes; step names are ≤ 200 characters).
_LINES_PER_NOTE = 25


@dataclass(slots=True)
class Outbound:
    id: int | None  # the outbox row's id; None for a step's job (its step row is its outbox entry)
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    span: Any = None  # the job's dispatch span (tracing on), ended once Kafka acknowledged the job
    seq: int | None = None  # a job's dispatch seq in its epoch (epoch.py)


@dataclass(slots=True, kw_only=True)
class JobSpec:
    """One attempt of one step, ready to be queued; built by `for_step` only."""

    run_id: str
    workflow_id: str
    workflow_version: int
    step: str
    action: str
    attempt: int
    max_attempts: int
    input: Any
    timeout_s: float
    traceparent: str | None = None  # the run's trigger span (runs.traceparent): the dispatch span's parent
    # Flow control (flow.py): None for a step of a workflow without limits, queued as is; otherwise the
    # gate (gate.py) admits it at flush time or holds it as WAITING.
    flow: Need | None = None

    @classmethod
    def for_step(
        cls,
        run_id: str,
        wf: Workflow,
        step: Step,
        attempt: int,
        input: Any,
        traceparent: str | None,
        flow: Need | None = None,
        max_attempts: int | None = None,
    ) -> JobSpec:
        """Attempt `attempt` of `step` in run `run_id`.

        The attempt budget (docs/design-notes.md): a step's first attempt, and the first attempt of a step a retry or
        redrive reopens, start a fresh budget of `step.max_attempts` attempts, so `max_attempts` is
        attempt + max_retries. A retry after a failure continues its budget: pass the step row's
        `max_attempts`."""
        return cls(
            run_id=run_id,
            workflow_id=wf.id,
            workflow_version=wf.version,
            step=step.name,
            action=step.action,
            attempt=attempt,
            max_attempts=max_attempts if max_attempts is not None else attempt + step.retry.max_retries,
            input=input,
            timeout_s=step.timeout_s,
            traceparent=traceparent,
            flow=flow,
        )


@dataclass
class Writes:
    """What one transaction changes; `flush` writes it in one statement."""

    finished: list[dict[str, Any]] = field(default_factory=list)
    queued: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # run-level events (run_events rows)
    notes: list[str] = field(default_factory=list)  # step changes: notification lines only
    runs_done: list[dict[str, Any]] = field(default_factory=list)
    # Records to write to the outbox by (kind, job id): "dlt" (a job's dead-letter copy). Jobs are not
    # outbox rows: their queued step is their entry (epoch.py).
    outbox: dict[tuple[str, str], tuple[str, bytes | None, bytes, Headers]] = field(default_factory=dict)
    about: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (run id, step) of each record
    delete_outbox: list[int] = field(default_factory=list)
    # Jobs over the payload limit: never queued, their steps are dead-lettered in the same transaction.
    oversize: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # steps a `when:` or a skipped branch skips
    # Dispatch spans by job id (tracing on): only the jobs the statement really queued get them ended.
    spans: dict[str, Any] = field(default_factory=dict)
    gated: list[JobSpec] = field(default_factory=list)  # jobs with a flow need, decided by the gate at flush
    held: list[dict[str, Any]] = field(default_factory=list)  # steps the gate holds as WAITING
    settings: Settings | None = None  # the settings the gated jobs were queued with
    dispatch: Dispatcher = field(default_factory=lambda: DISPATCHER)
    jobs: dict[str, Outbound] = field(default_factory=dict)  # queued jobs by job id, with their seq

    def event(self, run_id: str, step: str | None, kind: str, data: Any = None) -> None:
        if kind.startswith("step_"):
            # A step's history is its row and its attempts: its changes only wake waiters (store/steps.py).
            self.notes.append(f"{run_id} {kind} {step or ''}")
        else:
            self.events.append({"run_id": run_id, "step": step, "type": kind, "data": data})

    def notifications(self) -> list[str]:
        n = _LINES_PER_NOTE
        return ["\n".join(self.notes[i : i + n]) for i in range(0, len(self.notes), n)]

    def queue(self, settings: Settings, job: JobSpec, now: datetime, flow_keys: list[str] | None = None) -> str:
        if job.flow is not None:
            self.gated.append(job)
            self.settings = settings
            return ""
        job_id = uuid.uuid4().hex
        deadline = now + timedelta(seconds=job.timeout_s)
        timeout_ms = max(1, int(job.timeout_s * 1000))
        value = encode_job(
            job_id=job_id,
            run_id=job.run_id,
            workflow_id=job.workflow_id,
            workflow_version=job.workflow_version,
            step=job.step,
            action=job.action,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            input=job.input,
            deadline=deadline,
            timeout_ms=timeout_ms,
            created_at=now,
        )
        if len(value) > settings.max_payload_bytes and self._oversize(settings, job, job_id):
            return job_id
        seq, trace = self.dispatch.assign(), None
        topic, headers = settings.job_topic(job.action), job_headers(job_id)
        if tracing.TRACER is not None:
            self.spans[job_id], trace_headers = tracing.start_dispatch(tracing.TRACER, job, job_id, topic)
            headers += trace_headers
            trace = tracing.header_of(trace_headers)
        self.queued.append(
            {
                "run_id": job.run_id,
                "name": job.step,
                "attempt": job.attempt,
                "max_attempts": job.max_attempts,
                "job_id": job_id,
                "input": job.input,
                "deadline": deadline.isoformat(),
                "timeout_ms": timeout_ms,
                "epoch": self.dispatch.epoch,
                "seq": seq,
                **({"trace": trace.decode()} if trace else {}),
                **({"flow_keys": flow_keys} if flow_keys else {}),
            }
        )
        span = self.spans.get(job_id)
        self.jobs[job_id] = Outbound(None, topic, job.run_id.encode(), value, headers, span, seq)
        self.event(job.run_id, job.step, "step_queued", {"attempt": job.attempt, "job_id": job_id})
        return job_id

    def _oversize(self, settings: Settings, job: JobSpec, job_id: str) -> bool:
        # The envelope's own few hundred bytes are allowed for (topics take the limit + 64 KiB): the rule
        # is the one the API applies to a request body, on the input the templates and fan-in produced.
        size = len(orjson.dumps(job.input))
        if size <= settings.max_payload_bytes:
            return False
        message = (
            f"the input of step {job.step!r} is {size:,} bytes encoded, over the payload limit of "
            f"{settings.max_payload_bytes:,} bytes (BATON_MAX_PAYLOAD_BYTES); the job was not sent"
        )
        error = {"type": "PayloadTooLarge", "message": message, "retryable": False, "stacktrace": None}
        self.oversize.append(
            {
                "run_id": job.run_id,
                "name": job.step,
                "attempt": job.attempt,
                "max_attempts": job.max_attempts,
                "job_id": job_id,
                "action": job.action,
                "input": job.input,
                "error": error,
                "size": size,
            }
        )
        return True

    def skip(self, run_id: str, step: str) -> None:
        self.skipped.append({"run_id": run_id, "name": step})
        self.event(run_id, step, "step_skipped")

    def add_outbox(
        self,
        kind: str,
        run_id: str,
        step: str,
        job_id: str,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers,
    ) -> None:
        self.outbox[kind, job_id] = (topic, key, value, headers)
        self.about[kind, job_id] = (run_id, step)

    def outbound(self, made: list[list[Any]], queued: list[str]) -> list[Outbound]:
        """The records the statement wrote ([id, kind, job id] each) and the jobs it queued, ready to publish.
        The seqs of jobs it did not queue (a status guard skipped them) are released at once."""
        jobs = [self.jobs[j] for j in queued if j in self.jobs]
        kept = {j.seq for j in jobs}
        self.dispatch.resolve(j.seq for j in self.jobs.values() if j.seq not in kept)
        return [Outbound(i, *self.outbox[kind, job]) for i, kind, job in made] + jobs

    def rolled_back(self) -> None:
        """The transaction rolled back: its jobs were never queued and no longer hold the watermark."""
        self.dispatch.resolve(j.seq for j in self.jobs.values())
        self.dispatch.unsave()  # the watermark it carried was not saved either

    def __bool__(self) -> bool:
        return bool(
            self.finished
            or self.queued
            or self.events
            or self.notes
            or self.runs_done
            or self.outbox
            or self.delete_outbox
            or self.oversize
            or self.skipped
            or self.gated
            or self.held
        )


def _dumps(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows).decode()


async def flush(conn: Conn, writes: Writes) -> tuple[list[Outbound], int]:
    """Write everything in one statement; returns the outbox rows to publish and how many runs completed."""
    if not writes:
        return [], 0
    pg = conn
    if writes.gated:
        from .gate import admit  # the gate builds on this module: imported where it is needed

        await admit(pg, writes)
    if writes.held:
        await pg.execute(sql.HOLD, {"rows": _dumps(writes.held)})
    params = {
        "fin": _dumps(writes.finished),
        "queued": _dumps(writes.queued),
        "outbox": _dumps(_outbox_rows(writes)),
        "events": _dumps(writes.events),
        "notes": writes.notifications(),
        "done": _dumps(writes.runs_done),
        "skipped": _dumps(writes.skipped),
        "delete": writes.delete_outbox,
        **_watermark(writes),
    }
    if writes.oversize:
        await pg.execute(sql.DEAD_LETTER_OVERSIZE, {"rows": _dumps(writes.oversize)})
    try:
        cur = await pg.execute(sql.FLUSH, params)
        row = await cur.fetchone()
    except BaseException:
        writes.rolled_back()
        raise
    assert row is not None
    return writes.outbound(row[0], row[2]), int(row[1])


def _watermark(writes: Writes) -> dict[str, Any]:
    # The epoch's acknowledged watermark rides the statement when it moved (one row, once a transaction).
    return {"epoch": writes.dispatch.epoch, "acked": writes.dispatch.take_watermark()}


def now_utc() -> datetime:
    return datetime.now(UTC)


def _outbox_rows(writes: Writes) -> list[dict[str, Any]]:
    # Values are UTF-8 JSON jobs: sent as text inside the JSON document, stored as bytes.
    return [
        {
            "kind": kind,
            "job_id": job_id,
            "run_id": writes.about[kind, job_id][0],
            "step": writes.about[kind, job_id][1],
            "topic": t,
            "key": k.decode() if k is not None else None,
            "value": v.decode(),
            "headers": [[name, val.hex()] for name, val in h],
        }
        for (kind, job_id), (t, k, v, h) in writes.outbox.items()
    ]


@dataclass(slots=True)
class Inserted:
    created_at: datetime | None  # None: nothing inserted (the key exists, or `version` is not the latest)
    outbound: list[Outbound]
    latest_version: int | None  # the workflow's latest version as the statement saw it (None: no workflow)


async def insert_run(conn: Conn, run: dict[str, Any], steps: list[dict[str, Any]], writes: Writes) -> Inserted:
    """Create a run of version run["v"], its steps and its first jobs in one statement.

    `run` may carry flow control's `priority`, `flow_keys` and `admitted` (defaults: none used); gated
    jobs must have been decided (gate.admit) before: their steps are inserted QUEUED or WAITING."""
    queued = {q["name"]: q for q in writes.queued}
    held = {h["name"]: h for h in writes.held}
    rows = [
        {
            **s,
            **(
                {
                    "status": "QUEUED",
                    "attempt": q["attempt"],
                    "job_id": q["job_id"],
                    "input": q["input"],
                    "deadline": q["deadline"],
                    "flow_keys": q.get("flow_keys"),
                    "epoch": q["epoch"],
                    "seq": q["seq"],
                    "trace": q.get("trace"),
                }
                if (q := queued.get(s["name"]))
                else {}
            ),
            **({**h, "status": "WAITING"} if (h := held.get(s["name"])) else {}),
        }
        for s in steps
    ]
    params = {
        "priority": 3,
        "flow_keys": None,
        "admitted": True,
        **run,
        "steps": _dumps(rows),
        "queued": _dumps(writes.queued),
        "outbox": _dumps(_outbox_rows(writes)),
        "events": _dumps(writes.events),
        "notes": writes.notifications(),
        "delete": writes.delete_outbox,
        **_watermark(writes),
    }
    try:
        cur = await conn.execute(sql.INSERT_RUN, params)
        row = await cur.fetchone()
    except BaseException:
        writes.rolled_back()
        raise
    assert row is not None
    created, made, latest, _ = row
    jobs = [q["job_id"] for q in writes.queued] if created is not None else []
    return Inserted(created, writes.outbound(made, jobs), latest)
