"""The hot path's writes: everything one batch changes, in ONE SQL statement.

A batch of transitions becomes a few JSON documents that PostgreSQL unpacks with json_to_recordset, and
one statement of data-modifying CTEs applies them: finished attempts, newly queued jobs (steps,
attempts, outbox), run completions, history events, and the deletion of outbox rows already published.
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
from typing import Any

import orjson

from .. import tracing
from ..bus.codec import Headers, encode_job, job_headers
from ..flow import Need
from ..settings import Settings
from .pg import Conn


@dataclass(slots=True)
class Outbound:
    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    span: Any = None  # the job's dispatch span (tracing on), ended once Kafka acknowledged the job


@dataclass(slots=True)
class JobSpec:
    """One attempt of one step, ready to be queued."""

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


@dataclass
class Writes:
    """What one transaction changes; `flush` writes it in one statement."""

    finished: list[dict[str, Any]] = field(default_factory=list)
    queued: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    runs_done: list[dict[str, Any]] = field(default_factory=list)
    outbox: dict[str, tuple[str, bytes | None, bytes, Headers]] = field(default_factory=dict)
    delete_outbox: list[int] = field(default_factory=list)
    # Jobs over the payload limit: never queued, their steps are dead-lettered in the same transaction.
    oversize: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # steps a `when:` or a skipped branch skips
    # Dispatch spans by outbox ref (tracing on): only the jobs the statement really queued get them ended.
    spans: dict[str, Any] = field(default_factory=dict)
    gated: list[JobSpec] = field(default_factory=list)  # jobs with a flow need, decided by the gate at flush
    held: list[dict[str, Any]] = field(default_factory=list)  # steps the gate holds as WAITING
    settings: Settings | None = None  # the settings the gated jobs were queued with

    def event(self, run_id: str, step: str | None, kind: str, data: Any = None) -> None:
        self.events.append({"run_id": run_id, "step": step, "type": kind, "data": data})

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
                **({"flow_keys": flow_keys} if flow_keys else {}),
            }
        )
        topic, headers = settings.job_topic(job.action), job_headers(job_id)
        if tracing.TRACER is not None:
            self.spans[f"job:{job_id}"], trace_headers = tracing.start_dispatch(tracing.TRACER, job, job_id, topic)
            headers += trace_headers
        self.outbox[f"job:{job_id}"] = (topic, job.run_id.encode(), value, headers)
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

    def add_outbox(self, ref: str, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        self.outbox[ref] = (topic, key, value, headers)

    def __bool__(self) -> bool:
        return bool(
            self.finished
            or self.queued
            or self.events
            or self.runs_done
            or self.outbox
            or self.delete_outbox
            or self.oversize
            or self.skipped
            or self.gated
            or self.held
        )


_FLUSH = """
WITH fin AS (
    UPDATE steps s SET status = f.status, output = f.output, error = f.error, next_attempt_at = f.next_at,
           deadline = NULL, updated_at = now()
    FROM (SELECT f.*, t.tid
          FROM json_to_recordset(%(fin)s::json)
               AS f(run_id uuid, name text, status text, output jsonb, error jsonb, next_at timestamptz)
          CROSS JOIN LATERAL (SELECT ctid AS tid FROM steps WHERE run_id = f.run_id AND name = f.name LIMIT 1) t
    ) f
    WHERE s.ctid = f.tid
    RETURNING 1
), fin_attempts AS (
    UPDATE attempts a SET status = f.astatus, output = f.output, error = f.error, worker = f.worker,
           started_at = COALESCE(f.started, a.started_at), finished_at = COALESCE(f.finished, now())
    FROM (SELECT f.*, t.tid
          FROM json_to_recordset(%(fin)s::json) AS f(job_id text, astatus text, output jsonb, error jsonb,
                                                     worker jsonb, started timestamptz, finished timestamptz)
          CROSS JOIN LATERAL (SELECT ctid AS tid FROM attempts WHERE job_id = f.job_id LIMIT 1) t
    ) f
    WHERE a.ctid = f.tid
    RETURNING 1
), q AS (
    -- The status guard makes queueing idempotent: a step already queued or finished is left alone.
    UPDATE steps s SET status = 'QUEUED', attempt = q.attempt, max_attempts = q.max_attempts, job_id = q.job_id,
           input = q.input, deadline = q.deadline, timeout_ms = q.timeout_ms, next_attempt_at = NULL,
           flow_keys = COALESCE(q.flow_keys, s.flow_keys), wait_reason = NULL, wait_key = NULL,
           waiting_since = NULL, updated_at = now()
    FROM (SELECT q.*, t.tid
          FROM json_to_recordset(%(queued)s::json) AS q(run_id uuid, name text, attempt int, max_attempts int,
                                                        job_id text, input jsonb, deadline timestamptz, timeout_ms int,
                                                        flow_keys text[])
          CROSS JOIN LATERAL (SELECT ctid AS tid FROM steps WHERE run_id = q.run_id AND name = q.name LIMIT 1) t
    ) q
    WHERE s.ctid = q.tid AND s.status IN ('PENDING', 'FAILED', 'DEAD_LETTERED', 'WAITING')
    RETURNING s.run_id, s.name, s.job_id, s.attempt
), q_attempts AS (
    INSERT INTO attempts (job_id, run_id, step, attempt, status) SELECT job_id, run_id, name, attempt, 'QUEUED' FROM q
), ob AS (
    INSERT INTO outbox (topic, key, value, headers, ref)
    SELECT o.topic, convert_to(o.key, 'UTF8'), convert_to(o.value, 'UTF8'), o.headers, o.ref
    FROM json_to_recordset(%(outbox)s::json) AS o(ref text, topic text, key text, value text, headers jsonb)
    WHERE o.ref NOT LIKE 'job:%%' OR substr(o.ref, 5) IN (SELECT job_id FROM q)
    RETURNING id, ref
), ev AS (
    INSERT INTO run_events (run_id, step, type, data)
    SELECT e.run_id, e.step, e.type, e.data
    FROM json_to_recordset(%(events)s::json) AS e(run_id uuid, step text, type text, data jsonb)
), done AS (
    UPDATE runs r SET status = 'COMPLETED', output = d.output, updated_at = now(), finished_at = now()
    FROM (SELECT d.*, t.tid
          FROM json_to_recordset(%(done)s::json) AS d(run_id uuid, output jsonb)
          CROSS JOIN LATERAL (SELECT ctid AS tid FROM runs WHERE id = d.run_id LIMIT 1) t
    ) d
    WHERE r.ctid = d.tid AND r.status = 'RUNNING'
    RETURNING r.id
), sk AS (
    UPDATE steps s SET status = 'SKIPPED', updated_at = now()
    FROM (SELECT k.*, t.tid
          FROM json_to_recordset(%(skipped)s::json) AS k(run_id uuid, name text)
          CROSS JOIN LATERAL (SELECT ctid AS tid FROM steps WHERE run_id = k.run_id AND name = k.name LIMIT 1) t
    ) k
    WHERE s.ctid = k.tid AND s.status = 'PENDING'
), del AS (
    DELETE FROM outbox WHERE id = ANY(%(delete)s::bigint[])
)
SELECT (SELECT coalesce(json_agg(json_build_array(id, ref)), '[]'::json) FROM ob),
       (SELECT count(*) FROM done), (SELECT count(*) FROM q)
