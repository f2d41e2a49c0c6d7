"""The engine's loops: results, timers (retries + deadlines), outbox relay, worker presence.

Each loop survives infrastructure faults: it logs, backs off and tries again, and it never commits a
Kafka offset before the transaction that applied those records is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from psycopg.rows import namedtuple_row
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..bus.codec import Result, Undecodable, decode_result, decode_worker_heartbeat, dlt_headers
from ..metrics import Metrics
from ..settings import Settings
from .apply import Applied, Applier, Outcome
from .dispatch import Publisher, decode_headers
from .pg import Conn, Pg
from .writes import JobSpec, Outbound, Writes, flush, now_utc

log = logging.getLogger("baton.engine")
WORKER_TTL_SECONDS = 15


async def retry_forever(what: str, fn: Callable[[], Awaitable[Any]], max_backoff: float = 5.0) -> Any:
    """Run fn until it succeeds; infrastructure outages delay work, they never drop it."""
    backoff = 0.1
    while True:
        try:
            return await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed, retrying in %.1fs: %s", what, backoff, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)


class ResultsLoop:
    """poll → one transaction for the batch → offsets committed → jobs published in the background.

    Offsets are committed at most every OFFSET_COMMIT_S: a crash replays at most that much, and
    re-applying a result is a recorded no-op. Publishing does not hold up the next batch: the jobs are
    durable in the outbox already, and the relay covers a publish that never completes.
    """

    OFFSET_COMMIT_S = 0.1

    def __init__(
        self,
        settings: Settings,
        pg: Pg,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        publisher: Publisher,
        applier: Applier,
        metrics: Metrics,
    ) -> None:
        self.settings, self.pg, self.consumer, self.producer = settings, pg, consumer, producer
        self.publisher, self.applier, self.metrics = publisher, applier, metrics

    async def run(self) -> None:
        last_commit, dirty = time.monotonic(), False
        try:
            while True:
                polled = await retry_forever(
                    "poll results",
                    lambda: self.consumer.getmany(timeout_ms=100, max_records=self.settings.results_batch_max),
                )
                records = [r for batch in polled.values() for r in batch]
                if records:
                    await retry_forever("apply results", functools.partial(self.handle, records))
                    dirty = True
                if dirty and time.monotonic() - last_commit >= self.OFFSET_COMMIT_S:
                    await retry_forever("commit results offsets", self.consumer.commit)
                    last_commit, dirty = time.monotonic(), False
        finally:
            if dirty:
                with contextlib.suppress(Exception):
                    await self.consumer.commit()

    async def handle(self, records: list[ConsumerRecord]) -> None:
        outcomes: list[Outcome] = []
        beats: list[Result] = []
        for rec in records:
            try:
                res = decode_result(rec.value)
                uuid.UUID(res.run_id)
            except (Undecodable, ValueError) as exc:
                await self._to_dlt(rec, str(exc))
                continue
            if res.status == "HEARTBEAT":
                beats.append(res)
            else:
                outcomes.append(
                    Outcome(
                        res.job_id,
                        res.run_id,
                        res.step,
                        res.status,
                        res.output,
                        res.error,
                        res.worker,
                        res.started_at,
                        res.finished_at,
                    )
                )
        writes = Writes(delete_outbox=self.publisher.take_published())
        try:
            async with self.pg.transaction() as conn:
                if beats:
                    await extend_deadlines(conn, beats)
                applied = await self.applier.apply(conn, outcomes, writes) if outcomes else None
                if applied is None:
                    await flush(conn, writes)
        except BaseException:
            self.publisher.give_back(writes.delete_outbox)
            raise
        if applied:
            self.publisher.publish_soon(applied.outbound)
            record_applied(self.metrics, applied)
            self.metrics.batch_size.observe(len(outcomes))

    async def _to_dlt(self, rec: ConsumerRecord, why: str) -> None:
        # Kept, never dropped: the original bytes with Spring-style headers, awaited before the commit.
        log.warning(
            "undecodable result at %s[%d]@%d sent to %s: %s",
            rec.topic,
            rec.partition,
            rec.offset,
            self.settings.results_dlt_topic,
            why,
        )
        headers = dlt_headers(
            reason="undecodable",
            error_type="Undecodable",
            message=why,
            original_topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            timestamp=rec.timestamp,
            group=self.settings.engine_group_id,
        )
        await self.producer.send_and_wait(
            self.settings.results_dlt_topic, rec.value or b"", key=rec.key, headers=headers
        )
        self.metrics.results_undecodable.inc()


def record_applied(metrics: Metrics, applied: Applied) -> None:
    completed = 0
    for outcome, _ in applied.applied:
        if outcome.status == "COMPLETED":
            completed += 1
            _observe_duration(metrics, outcome)
    # One increment per batch: each is a lock round in prometheus_client.
    metrics.steps_completed.inc(completed)
    metrics.steps_failed.inc(len(applied.applied) - completed)
    metrics.results_ignored.inc(len(applied.ignored))
    metrics.retries.inc(applied.retries)
    metrics.dead_letters.inc(applied.dead_letters)
    metrics.steps_dispatched.inc(sum(1 for m in applied.outbound if ".DLT" not in m.topic))
    for status in (applied.runs_finished or {}).values():
        metrics.runs_finished.labels(status).inc()


def _observe_duration(metrics: Metrics, outcome: Outcome) -> None:
    try:
        if outcome.started_at and outcome.finished_at:
            start = datetime.fromisoformat(outcome.started_at.replace("Z", "+00:00"))
            end = datetime.fromisoformat(outcome.finished_at.replace("Z", "+00:00"))
            metrics.step_latency.observe(max((end - start).total_seconds(), 0.0))
    except ValueError:
        pass


async def extend_deadlines(conn: Conn, beats: list[Result]) -> None:
    """A HEARTBEAT moves the open attempt's deadline to now + timeout and marks it RUNNING."""
    doc = orjson.dumps(
        [
            {"run_id": b.run_id, "name": b.step, "job_id": b.job_id, "worker": b.worker, "started": b.started_at}
            for b in beats
        ]
    ).decode()
    await conn.execute(_HEARTBEATS, {"beats": doc})


