"""Sending to Kafka until it acknowledges: results, dead letters, with bounded backoff. Private."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from . import _kafka
from ._dispatch import error_from_exception
from ._kafka import AIOKafkaProducer, ConsumerRecord, KafkaError
from .config import WorkerSettings
from .errors import PayloadTooLarge
from .protocol import Result, Undecodable, WorkerInfo, encode_presence, encode_result

__all__ = ["Sender"]

log = logging.getLogger("baton")

# Transient errors are retried for as long as the worker runs (a job's offset waits for its result),
# backing off up to 10 s between attempts.
_SEND_BACKOFF_S = (0.5, 10.0)
_PRESENCE_TIMEOUT_S = 10.0


class Sender:
    """Sends records for the runtime; ``closed()`` says the worker is shutting down (stop retrying)."""

    def __init__(self, settings: WorkerSettings, producer: AIOKafkaProducer, closed: Callable[[], bool]) -> None:
        self._s, self._producer, self._closed = settings, producer, closed

    async def result(self, result: Result, headers: list[tuple[str, bytes]]) -> str:
        """Send a result until acknowledged; returns the status that was sent."""
        value, key = encode_result(result), result.run_id.encode()
        try:
            await self._send_sized(self._s.results_topic, value, key, headers)
            return result.status
        except _kafka.SIZE_ERRORS as exc:
            # Kafka refused the record itself (e.g. a topic limit below ours): the step must still end.
            log.warning("result of job %s (%d bytes) rejected by Kafka: %r", result.job_id, len(value), exc)
            error = PayloadTooLarge(f"result of {len(value)} bytes rejected by Kafka: {type(exc).__name__}")
            failed = dataclasses.replace(
                result,
                status="FAILED",
                output_json="null",
                error=error_from_exception(error, with_stack=False),
            )
            await self.send(self._s.results_topic, encode_result(failed), key, headers, alone=True)
            return "FAILED"

    async def dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: Undecodable) -> None:
        log.warning(
            "undecodable job at %s[%d] offset %d moved to %s: %s",
            record.topic,
            record.partition,
            record.offset,
            self._s.dead_letter_topic,
            exc.reason,
        )
        headers = _kafka.dead_letter_headers(record, self._s.group_id, exc.reason, exc.job_id)
        try:
            await self._send_sized(self._s.dead_letter_topic, record.value, record.key, headers)
        except _kafka.SIZE_ERRORS:
            # Too large for the dead-letter topic: keep its headers (where it came from, why), say so in
            # one more header, rather than block the partition behind a record no topic will take.
            log.error(
                "undecodable job at offset %d too large for %s: sent without its value",
                record.offset,
                self._s.dead_letter_topic,
            )
            headers.append(("baton-dlt-value-dropped", b"too large for the dead-letter topic"))
            await self.send(self._s.dead_letter_topic, None, record.key, headers, alone=True)

    async def _send_sized(self, topic: str, value: bytes | None, key: bytes | None, headers: list[Any]) -> None:
        """``send``; after a size error, once more in a batch of its own, since Kafka refuses a whole
        batch when one record of it is too large: only a record refused alone is too large itself."""
        try:
            await self.send(topic, value, key, headers)
        except _kafka.SIZE_ERRORS:
            await self.send(topic, value, key, headers, alone=True)

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[Any], *, alone: bool = False
    ) -> None:
        """Send until Kafka acknowledges: the job's offset is committed only after that."""
        delay, max_delay = _SEND_BACKOFF_S
        while True:
            try:
                if alone:
                    await _kafka.send_alone(self._producer, topic, value, key, headers)
                else:
                    await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)
                return
            except _kafka.SIZE_ERRORS:
                raise
            except KafkaError as exc:
                if self._closed():
                    raise
                log.warning("send to %s failed (%r); retrying in %.1fs", topic, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)

    async def presence(self, worker: WorkerInfo, timeout: float = _PRESENCE_TIMEOUT_S, **fields: Any) -> None:
        """Best effort: a missed presence heartbeat must never hold up jobs or shutdown."""
        value = encode_presence(worker, **fields)
        send = self._producer.send_and_wait(self._s.workers_topic, value, key=worker.id.encode())
        try:
            await asyncio.wait_for(send, timeout)
        except (KafkaError, TimeoutError) as exc:
            log.warning("presence heartbeat not sent: %r", exc)