"""


# A job over the payload limit ends its step at once (the rare path): dead letter, failed attempt, run FAILED.
_DEAD_LETTER_OVERSIZE = """
WITH x AS (
    SELECT * FROM json_to_recordset(%(rows)s::json) AS x(run_id uuid, name text, attempt int, max_attempts int,
                                                          job_id text, action text, input jsonb, error jsonb)
), st AS (
    UPDATE steps s SET status = 'DEAD_LETTERED', attempt = x.attempt, max_attempts = x.max_attempts,
           job_id = x.job_id, input = x.input, error = x.error, deadline = NULL, next_attempt_at = NULL,
           updated_at = now()
    FROM x WHERE s.run_id = x.run_id AND s.name = x.name AND s.status IN ('PENDING', 'FAILED', 'DEAD_LETTERED')
    RETURNING x.*
), a AS (
    INSERT INTO attempts (job_id, run_id, step, attempt, status, error, finished_at)
    SELECT job_id, run_id, name, attempt, 'FAILED', error, now() FROM st
), d AS (
    INSERT INTO dead_letters (run_id, step, job_id, action, attempt, reason, error, input)
    SELECT run_id, name, job_id, action, attempt, 'payload_too_large', error, input FROM st
), r AS (
    UPDATE runs r SET status = 'FAILED', updated_at = now(), finished_at = now(),
           error = st.error || jsonb_build_object('step', st.name)
    FROM st WHERE r.id = st.run_id AND r.status = 'RUNNING'
    RETURNING r.id
)
INSERT INTO run_events (run_id, step, type, data)
SELECT run_id, name, 'step_dead_lettered',
       jsonb_build_object('attempt', attempt, 'job_id', job_id, 'error', error, 'reason', 'payload_too_large')
FROM st
UNION ALL SELECT id, NULL, 'run_failed', '{"reason": "payload_too_large"}'::jsonb FROM r
"""


# Steps the gate holds (flow control only): WAITING with why, keeping their place in line when already waiting.
_HOLD = """
UPDATE steps s SET status = 'WAITING', wait_reason = h.reason, wait_key = h.key, priority = h.priority,
       waiting_since = CASE WHEN s.status = 'WAITING' THEN s.waiting_since ELSE now() END,
       input = h.input, max_attempts = h.max_attempts, flow_keys = COALESCE(h.flow_keys, s.flow_keys),
       deadline = NULL, next_attempt_at = NULL, updated_at = now()
