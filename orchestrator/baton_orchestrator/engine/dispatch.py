"""Queueing jobs through the transactional outbox, and publishing them once the transaction is durable.

A transition and the jobs it creates commit together: a queued step row is its job's outbox entry
(epoch.py), other records are outbox rows. After the commit the same process publishes them from memory;
an acknowledged job moves its epoch's watermark, an acknowledged outbox row is deleted by the next
transaction. The relay (loops.py) republishes whatever a failed send or a crash left behind. So a job is
never lost, and a database rollback never leaks a job to Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from .. import tracing
from ..bus.codec import Headers
from ..settings import Settings
from ..store import history, outbox
from .epoch import DISPATCHER, Dispatcher
from .pg import Conn, PgPool
from .writes import JobSpec, Outbound, Writes, flush, now_utc

log = logging.getLogger("baton.dispatch")


def encode_headers(headers: Headers) -> str:
    return orjson.dumps([[k, v.hex()] for k, v in headers]).decode()


def decode_headers(raw: Any) -> Headers:
    items = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return [(k, bytes.fromhex(v)) for k, v in items]


async def add_outbox(conn: Conn, msgs: Sequence[tuple[str, bytes | None, bytes, Headers]]) -> list[Outbound]:
    """Records that are no step's job (kind NULL in the outbox), published like the rest."""
    if not msgs:
        return []
    cur = await conn.execute(
        outbox.INSERT_OTHER,
        {
            "topics": [m[0] for m in msgs],
            "keys": [m[1] for m in msgs],
            "vals": [m[2] for m in msgs],
            "headers": [encode_headers(m[3]) for m in msgs],
        },
    )
    ids = [r[0] for r in await cur.fetchall()]
    return [Outbound(i, *m) for i, m in zip(ids, msgs, strict=True)]


async def queue_jobs(conn: Conn, settings: Settings, jobs: list[JobSpec]) -> list[Outbound]:
    """Mark the steps QUEUED with a fresh job id and put their jobs in the outbox (same transaction)."""
    if not jobs:
        return []
    writes, now = Writes(), now_utc()
    for job in jobs:
        writes.queue(settings, job, now)
    out, _ = await flush(conn, writes)
    return out


async def add_events(conn: Conn, events: list[tuple[str, str | None, str, Any]]) -> None:
    """Append run-level events to the run history (one statement for the whole batch)."""
    if not events:
        return
    await conn.execute(
        history.INSERT_RUN_EVENTS,
        {
            "runs": [e[0] for e in events],
            "steps": [e[1] for e in events],
            "types": [e[2] for e in events],
            "data": [orjson.dumps(e[3]).decode() for e in events],
        },
    )


# What Kafka refuses for good: sending the record again can never succeed.
PERMANENT_SEND_ERRORS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    CorruptRecordException,
)


async def send_each(
    producer: AIOKafkaProducer, msgs: Sequence[Outbound]
) -> tuple[list[Outbound], list[tuple[Outbound, Exception]]]:
    """Send every record and wait for its ack; the ones acknowledged and the ones that failed, with why."""
    pending: list[tuple[Outbound, asyncio.Future[Any]]] = []
    failed: list[tuple[Outbound, Exception]] = []
    for m in msgs:
        try:
            pending.append((m, await producer.send(m.topic, m.value, key=m.key, headers=m.headers)))
        except Exception as exc:  # refused before it was queued (too large, no metadata): this record only
            failed.append((m, exc))
    acks = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
    acked = []
    for (m, _), ack in zip(pending, acks, strict=True):
        if isinstance(ack, Exception):
            failed.append((m, ack))
        elif isinstance(ack, BaseException):
            raise ack
        else:
            acked.append(m)
    return acked, failed


def _end_spans(acked: list[Outbound], failed: list[tuple[Outbound, Exception]]) -> None:
    # A dispatch span lasts from queueing to Kafka's ack; a failed send is marked and left to the relay.
    for m in acked:
        tracing.end_dispatch(m.span)
    for m, exc in failed:
        tracing.end_dispatch(m.span, exc)


class Publisher:
    """Publishes committed outbox rows; their deletion rides on the next transaction (no extra commit)."""

    def __init__(self, producer: AIOKafkaProducer, db: PgPool, dispatch: Dispatcher | None = None) -> None:
        self.producer = producer
        self.db = db
        self.dispatch = dispatch or DISPATCHER
        self._published: list[int] = []
        self._tasks: set[asyncio.Task[bool]] = set()
        # Rows this process is sending right now: the relay leaves them alone (a Kafka outage keeps a send
        # pending for up to the request timeout, longer than the relay's grace).
        self.in_flight: set[int] = set()

    async def publish(self, msgs: list[Outbound]) -> bool:
        """Publish and await every ack; rows that failed stay for the relay (late, not lost), each on its own."""
        if not msgs:
            return True
        ids, seqs = self._hold(msgs)
        try:
            acked, failed = await send_each(self.producer, msgs)
        finally:
            self.in_flight.difference_update(ids)
            self.dispatch.in_flight.difference_update(seqs)
        if tracing.TRACER is not None:
            _end_spans(acked, failed)
        self._published.extend(m.id for m in acked if m.id is not None)
        self.dispatch.resolve(m.seq for m in acked if m.seq is not None)
        if failed:
            log.warning("publish failed; %d outbox rows left for the relay: %s", len(failed), failed[0][1])
        return not failed

    def publish_soon(self, msgs: list[Outbound]) -> None:
        """Publish in the background: the caller's next batch need not wait for Kafka's acks."""
        if not msgs:
            return
        ids, seqs = self._hold(msgs)  # at once: the relay must not take them for failed sends meanwhile
        task = asyncio.create_task(self.publish(msgs))
        self._tasks.add(task)

        def done(task: asyncio.Task[bool]) -> None:
            self._tasks.discard(task)
            self.in_flight.difference_update(ids)
            self.dispatch.in_flight.difference_update(seqs)

        task.add_done_callback(done)

    def _hold(self, msgs: list[Outbound]) -> tuple[list[int], list[int]]:
        ids = [m.id for m in msgs if m.id is not None]
        seqs = [m.seq for m in msgs if m.seq is not None]
        self.in_flight.update(ids)
        self.dispatch.in_flight.update(seqs)
        return ids, seqs

    async def drain(self) -> None:
        """Wait for background publishes (shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def take_published(self) -> list[int]:
        """Outbox ids to delete in the caller's transaction. If it rolls back, they come back later."""
        ids, self._published = self._published, []
        return ids

    def give_back(self, ids: list[int]) -> None:
        self._published.extend(ids)

    async def delete_published(self) -> None:
        """For idle moments: delete what no transaction has carried yet, and save a watermark that moved
        (an API process has no relay; the timer sweep needs the watermark to time its jobs out)."""
        ids, acked = self.take_published(), self.dispatch.take_watermark()
        if not ids and acked is None:
            return
        params = {"ids": ids, "epoch": self.dispatch.epoch, "acked": acked}
        try:
            async with self.db.connection() as conn:
                await conn.execute(outbox.DELETE_AND_SAVE, params)
        except Exception:
            self.give_back(ids)
            self.dispatch.unsave()
            raise
