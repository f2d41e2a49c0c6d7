"""What the API does: define, trigger, cancel, retry, redrive, discard. One transaction each.

Each operation commits its state change together with the jobs it creates (outbox), then publishes
those jobs once the commit is durable.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson
import psycopg
from opentelemetry import trace as otel_trace

from . import flow, tracing
from .bus.codec import iso
from .core import Core, ServiceError
from .definitions import DefinitionError, WorkflowSpec, normalise
from .engine import gate
from .engine.dispatch import add_events, queue_jobs
from .engine.pg import Conn
from .engine.transitions import plan, run_outcome, step_input
from .engine.writes import Inserted, JobSpec, Writes, insert_run, now_utc
from .model import Workflow
from .store import dead_letters, runs, workflows


async def define(core: Core, spec: WorkflowSpec) -> dict[str, Any]:
    try:
        definition = normalise(spec, core.settings.default_step_timeout_seconds)
    except DefinitionError as exc:
        raise ServiceError(422, "invalid_definition", str(exc), exc.details) from None
    await core.topics.ensure([core.settings.job_topic(s["action"]) for s in definition["steps"]])
    async with core.db.transaction() as conn:
        version, created_at = await workflows.insert_next_version(conn, definition)
        await _declare_rate_limits(conn, definition)
    core.definitions.saw_latest(definition["id"], version)
    return {**definition, "created_at": iso(created_at)}


async def _declare_rate_limits(conn: Conn, definition: dict[str, Any]) -> None:
    """An action has one bucket, shared by every workflow that declares a rate for it: the definition
    applied last sets its rate and burst (README, "Flow control")."""
    limits = definition.get("rate_limits")
    if not limits:
        return
    rows = [{"action": a, "rate": r["limit"] / flow.PERIODS[r["per"]], "burst": r["burst"]} for a, r in limits.items()]
    await workflows.declare_rate_limits(conn, definition["id"], rows)


def request_hash(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def trigger_body(run_id: str, workflow_id: str, version: int, key: str | None, created_at: Any) -> dict[str, Any]:
    # Built only from immutable fields, so a replay answers with exactly the original body.
    return {
        "run_id": run_id,
        "workflow_id": workflow_id,
        "workflow_version": version,
        "idempotency_key": key,
        "created_at": iso(created_at),
        "links": {"run": f"/workflow/run/{run_id}"},
    }


async def trigger(
    core: Core,
    workflow_id: str,
    run_input: Any,
    key: str | None,
    priority: int | None = None,
    traceparent: str | bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    """Start a run. `priority` (1-5, None: the workflow's, else 3) orders its held steps (flow control);
    `traceparent` is the caller's W3C header (ignored when malformed or tracing is off)."""
    digest = request_hash({"input": run_input})
    if key:
        cached = await _idem_get(core, workflow_id, key)
        if cached:
            return _replay(cached["hash"], digest, cached["body"])
    if tracing.TRACER is None:
        return await _trigger(core, workflow_id, run_input, key, digest, priority, None)
    span = tracing.start_trigger(tracing.TRACER, workflow_id, traceparent)
    with otel_trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        try:
            status, body = await _trigger(core, workflow_id, run_input, key, digest, priority, span)
        except Exception as exc:  # a refused trigger is a span of the caller's trace, with no run
            span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, getattr(exc, "message", str(exc))))
            span.end()
            raise
    if status == 201:  # a replay started nothing: its span is dropped, the run keeps its one trace
        span.set_attribute("baton.run_id", body["run_id"])
        span.end()
    return status, body


