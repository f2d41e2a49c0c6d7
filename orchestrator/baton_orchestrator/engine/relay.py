"""The recovery path: jobs and outbox records that nobody published (a failed send, a crash).

Jobs are queued step rows (epoch.py). This process resends its own jobs that Kafka has not acknowledged
after the relay's grace (failed sends: the hot path is still trying the rest). A process that died left
its lock: its steps above its watermark are adopted (given this epoch and fresh seqs) and resent; the
ones at or below it were acknowledged and are never resent. Outbox rows (dead-letter copies, other
records) are resent as rows. Each record is accounted for on its own: acknowledged ones are done (and a
job's deadline starts now, from its real dispatch), ones Kafka refuses for good end their step
(PayloadTooLarge / Undeliverable), the rest stay for the next sweep.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from psycopg.rows import namedtuple_row

from ..bus.codec import encode_job, job_headers
from ..metrics import Metrics
from ..settings import Settings
from . import epoch
from .apply import Applied, Applier, Outcome
from .dispatch import PERMANENT_SEND_ERRORS, Publisher, decode_headers, send_each
from .loops import record_applied, retry_forever
from .pg import Conn, Pg
from .writes import Outbound, Writes, now_utc

log = logging.getLogger("baton.engine")
Ref = tuple[str | None, str | None, str | None, str | None]  # (kind, job id, run id, step)


class RelayLoop:
    def __init__(
        self,
        settings: Settings,
        pg: Pg,
        producer: AIOKafkaProducer,
        publisher: Publisher,
        applier: Applier,
        metrics: Metrics,
    ) -> None:
        self.settings, self.pg, self.producer, self.publisher = settings, pg, producer, publisher
        self.applier, self.metrics = applier, metrics
        self.dispatch = publisher.dispatch

    async def run(self) -> None:
        while True:
            sent = await retry_forever("outbox relay", self.sweep)
            if not sent:
                await asyncio.sleep(self.settings.relay_interval_seconds)

    async def sweep(self) -> int:
        await self.dispatch.ensure_lock(self.settings)
        applied = None
        async with self.pg.transaction() as conn:
            jobs = await self._own(conn) + await self._adopt(conn)
            rows = await self._outbox_due(conn)
            msgs = [m for m, _ in jobs] + [m for m, _ in rows]
            refs = {id(m): ref for m, ref in jobs + rows}
            acked, failed = await send_each(self.producer, msgs) if msgs else ([], [])
            refused = [(m, exc) for m, exc in failed if isinstance(exc, PERMANENT_SEND_ERRORS)]
            done = acked + [m for m, _ in refused]
            await conn.execute(_DELETE, ([m.id for m in done if m.id is not None],))
            self.dispatch.resolve(m.seq for m in done if m.seq is not None)
            await _restart_deadlines(conn, [refs[id(m)][1:] for m in acked if m.seq is not None])
            applied = await self._refused(conn, refused, refs)
            await conn.execute(epoch.SAVE, {"epoch": self.dispatch.epoch, "acked": self.dispatch.watermark()})
            if acked:
                log.info("relay republished %d jobs and outbox rows", len(acked))
            backlog = (await (await conn.execute("SELECT count(*) FROM outbox")).fetchone() or (0,))[0]
        if applied:
            record_applied(self.metrics, applied, self.applier.flow_wake)
        self.metrics.outbox_backlog.set(backlog + len(self.dispatch.unacked(0)))
        return len(done)

    async def _own(self, conn: Conn) -> list[tuple[Outbound, Ref]]:
        """This epoch's jobs not acknowledged after the grace and not being sent: failed sends."""
        want = self.dispatch.unacked(self.settings.relay_grace_seconds)
        if not want:
            return []
        cur = conn.cursor(row_factory=namedtuple_row)
        rows: list[Any] = await (await cur.execute(_OWN_DUE, {"epoch": self.dispatch.epoch, "seqs": want})).fetchall()
        self.dispatch.forget_missing(want, {r.dispatch_seq for r in rows})
        return [self._job(r, r.dispatch_seq) for r in rows]

    async def _adopt(self, conn: Conn) -> list[tuple[Outbound, Ref]]:
        """The unacknowledged jobs of dead epochs (their lock is free), taken over with fresh seqs."""
        found: list[tuple[Outbound, Ref]] = []
        others = await (await conn.execute(_OTHERS, {"epoch": self.dispatch.epoch})).fetchall()
        for other, acked in others:
            if not (await (await conn.execute(epoch.TRY_LOCK, {"epoch": other})).fetchone() or (False,))[0]:
                continue  # alive
            await conn.execute(epoch.UNLOCK, {"epoch": other})
            cur = conn.cursor(row_factory=namedtuple_row)
            rows: list[Any] = await (await cur.execute(_DEAD_DUE, {"epoch": other, "acked": acked})).fetchall()
            if not rows:
                await conn.execute(_RETIRE, {"epoch": other})
                continue
            seqs = [self.dispatch.assign() for _ in rows]
            doc = [{"run_id": r.run_id, "name": r.name, "seq": q} for r, q in zip(rows, seqs, strict=True)]
            await conn.execute(_ADOPT, {"epoch": self.dispatch.epoch, "rows": orjson.dumps(doc).decode()})
            log.warning("adopted %d unacknowledged jobs of the dead dispatch epoch %s", len(rows), other)
            found += [self._job(r, q) for r, q in zip(rows, seqs, strict=True)]
        return found

    def _job(self, r: Any, seq: int) -> tuple[Outbound, Ref]:
        """The job's bytes, rebuilt from its step and run; its deadline starts now, from the real dispatch."""
        now = now_utc()
        value = encode_job(
            job_id=r.job_id,
            run_id=r.run_id,
            workflow_id=r.workflow_id,
            workflow_version=r.workflow_version,
            step=r.name,
            action=r.action,
            attempt=r.attempt,
            max_attempts=r.max_attempts,
            input=r.input,
            deadline=now + timedelta(milliseconds=r.timeout_ms),
            timeout_ms=r.timeout_ms,
            created_at=r.queued_at or now,
        )
        headers = job_headers(r.job_id)
        trace = r.dispatch_trace or r.traceparent  # its dispatch span's, else (queued untraced) its run's
        if trace:
            headers.append(("traceparent", trace.encode()))
        topic = self.settings.job_topic(r.action)
        return Outbound(None, topic, r.run_id.encode(), value, headers, None, seq), ("job", r.job_id, r.run_id, r.name)

    async def _outbox_due(self, conn: Conn) -> list[tuple[Outbound, Ref]]:
        busy = sorted(self.publisher.in_flight)
        cur = await conn.execute(_RELAY_DUE, {"grace": self.settings.relay_grace_seconds, "busy": busy})
        return [
            (Outbound(r[0], r[1], r[2], bytes(r[3]), decode_headers(r[4])), (r[5], r[6], r[7], r[8]))
            for r in await cur.fetchall()
        ]

    async def _refused(
        self, conn: Conn, refused: list[tuple[Outbound, Exception]], refs: dict[int, Ref]
    ) -> Applied | None:
        outcomes = []
        for m, exc in refused:
            kind, job_id, run_id, step = refs[id(m)]
            log.error("Kafka refused %s %s for %s for good: %s", kind or "outbox record", job_id, m.topic, exc)
            if kind != "job" or run_id is None or job_id is None or step is None:
                continue  # dead-letter copies: the dead_letters rows keep everything they held
            etype = "PayloadTooLarge" if "TooLarge" in type(exc).__name__ else "Undeliverable"
            message = f"Kafka refused the job ({len(m.value):,} bytes) for good: {type(exc).__name__}: {exc}"
            error = {"type": etype, "message": message, "retryable": False, "stacktrace": None}
            outcomes.append(Outcome(job_id, run_id, step, "FAILED", error=error))
        writes = Writes(dispatch=self.dispatch)
        return await self.applier.apply(conn, outcomes, writes) if outcomes else None


