"""Queueing jobs through the transactional outbox, and publishing them once the transaction is durable.

A transition and the jobs it creates commit together (outbox rows). After the commit the same process
publishes those rows from memory and deletes them; the relay (relay.py) republishes whatever a crash
left behind. So a job is never lost, and a database rollback never leaks a job to Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..bus.codec import Headers, encode_job, job_headers
from ..settings import Settings

log = logging.getLogger("baton.dispatch")


@dataclass(slots=True)
class Outbound:
    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


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


def encode_headers(headers: Headers) -> str:
    return orjson.dumps([[k, v.hex()] for k, v in headers]).decode()


def decode_headers(raw: Any) -> Headers:
    items = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return [(k, bytes.fromhex(v)) for k, v in items]


_INSERT_OUTBOX = text(
    """
    INSERT INTO outbox (topic, key, value, headers)
    SELECT t, k, v, h::jsonb FROM unnest(CAST(:topics AS text[]), CAST(:keys AS bytea[]),
                                          CAST(:vals AS bytea[]), CAST(:headers AS text[])) AS x(t, k, v, h)
    RETURNING id
    """
)


async def add_outbox(conn: AsyncConnection, msgs: Sequence[tuple[str, bytes | None, bytes, Headers]]) -> list[Outbound]:
    if not msgs:
        return []
    rows = await conn.execute(
        _INSERT_OUTBOX,
        {
            "topics": [m[0] for m in msgs],
            "keys": [m[1] for m in msgs],
            "vals": [m[2] for m in msgs],
            "headers": [encode_headers(m[3]) for m in msgs],
        },
    )
    ids = [r[0] for r in rows]
    return [Outbound(i, *m) for i, m in zip(ids, msgs, strict=True)]


_QUEUE_STEPS = text(
    """
    UPDATE steps s SET status = 'QUEUED', attempt = x.attempt, max_attempts = x.max_attempts,
           job_id = x.job_id, input = x.input::jsonb, deadline = x.deadline, next_attempt_at = NULL,
           timeout_ms = x.timeout_ms,
           updated_at = now()
    FROM unnest(CAST(:run_ids AS uuid[]), CAST(:names AS text[]), CAST(:attempts AS int[]),
                CAST(:maxes AS int[]), CAST(:job_ids AS text[]), CAST(:inputs AS text[]),
                CAST(:deadlines AS timestamptz[]), CAST(:timeouts AS int[]))
         AS x(run_id, name, attempt, max_attempts, job_id, input, deadline, timeout_ms)
    WHERE s.run_id = x.run_id AND s.name = x.name
    """
)
_INSERT_ATTEMPTS = text(
    """
    INSERT INTO attempts (job_id, run_id, step, attempt, status, queued_at)
    SELECT j, r, s, a, 'QUEUED', now()
    FROM unnest(CAST(:job_ids AS text[]), CAST(:run_ids AS uuid[]), CAST(:names AS text[]),
                CAST(:attempts AS int[])) AS x(j, r, s, a)
    """
)


async def queue_jobs(conn: AsyncConnection, settings: Settings, jobs: list[JobSpec]) -> list[Outbound]:
    """Mark the steps QUEUED with a fresh job id and put their jobs in the outbox (same transaction)."""
    if not jobs:
        return []
    now = datetime.now(UTC)
    job_ids = [uuid.uuid4().hex for _ in jobs]
    deadlines = [now + timedelta(seconds=j.timeout_s) for j in jobs]
    inputs = [orjson.dumps(j.input).decode() for j in jobs]
    params = {
        "run_ids": [j.run_id for j in jobs],
        "names": [j.step for j in jobs],
        "attempts": [j.attempt for j in jobs],
        "maxes": [j.max_attempts for j in jobs],
        "job_ids": job_ids,
        "inputs": inputs,
        "deadlines": deadlines,
        "timeouts": [max(1, int(j.timeout_s * 1000)) for j in jobs],
    }
    await conn.execute(_QUEUE_STEPS, params)
    await conn.execute(_INSERT_ATTEMPTS, params)
    await add_events(
        conn,
        [
            (j.run_id, j.step, "step_queued", {"attempt": j.attempt, "job_id": jid})
            for j, jid in zip(jobs, job_ids, strict=True)
        ],
    )
    msgs = []
    for job, job_id, deadline in zip(jobs, job_ids, deadlines, strict=True):
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
            timeout_ms=max(1, int(job.timeout_s * 1000)),
            created_at=now,
        )
        msgs.append((settings.job_topic(job.action), job.run_id.encode(), value, job_headers(job_id)))
    return await add_outbox(conn, msgs)


_INSERT_EVENTS = text(
    """
    INSERT INTO run_events (run_id, step, type, data)
    SELECT r, s, t, d::jsonb FROM unnest(CAST(:runs AS uuid[]), CAST(:steps AS text[]),
                                         CAST(:types AS text[]), CAST(:data AS text[])) AS x(r, s, t, d)
    """
)


async def add_events(conn: AsyncConnection, events: list[tuple[str, str | None, str, Any]]) -> None:
    """Append to the run history (one statement for the whole batch)."""
    if not events:
        return
    await conn.execute(
        _INSERT_EVENTS,
        {
            "runs": [e[0] for e in events],
            "steps": [e[1] for e in events],
            "types": [e[2] for e in events],
            "data": [orjson.dumps(e[3]).decode() for e in events],
        },
    )


class Publisher:
    """Publishes committed outbox rows and deletes them once Kafka acknowledged every one."""

    def __init__(self, producer: AIOKafkaProducer, db: AsyncEngine) -> None:
        self.producer = producer
        self.db = db

    async def publish(self, msgs: list[Outbound]) -> bool:
        """Publish and delete; on failure the rows stay for the relay (the job is late, not lost)."""
        if not msgs:
            return True
        try:
            await self._publish(msgs)
            return True
        except Exception as exc:
            log.warning("publish failed; %d outbox rows left for the relay: %s", len(msgs), exc)
            return False

    async def _publish(self, msgs: list[Outbound]) -> None:
        futures = [await self.producer.send(m.topic, m.value, key=m.key, headers=m.headers) for m in msgs]
        await asyncio.gather(*futures)
        async with self.db.begin() as conn:
            await conn.execute(text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": [m.id for m in msgs]})