async def _trigger(
    core: Core,
    workflow_id: str,
    run_input: Any,
    key: str | None,
    digest: str,
    priority: int | None,
    span: otel_trace.Span | None,
) -> tuple[int, dict[str, Any]]:
    run: dict[str, Any] = {
        "wf": workflow_id,
        "input": orjson.dumps(run_input).decode(),
        "key": key,
        "hash": digest,
        "given_priority": priority,
        "tp": tracing.header(span)[0] if span is not None else None,
    }
    # The latest version is a hint from memory; the insert itself checks it (one round trip per trigger)
    # and answers with the real latest when a newer version was defined meanwhile, e.g. by another replica.
    version = core.definitions.latest.get(workflow_id)
    async with core.pool.connection() as conn:
        for _ in range(_STALE_RETRIES):
            if version is None:
                version = await core.definitions.latest_version(conn, workflow_id)
            if version is None:
                raise ServiceError(404, "workflow_not_found", f"workflow {workflow_id!r} does not exist")
            run.update(id=str(uuid.uuid4()), v=version)
            inserted = await _insert(core, conn, run, run_input)
            if inserted.latest_version == version:
                break
            version = core.definitions.saw_latest(workflow_id, inserted.latest_version)
        else:
            raise ServiceError(503, "workflow_changing", "the workflow is being redefined; retry", None)
        if inserted.created_at is None:
            return await _replay_from_db(core, conn, workflow_id, key, digest)
    # In the background: the run and its jobs are durable in the outbox, so a Kafka outage delays the
    # jobs (the relay resends them) but never the answer.
    core.publisher.publish_soon(inserted.outbound)
    core.metrics.runs_triggered.inc()
    core.metrics.steps_dispatched.inc(len(inserted.outbound))
    body = trigger_body(run["id"], workflow_id, version, key, inserted.created_at)
    if key:
        await _idem_set(core, workflow_id, key, digest, body)
    return 201, body


_STALE_RETRIES = 5


async def _insert(core: Core, conn: Conn, run: dict[str, Any], run_input: Any) -> Inserted:
    """The run row `run` (insert_run's parameters) with its steps and first jobs, in one statement."""
    wf = await core.definitions.get(conn, run["wf"], run["v"])
    if not wf.uses_flow:
        return await _insert_run(core, conn, wf, run, run_input)
    # Flow control: the slot checks (under advisory locks), tokens and the insert commit together; a
    # replay (or a stale version) inserted nothing, so the token it took is given back by the rollback.
    async with conn.transaction() as tx:
        inserted = await _insert_run(core, conn, wf, run, run_input)
        if inserted.created_at is None:
            raise psycopg.Rollback(tx)
    core.applier.flow_wake.set()  # its first steps may be held: the gate looks now, not at its idle tick
    return inserted


async def _insert_run(core: Core, conn: Conn, wf: Workflow, run: dict[str, Any], run_input: Any) -> Inserted:
    run_id, version = run["id"], run["v"]
    writes = Writes(delete_outbox=core.publisher.take_published())
    now = now_utc()
    status = {s.name: "PENDING" for s in wf.steps}
    ready, skipped = plan(wf.steps, status, run_input, {})
    run["priority"] = priority = flow.priority_of(wf, run.get("given_priority"))
    waits_for = await _admit_run(conn, wf, run, run_input) if ready else None
    for name in ready:
        step = wf.by_name[name]
        need = flow.step_need(wf, name, run_input, {}, priority)
        job = JobSpec.for_step(run_id, wf, step, 1, step_input(step, run_input, {}), run["tp"], need)
        if waits_for is not None:  # the run waits for a run-level slot: its first steps are held
            gate.hold(writes, job, "run_concurrency", waits_for.shown, flow_keys=[], priority=priority)
        else:
            writes.queue(core.settings, job, now)
    if writes.gated:
        await gate.admit(conn, writes)
    for name in skipped:
        writes.event(run_id, name, "step_skipped")
    done = run_outcome(status) == "COMPLETED"  # every step skipped: nothing to run
    run.update(
        status="COMPLETED" if done else "RUNNING", output=orjson.dumps(wf.run_output({})).decode() if done else None
    )
    if writes.oversize:
        # Nothing is created: the caller learns at once, instead of finding a dead-lettered run later.
        big = writes.oversize[0]
        core.publisher.give_back(writes.delete_outbox)
        writes.rolled_back()
        raise ServiceError(
            413,
            "payload_too_large",
            big["error"]["message"],
            {"step": big["name"], "size_bytes": big["size"], "limit_bytes": core.settings.max_payload_bytes},
        )
    writes.event(run_id, None, "run_started", {"workflow_version": version})
    if done:
        writes.event(run_id, None, "run_completed")
    rows = [{**r, "status": "SKIPPED"} if r["name"] in skipped else r for r in _step_rows(wf)]
    try:
        return await insert_run(conn, run, rows, writes)
    except BaseException:
        core.publisher.give_back(writes.delete_outbox)
        raise