_JOB_COLUMNS = """
SELECT s.run_id::text AS run_id, s.name, s.job_id, s.action, s.attempt, s.max_attempts, s.input, s.timeout_ms,
       s.queued_at, s.dispatch_seq, s.dispatch_trace, r.workflow_id, r.workflow_version, r.traceparent
FROM steps s JOIN runs r ON r.id = s.run_id
"""
_OWN_DUE = (
    _JOB_COLUMNS
    + """WHERE s.status = 'QUEUED' AND s.dispatch_epoch = %(epoch)s::uuid AND s.dispatch_seq = ANY(%(seqs)s::bigint[])
ORDER BY s.dispatch_seq LIMIT 1000 FOR UPDATE OF s SKIP LOCKED"""
)
_DEAD_DUE = (
    _JOB_COLUMNS
    + """WHERE s.status = 'QUEUED' AND s.dispatch_epoch = %(epoch)s::uuid AND s.dispatch_seq > %(acked)s
ORDER BY s.dispatch_seq LIMIT 1000 FOR UPDATE OF s SKIP LOCKED"""
)
_OTHERS = "SELECT epoch::text, acked_upto FROM dispatchers WHERE epoch <> %(epoch)s::uuid"
_ADOPT = """
UPDATE steps s SET dispatch_epoch = %(epoch)s::uuid, dispatch_seq = x.seq
FROM json_to_recordset(%(rows)s::json) AS x(run_id uuid, name text, seq bigint)
WHERE s.run_id = x.run_id AND s.name = x.name
"""
# Nothing left above its watermark: the dead epoch is forgotten (its steps below it were acknowledged).
_RETIRE = """
DELETE FROM dispatchers d WHERE d.epoch = %(epoch)s::uuid AND NOT EXISTS (
    SELECT 1 FROM steps s WHERE s.status = 'QUEUED' AND s.dispatch_epoch = d.epoch AND s.dispatch_seq > d.acked_upto)
"""
_RELAY_DUE = """
SELECT id, topic, key, value, headers, kind, job_id, run_id::text, step FROM outbox
WHERE created_at < now() - make_interval(secs => %(grace)s) AND NOT id = ANY(%(busy)s::bigint[])
ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED
"""
_DELETE = "DELETE FROM outbox WHERE id = ANY(%s)"


async def _restart_deadlines(conn: Conn, jobs: list[tuple[Any, ...]]) -> None:
    """A job the relay sent late was dispatched only now: its attempt's time starts now, not at queueing.
    `jobs` holds (job id, run id, step)."""
    rows = [{"run_id": r, "name": n, "job_id": j} for j, r, n in jobs if r is not None]
    if rows:
        await conn.execute(_RESTART_DEADLINES, (orjson.dumps(rows).decode(),))


_RESTART_DEADLINES = """
UPDATE steps s SET deadline = now() + s.timeout_ms * interval '1 ms', updated_at = now()
FROM json_to_recordset(%s::json) AS x(run_id uuid, name text, job_id text)
WHERE s.run_id = x.run_id AND s.name = x.name AND s.job_id = x.job_id AND s.status = 'QUEUED'
"""