FROM json_to_recordset(%(rows)s::json) AS h(run_id uuid, name text, reason text, key text, priority int,
                                             input jsonb, max_attempts int, flow_keys text[])
WHERE s.run_id = h.run_id AND s.name = h.name AND s.status IN ('PENDING', 'FAILED', 'DEAD_LETTERED', 'WAITING')
"""


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
        await pg.execute(_HOLD, {"rows": _dumps(writes.held)})
    params = {
        "fin": _dumps(writes.finished),
        "queued": _dumps(writes.queued),
        "outbox": _dumps(_outbox_rows(writes)),
        "events": _dumps(writes.events),
        "done": _dumps(writes.runs_done),
        "skipped": _dumps(writes.skipped),
        "delete": writes.delete_outbox,
    }
    if writes.oversize:
        await pg.execute(_DEAD_LETTER_OVERSIZE, {"rows": _dumps(writes.oversize)})
    cur = await pg.execute(_FLUSH, params)
    row = await cur.fetchone()
    assert row is not None
    created, completed = row[0], row[1]
    out = []
    for outbox_id, ref in created:
        out.append(Outbound(outbox_id, *writes.outbox[ref], writes.spans.get(ref)))
    return out, int(completed)


def now_utc() -> datetime:
    return datetime.now(UTC)


_INSERT_RUN = """
WITH cur AS (
    SELECT max(version) AS v FROM workflows WHERE id = %(wf)s
), r AS (
    -- Only when %(v)s is still the latest version (the caller's hint may be stale: it retries).
    -- ON CONFLICT waits for a concurrent insert of the same key to commit: exactly one run per key.
    INSERT INTO runs (id, workflow_id, workflow_version, status, input, output, idempotency_key, request_hash,
                      finished_at, traceparent, priority, flow_keys, flow_admitted)
    SELECT %(id)s, %(wf)s, %(v)s, %(status)s, %(input)s::jsonb, %(output)s::jsonb, %(key)s, %(hash)s,
           CASE WHEN %(status)s = 'COMPLETED' THEN now() END, %(tp)s, %(priority)s, %(flow_keys)s::text[],
           %(admitted)s
    FROM cur WHERE cur.v = %(v)s
    ON CONFLICT (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, created_at
), s AS (
    INSERT INTO steps (run_id, name, position, action, status, attempt, max_attempts, timeout_ms, job_id, input,
                       deadline, flow_keys, wait_reason, wait_key, priority, waiting_since)
    SELECT r.id, x.name, x.position, x.action, x.status, x.attempt, x.max_attempts, x.timeout_ms, x.job_id, x.input,
           x.deadline, x.flow_keys, x.reason, x.key, x.priority, CASE WHEN x.status = 'WAITING' THEN now() END
    FROM r, json_to_recordset(%(steps)s::json) AS x(name text, position int, action text, status text, attempt int,
                                                    max_attempts int, timeout_ms int, job_id text, input jsonb,
                                                    deadline timestamptz, flow_keys text[], reason text, key text,
                                                    priority int)
), a AS (
    INSERT INTO attempts (job_id, run_id, step, attempt, status)
    SELECT x.job_id, r.id, x.name, x.attempt, 'QUEUED' FROM r, json_to_recordset(%(queued)s::json)
         AS x(name text, job_id text, attempt int)
), ob AS (
    INSERT INTO outbox (topic, key, value, headers, ref)
    SELECT o.topic, convert_to(o.key, 'UTF8'), convert_to(o.value, 'UTF8'), o.headers, o.ref
    FROM r, json_to_recordset(%(outbox)s::json) AS o(ref text, topic text, key text, value text, headers jsonb)
    RETURNING id, ref
), ev AS (
    INSERT INTO run_events (run_id, step, type, data)
    SELECT r.id, e.step, e.type, e.data
    FROM r, json_to_recordset(%(events)s::json) AS e(step text, type text, data jsonb)
), del AS (
    DELETE FROM outbox WHERE id = ANY(%(delete)s::bigint[])
)
SELECT (SELECT created_at FROM r), (SELECT coalesce(json_agg(json_build_array(id, ref)), '[]'::json) FROM ob),
       (SELECT v FROM cur)
"""


def _outbox_rows(writes: Writes) -> list[dict[str, Any]]:
    # Values are UTF-8 JSON jobs: sent as text inside the JSON document, stored as bytes.
    return [
        {
            "ref": ref,
            "topic": t,
            "key": k.decode() if k is not None else None,
            "value": v.decode(),
            "headers": [[name, val.hex()] for name, val in h],
        }
        for ref, (t, k, v, h) in writes.outbox.items()
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
        "delete": writes.delete_outbox,
    }
    cur = await conn.execute(_INSERT_RUN, params)
    row = await cur.fetchone()
    assert row is not None
    created, made, latest = row
    return Inserted(created, [Outbound(i, *writes.outbox[ref], writes.spans.get(ref)) for i, ref in made], latest)