async def _admit_run(conn: Conn, wf: Workflow, run: dict[str, Any], run_input: Any) -> flow.Slot | None:
    """Flow control's run-level limits: None when the run may start its steps, else the slot it waits for."""
    run.update(flow_keys=None, admitted=True)
    slots = flow.run_slots(wf, run_input)
    if not slots:
        return None
    blocked = await gate.admit_run(conn, slots)
    run.update(flow_keys=[s.key for s in slots], admitted=blocked is None)
    return blocked


def _step_rows(wf: Workflow) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "position": s.position,
            "action": s.action,
            "status": "PENDING",
            "attempt": 0,
            "max_attempts": s.max_attempts,
            "timeout_ms": s.timeout_ms,
        }
        for s in wf.steps
    ]


def _replay(stored_hash: str, digest: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if stored_hash != digest:
        raise ServiceError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
            {"run_id": body["run_id"]},
        )
    return 200, body


async def _replay_from_db(
    core: Core, conn: Conn, workflow_id: str, key: str | None, digest: str
) -> tuple[int, dict[str, Any]]:
    row = await runs.by_key(conn, workflow_id, key)
    assert row is not None, "insert_run inserted nothing, so the key's run exists"
    run_id, version, stored_hash, created_at = row
    body = trigger_body(run_id, workflow_id, version, key, created_at)
    if key:
        await _idem_set(core, workflow_id, key, stored_hash, body)
    return _replay(stored_hash, digest, body)


def _idem_key(core: Core, workflow_id: str, key: str) -> str:
    # Length-prefixed: ("a:b", "c") and ("a", "b:c") must not share a key (both may contain ':').
    return f"{core.settings.redis_prefix}idem:{len(workflow_id)}:{workflow_id}:{key}"


async def _idem_get(core: Core, workflow_id: str, key: str) -> dict[str, Any] | None:
    try:
        raw = await core.redis.get(_idem_key(core, workflow_id, key))
    except Exception as exc:
        core.redis_failed(exc)
        return None
    core.redis_ok = True
    return orjson.loads(raw) if raw else None


async def _idem_set(core: Core, workflow_id: str, key: str, digest: str, body: dict[str, Any]) -> None:
    try:
        await core.redis.set(
            _idem_key(core, workflow_id, key),
            orjson.dumps({"hash": digest, "body": body}),
            nx=True,
            ex=core.settings.idempotency_ttl_seconds,
        )
    except Exception as exc:
        core.redis_failed(exc)


async def _lock_run(conn: Conn, run_id: str) -> Any:
    try:
        run_id = str(uuid.UUID(run_id))  # canonical: PostgreSQL refuses some forms Python accepts
    except ValueError:
        raise ServiceError(404, "run_not_found", f"run {run_id!r} does not exist") from None
    row = await runs.lock(conn, run_id)
    if row is None:
        raise ServiceError(404, "run_not_found", f"run {run_id!r} does not exist")
    return row


async def cancel(core: Core, run_id: str) -> dict[str, Any]:
    async with core.db.transaction() as conn:
        run = await _lock_run(conn, run_id)
        if run.status not in ("PENDING", "RUNNING"):
            raise ServiceError(409, "run_not_cancellable", f"run is {run.status}; only a running run can be cancelled")
        await runs.cancel(conn, run_id)
        await add_events(conn, [(run_id, None, "run_cancelled", {})])
    core.metrics.runs_finished.labels("CANCELLED").inc()
    core.applier.flow_wake.set()  # its slots (if it held any) are free: held steps may go now
    return {"run_id": run_id, "status": "CANCELLED"}