# Rows found as in writes.py's batch statement: a LATERAL primary-key lookup per beat, updated by ctid.
_HEARTBEATS = """
WITH s AS (
    UPDATE steps s SET status = 'RUNNING', updated_at = now(), deadline = now() + s.timeout_ms * interval '1 ms'
    FROM (SELECT t.tid
          FROM json_to_recordset(%(beats)s::json) AS x(run_id uuid, name text, job_id text)
          CROSS JOIN LATERAL (
              SELECT ctid AS tid FROM steps WHERE run_id = x.run_id AND name = x.name AND job_id = x.job_id LIMIT 1
          ) t
    ) x
    WHERE s.ctid = x.tid AND s.status IN ('QUEUED', 'RUNNING')
)
UPDATE attempts a SET status = 'RUNNING', worker = x.worker, started_at = COALESCE(a.started_at, x.started, now())
FROM (SELECT x.worker, x.started, t.tid
      FROM json_to_recordset(%(beats)s::json) AS x(job_id text, worker jsonb, started timestamptz)
      CROSS JOIN LATERAL (SELECT ctid AS tid FROM attempts WHERE job_id = x.job_id LIMIT 1) t
) x
WHERE a.ctid = x.tid AND a.status IN ('QUEUED', 'RUNNING')
"""


class TimersLoop:
    """Due retries and missed deadlines. SKIP LOCKED lets several engine replicas sweep side by side."""

    def __init__(self, settings: Settings, pg: Pg, publisher: Publisher, applier: Applier, metrics: Metrics) -> None:
        self.settings, self.pg, self.publisher, self.applier, self.metrics = settings, pg, publisher, applier, metrics

    async def run(self) -> None:
        while True:
            busy = await retry_forever("timer sweep", self.sweep)
            if not busy:
                await asyncio.sleep(self.settings.timer_interval_seconds)

    async def sweep(self) -> bool:
        writes, applied = Writes(), None
        async with self.pg.transaction() as conn:
            due: list[Any] = await (await conn.cursor(row_factory=namedtuple_row).execute(_DUE_RETRIES)).fetchall()
            now = now_utc()
            for r in due:
                writes.queue(
                    self.settings,
                    JobSpec(
                        r.run_id,
                        r.workflow_id,
                        r.workflow_version,
                        r.name,
                        r.action,
                        r.attempt + 1,
                        r.max_attempts,
                        r.input,
                        r.timeout_ms / 1000,
                    ),
                    now,
                )
            expired: list[Any] = await (await conn.cursor(row_factory=namedtuple_row).execute(_EXPIRED)).fetchall()
            timeouts = [
                Outcome(
                    r.job_id,
                    r.run_id,
                    r.name,
                    "FAILED",
                    error={
                        "type": "Timeout",
                        "retryable": True,
                        "stacktrace": None,
                        "message": f"attempt {r.attempt} did not finish within {r.timeout_ms / 1000:g}s",
                    },
                )
                for r in expired
            ]
            if timeouts:
                applied = await self.applier.apply(conn, timeouts, writes)
                out = applied.outbound
            else:
                out, _ = await flush(conn, writes)
        if applied:
            record_applied(self.metrics, applied)
            self.metrics.timeouts.inc(len(timeouts))
        self.metrics.steps_dispatched.inc(len(due))
        self.publisher.publish_soon(out)
        return bool(due or expired)


