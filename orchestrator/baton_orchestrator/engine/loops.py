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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from psycopg.rows import namedtuple_row
from redis.asyncio import Redis

from .. import flow, tracing
from ..bus.codec import InvalidResult, Result, Undecodable, decode_result, decode_worker_heartbeat, dlt_headers
from ..metrics import Metrics
from ..settings import Settings
from ..store import transitions as steps_sql
from .apply import Applied, Applier, Outcome
from .dispatch import Publisher
from .faults import is_transient
from .pg import Conn, Pg
from .writes import JobSpec, Writes, flush, now_utc

log = logging.getLogger("baton.engine")
WORKER_TTL_SECONDS = 15
# A commit refused because the group moved on without this member: retrying it can never succeed.
_LOST_GROUP = (CommitFailedError, IllegalStateError)


async def retry_forever(
    what: str,
    fn: Callable[[], Awaitable[Any]],
    max_backoff: float = 5.0,
    give_up: type[BaseException] | tuple[type[BaseException], ...] = (),
    transient_only: bool = False,
) -> Any:
    """Run fn until it succeeds; infrastructure outages delay work, they never drop it.

    `give_up` errors, and with `transient_only` the errors the data causes, are raised at once."""
    backoff = 0.1
    while True:
        try:
            return await fn()
        except asyncio.CancelledError:
            raise
        except give_up:
            raise
        except Exception as exc:
            if transient_only and not is_transient(exc):
                raise
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
        last_commit = time.monotonic()
        # Offsets of applied records only: a stop in the middle of a batch never commits past what is durable.
        self._applied: dict[TopicPartition, int] = {}
        try:
            while True:
                polled = await retry_forever(
                    "poll results",
                    lambda: self.consumer.getmany(timeout_ms=100, max_records=self.settings.results_batch_max),
                )
                records = [r for batch in polled.values() for r in batch]
                if records:
                    await self.handle(records)
                    for tp, batch in polled.items():
                        self._applied[tp] = batch[-1].offset + 1
                if self._applied and time.monotonic() - last_commit >= self.OFFSET_COMMIT_S:
                    await self._commit()
                    last_commit = time.monotonic()
        finally:
            if self._applied:
                with contextlib.suppress(Exception):
                    await self.consumer.commit(self._applied)

    async def _commit(self) -> None:
        offsets, self._applied = self._applied, {}
        try:
            await retry_forever("commit results offsets", lambda: self.consumer.commit(offsets), give_up=_LOST_GROUP)
        except _LOST_GROUP as exc:
            # Dropped from the group (e.g. PostgreSQL was down longer than max.poll.interval): the
            # partitions may be someone else's now. The records are applied; a redelivery is a no-op.
            log.warning("results offsets not committed (%s); the consumer rejoins its group", exc)

    async def handle(self, records: list[ConsumerRecord]) -> None:
        """Decode (undecodable records go to the DLT), then apply, isolating any record the data refuses."""
        items: list[tuple[ConsumerRecord, Result]] = []
        refused: list[tuple[ConsumerRecord, InvalidResult]] = []
        for rec in records:
            try:
                items.append((rec, decode_result(rec.value)))
            except InvalidResult as invalid:
                refused.append((rec, invalid))
            except Undecodable as exc:
                await retry_forever("send to results DLT", functools.partial(self._to_dlt, rec, str(exc)))
        if items:
            await retry_forever("apply results", functools.partial(self._apply_isolated, items))
        for rec, bad in refused:
            await self._refuse(rec, bad.job_id, bad.run_id, bad.step, str(bad))

    async def _apply_isolated(self, items: list[tuple[ConsumerRecord, Result]]) -> None:
        try:
            # Tracing on: each result's traceparent header, the parent of its result span.
            parents = [tracing.header_of(rec.headers) for rec, _ in items] if tracing.TRACER is not None else None
            await self._apply([res for _, res in items], parents)
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(items) == 1:
                rec, res = items[0]
                why = f"{type(exc).__name__}: {exc}"
                log.warning("result refused by the database, attempt failed: %s", why, extra={"job_id": res.job_id})
                await self._refuse(rec, res.job_id, res.run_id, res.step, why, heartbeat=res.status == "HEARTBEAT")
                return
            # Bisect: the records that are fine are applied, the offending one is found in log2(n) rounds.
            mid = len(items) // 2
            await self._apply_isolated(items[:mid])
            await self._apply_isolated(items[mid:])

    async def _refuse(
        self, rec: ConsumerRecord, job_id: str, run_id: str, step: str, why: str, heartbeat: bool = False
    ) -> None:
        """The record to the results DLT; a final result also fails its attempt (`invalid_result`)."""
        await retry_forever("send to results DLT", functools.partial(self._to_dlt, rec, why, "invalid_result"))
        if heartbeat or self._is_heartbeat(rec):
            return
        error = {"type": "invalid_result", "message": f"the worker's result was refused: {why}"[:2000]}
        failed = Result(job_id, run_id, step, 1, "FAILED", None, {**error, "retryable": True}, {}, None, None)
        try:
            await retry_forever(
                "fail attempt of a refused result", functools.partial(self._apply, [failed]), transient_only=True
            )
        except Exception as exc:  # permanent: the attempt still ends, by its deadline
            log.error("could not fail the attempt of a refused result: %s", exc, extra={"job_id": job_id})

    @staticmethod
    def _is_heartbeat(rec: ConsumerRecord) -> bool:
        return b'"HEARTBEAT"' in (rec.value or b"")

    async def _apply(self, results: list[Result], parents: list[bytes | None] | None = None) -> None:
        outcomes: list[Outcome] = []
        beats: list[Result] = []
        start_ns = time.time_ns()
        for i, res in enumerate(results):
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
                        parents[i] if parents else None,
                    )
                )
        writes = Writes(delete_outbox=self.publisher.take_published(), dispatch=self.publisher.dispatch)
        try:
            async with self.pg.transaction() as conn:
                if beats:
                    await extend_deadlines(conn, beats)
                applied = await self.applier.apply(conn, outcomes, writes) if outcomes else None
                if applied is None:
                    await flush(conn, writes)
        except BaseException:
            self.publisher.give_back(writes.delete_outbox)
            writes.rolled_back()
            raise
        if applied:
            if tracing.TRACER is not None:  # after the commit: a rolled-back batch records nothing
                tracing.record_results(tracing.TRACER, applied, self.settings.results_topic, start_ns)
            self.publisher.publish_soon(applied.outbound)
            record_applied(self.metrics, applied, self.applier.flow_wake)
            self.metrics.batch_size.observe(len(outcomes))

    async def _to_dlt(self, rec: ConsumerRecord, why: str, reason: str = "undecodable") -> None:
        # Kept, never dropped: the original bytes with Spring-style headers, awaited before the commit.
        log.warning(
            "%s result at %s[%d]@%d sent to %s: %s",
            reason,
            rec.topic,
            rec.partition,
            rec.offset,
            self.settings.results_dlt_topic,
            why,
        )
        headers = dlt_headers(
            reason=reason,
            error_type="Undecodable" if reason == "undecodable" else "InvalidResult",
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


def record_applied(metrics: Metrics, applied: Applied, wake: asyncio.Event | None = None) -> None:
    """After the commit: metrics, and the gate's release loop woken when a flow-control slot was freed."""
    if wake is not None and applied.flow_freed:
        wake.set()
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
    await conn.execute(steps_sql.HEARTBEATS, {"beats": doc})


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
        writes, start_ns = Writes(dispatch=self.publisher.dispatch), time.time_ns()
        try:
            return await self._sweep(writes, start_ns)
        except BaseException:
            writes.rolled_back()
            raise

    async def _sweep(self, writes: Writes, start_ns: int) -> bool:
        applied = None
        async with self.pg.transaction() as conn:
            due: list[Any] = await (
                await conn.cursor(row_factory=namedtuple_row).execute(steps_sql.DUE_RETRIES)
            ).fetchall()
            now = now_utc()
            for r in due:
                wf = await self.applier.definitions.get(conn, r.workflow_id, r.workflow_version)
                # A retry keeps the slots its step holds; a rate-limited action's retry still takes a token.
                need = flow.held_need(wf, r.name, None, r.priority, holds_slots=True) if wf.uses_flow else None
                step = wf.by_name[r.name]  # a retry continues its budget: the row's max_attempts
                job = JobSpec.for_step(r.run_id, wf, step, r.attempt + 1, r.input, r.traceparent, need, r.max_attempts)
                writes.queue(self.settings, job, now)
            expired: list[Any] = await (
                await conn.cursor(row_factory=namedtuple_row).execute(steps_sql.EXPIRED)
            ).fetchall()
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
            if tracing.TRACER is not None:  # a timeout's result span: its parent is the run's trigger span
                tracing.record_results(tracing.TRACER, applied, self.settings.results_topic, start_ns)
            record_applied(self.metrics, applied, self.applier.flow_wake)
            self.metrics.timeouts.inc(len(timeouts))
        self.metrics.steps_dispatched.inc(len(due))
        self.publisher.publish_soon(out)
        return bool(due or expired)


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