async def retry_run(core: Core, run_id: str) -> dict[str, Any]:
    """Re-open every dead-lettered step of a FAILED run with a fresh attempt budget."""
    async with core.db.transaction() as conn:
        run = await _lock_run(conn, run_id)
        if run.status != "FAILED":
            raise ServiceError(409, "run_not_failed", f"run is {run.status}; only a FAILED run can be retried")
        dead = await runs.dead_steps(conn, run.id)
        outbound = await _reopen(core, conn, run, [(name, None, False) for name in dead])
        await dead_letters.redrive_run(conn, run.id)
    # In the background: the run and its jobs are durable in the outbox, so a Kafka outage delays the
    # jobs (the relay resends them) but never the answer.
    core.publisher.publish_soon(outbound)
    return {"run_id": run_id, "status": "RUNNING", "reopened_steps": list(dead)}


async def redrive(core: Core, dead_letter_id: int, new_input: Any, has_input: bool) -> dict[str, Any]:
    async with core.db.transaction() as conn:
        dl = await dead_letters.lock(conn, dead_letter_id)
        if dl is None:
            raise ServiceError(404, "dead_letter_not_found", f"dead letter {dead_letter_id} does not exist")
        if dl.status != "OPEN":
            raise ServiceError(409, "dead_letter_closed", f"dead letter {dead_letter_id} is already {dl.status}")
        run = await _lock_run(conn, dl.run_id)
        if run.status == "CANCELLED":
            raise ServiceError(409, "run_cancelled", "the run was cancelled; trigger a new run instead")
        outbound = []
        if await runs.step_status(conn, dl.run_id, dl.step) == "DEAD_LETTERED":
            outbound = await _reopen(core, conn, run, [(dl.step, new_input, has_input)])
        await dead_letters.redrive(conn, dead_letter_id)
    # In the background: the run and its jobs are durable in the outbox, so a Kafka outage delays the
    # jobs (the relay resends them) but never the answer.
    core.publisher.publish_soon(outbound)
    return {"id": dead_letter_id, "run_id": dl.run_id, "step": dl.step, "status": "REDRIVEN"}


async def _reopen(core: Core, conn: Conn, run: Any, steps: list[tuple[str, Any, bool]]) -> list[Any]:
    if not steps:
        return []
    definition = await core.definitions.get(conn, run.workflow_id, run.workflow_version)
    rows = await runs.steps_to_reopen(conn, run.id, [s[0] for s in steps])
    jobs = []
    for name, new_input, has_input in steps:
        row = rows[name]
        # A dead-lettered step gave its slots back: it takes them again (and a token) through the gate.
        need = flow.held_need(definition, name, row.flow_keys, row.priority, holds_slots=False)
        step_in = new_input if has_input else row.input
        # A fresh attempt budget (JobSpec.for_step); the run's traceparent keeps the step in the run's trace.
        jobs.append(
            JobSpec.for_step(
                run.id, definition, definition.by_name[name], row.attempt + 1, step_in, run.traceparent, need
            )
        )
    await runs.reopen(conn, run.id)
    await add_events(conn, [(run.id, None, "run_reopened", {"steps": [s[0] for s in steps]})])
    core.metrics.steps_dispatched.inc(len(jobs))
    return await queue_jobs(conn, core.settings, jobs)


async def discard(core: Core, dead_letter_id: int) -> None:
    async with core.db.transaction() as conn:
        if not await dead_letters.discard(conn, dead_letter_id):
            status = await dead_letters.status(conn, dead_letter_id)
            if status is None:
                raise ServiceError(404, "dead_letter_not_found", f"dead letter {dead_letter_id} does not exist")
            raise ServiceError(409, "dead_letter_closed", f"dead letter {dead_letter_id} is already {status}")


async def workers(core: Core) -> dict[str, Any]:
    try:
        keys = [k async for k in core.redis.scan_iter(match=f"{core.settings.redis_prefix}worker:*", count=500)]
        values = await core.redis.mget(keys) if keys else []
    except Exception as exc:
        core.redis_failed(exc)
        raise ServiceError(503, "redis_unavailable", "worker presence is kept in Redis, which is unavailable") from None
    items = sorted((orjson.loads(v) for v in values if v), key=lambda w: w.get("worker_id", ""))
    return {"items": items}