_DUE_RETRIES = """
SELECT s.run_id::text AS run_id, s.name, s.action, s.attempt, s.max_attempts, s.input, s.timeout_ms,
       r.workflow_id, r.workflow_version
FROM steps s JOIN runs r ON r.id = s.run_id
WHERE s.status = 'FAILED' AND s.next_attempt_at <= now() AND r.status = 'RUNNING'
ORDER BY s.next_attempt_at LIMIT 500 FOR UPDATE OF s SKIP LOCKED
"""
_EXPIRED = """
SELECT job_id, run_id::text AS run_id, name, attempt, timeout_ms FROM steps
WHERE status IN ('QUEUED', 'RUNNING') AND deadline <= now()
ORDER BY deadline LIMIT 500 FOR UPDATE SKIP LOCKED
"""


class RelayLoop:
    """The recovery path: publishes outbox rows that nobody published (a crash between commit and send)."""

    def __init__(self, settings: Settings, db: AsyncEngine, producer: AIOKafkaProducer, metrics: Metrics) -> None:
        self.settings, self.db, self.producer, self.metrics = settings, db, producer, metrics

    async def run(self) -> None:
        while True:
            sent = await retry_forever("outbox relay", self.sweep)
            if not sent:
                await asyncio.sleep(self.settings.relay_interval_seconds)

    async def sweep(self) -> int:
        async with self.db.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        """
                SELECT id, topic, key, value, headers FROM outbox
                WHERE created_at < now() - make_interval(secs => :grace)
                ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED
                """
                    ),
                    {"grace": self.settings.relay_grace_seconds},
                )
            ).all()
            if rows:
                msgs = [Outbound(r.id, r.topic, r.key, bytes(r.value), decode_headers(r.headers)) for r in rows]
                futures = [await self.producer.send(m.topic, m.value, key=m.key, headers=m.headers) for m in msgs]
                await asyncio.gather(*futures)
                await conn.execute(text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": [m.id for m in msgs]})
                log.info("relay republished %d outbox rows", len(rows))
            backlog = (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
        self.metrics.outbox_backlog.set(backlog)
        return len(rows)


class PresenceLoop:
    """Worker presence heartbeats -> Redis keys with a TTL, read by GET /workers."""

    def __init__(self, settings: Settings, consumer: AIOKafkaConsumer, redis: Redis) -> None:
        self.settings, self.consumer, self.redis = settings, consumer, redis

    async def run(self) -> None:
        while True:
            polled = await retry_forever("poll workers", lambda: self.consumer.getmany(timeout_ms=1000))
            records = [r for batch in polled.values() for r in batch]
            if records:
                await retry_forever("store worker presence", functools.partial(self.store, records), max_backoff=2)
                await retry_forever("commit workers offsets", self.consumer.commit)

    async def store(self, records: list[ConsumerRecord]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        now = datetime.now(UTC).timestamp()
        for rec in records:
            try:
                beat = decode_worker_heartbeat(rec.value)
            except Undecodable as exc:
                log.warning("undecodable worker heartbeat ignored: %s", exc)
                continue
            key = f"{self.settings.redis_prefix}worker:{beat['worker_id']}"
            if beat.get("status") == "STOPPED":
                pipe.delete(key)
            else:
                beat["last_seen"] = now
                pipe.set(key, orjson.dumps(beat), ex=WORKER_TTL_SECONDS)
        await pipe.execute()
