"""Kafka triggers: one consumer per definition, started and stopped as the kafka_triggers table changes.

Each record becomes one run (triggers.py says how); the batch's offsets are committed only after every
trigger returned, i.e. once its run is durable, so a crash redelivers and the record's Idempotency-Key
turns the redelivery into a replay. Refused records go to `<topic>.DLT` with Spring-style headers
before the commit. The definitions are polled every few seconds, never per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from .. import service, tracing
from ..bus.codec import dlt_headers
from ..core import Core, ServiceError
from ..store import schedules as store
from ..triggers import Accepted, Rejected, dlt_topic, read_record

log = logging.getLogger("baton.triggers")
_FIELDS = ("workflow_id", "topic", "key_path", "group_id", "start_from", "created_at")


class KafkaTriggersLoop:
    """Keeps one TriggerConsumer task per row of kafka_triggers (a re-created row restarts it)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.tasks: dict[str, tuple[tuple[Any, ...], asyncio.Task[None]]] = {}

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.sync()
                except Exception as exc:
                    log.warning("could not read the Kafka trigger definitions (retrying): %s", exc)
                await asyncio.sleep(self.core.settings.kafka_trigger_poll_seconds)
        finally:
            await asyncio.gather(*(self._stop(tid) for tid in list(self.tasks)), return_exceptions=True)

    async def sync(self) -> None:
        async with self.core.db.connection() as conn:
            rows = await store.list_triggers(conn, limit=False)
        wanted = {r.id: r for r in rows}
        for tid, (fields, task) in list(self.tasks.items()):
            row = wanted.get(tid)
            if row is None or _fields(row) != fields or task.done():  # a crashed consumer restarts here
                await self._stop(tid)
        for tid, row in wanted.items():
            if tid not in self.tasks:
                task = asyncio.create_task(TriggerConsumer(self.core, row).run(), name=f"baton-trigger-{tid}")
                self.tasks[tid] = (_fields(row), task)

    async def _stop(self, tid: str) -> None:
        _, task = self.tasks.pop(tid)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _fields(row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, f) for f in _FIELDS)


class TriggerConsumer:
    def __init__(self, core: Core, row: Any) -> None:
        self.core, self.row = core, row

    async def run(self) -> None:
        try:
            await self._consume()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Kafka trigger %s crashed; restarted at the next definitions poll", self.row.id)

    async def _consume(self) -> None:
        s, row = self.core.settings, self.row
        await self.core.topics.ensure([row.topic, dlt_topic(row.topic)])
        consumer = AIOKafkaConsumer(
            row.topic,
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=row.group_id,
            enable_auto_commit=False,
            auto_offset_reset=row.start_from,
            max_partition_fetch_bytes=max(s.max_payload_bytes * 2, 1_048_576),
            fetch_max_wait_ms=200,
        )
        await consumer.start()
        log.info("Kafka trigger %s: %s -> workflow %s (group %s)", row.id, row.topic, row.workflow_id, row.group_id)
        try:
            while True:
                polled = await consumer.getmany(timeout_ms=500, max_records=s.kafka_trigger_batch)
                for records in polled.values():
                    for record in records:
                        await self._handle(record)
                if polled:
                    await consumer.commit()  # every run of the batch is durable by now
        finally:
            await consumer.stop()

    async def _handle(self, record: ConsumerRecord) -> None:
        row = self.row
        read = read_record(record.value, record.key, row.key_path, (record.topic, record.partition, record.offset))
        if isinstance(read, Accepted):
            try:
                parent = tracing.header_of(record.headers) if tracing.TRACER is not None else None
                await service.trigger(self.core, row.workflow_id, read.input, read.key, traceparent=parent)
                return
            except ServiceError as exc:
                if exc.status >= 500:
                    raise  # transient: nothing is committed, the batch is redelivered
                read = Rejected(exc.code, "ServiceError", exc.message)
        await self._dead_letter(record, read)

    async def _dead_letter(self, record: ConsumerRecord, why: Rejected) -> None:
        log.warning(
            "Kafka trigger %s: record %s/%d@%d to the DLT: %s",
            self.row.id,
            record.topic,
            record.partition,
            record.offset,
            why.message,
        )
        headers = dlt_headers(
            reason=why.reason,
            error_type=why.error_type,
            message=why.message,
            original_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            group=self.row.group_id,
        )
        await self.core.producer.send_and_wait(
            dlt_topic(record.topic), record.value or b"", key=record.key, headers=headers
        )
