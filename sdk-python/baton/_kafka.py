"""aiokafka plumbing: topic creation, client factories, record headers. Private to the SDK."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

# aiokafka ships no type information; every aiokafka import of the SDK is here. (``unused-ignore``:
# the ignore is needed when mypy runs without sdk-python/pyproject.toml, unused when it runs with it.)
from aiokafka import (  # type: ignore[import-untyped,unused-ignore]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.abc import ConsumerRebalanceListener  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped,unused-ignore]
from aiokafka.errors import (  # type: ignore[import-untyped,unused-ignore]
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
)
from aiokafka.partitioner import murmur2  # type: ignore[import-untyped,unused-ignore]

from .config import WorkerSettings

__all__ = [
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "KafkaError",
    "TopicPartition",
]

log = logging.getLogger("baton")

Headers = list[tuple[str, bytes]]

_TOPIC_ALREADY_EXISTS = 36
# Room for the envelope around a maximal output, so the limit that applies is max_payload_bytes.
_ENVELOPE_ROOM = 64 * 1024
SIZE_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError)


async def ensure_topics(settings: WorkerSettings, topics: Sequence[str], client_id: str) -> None:
    """Create the topics that are missing; "already exists" is success (whoever comes first creates)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id=client_id)
    await admin.start()
    try:
        configs = {"max.message.bytes": str(settings.max_payload_bytes + _ENVELOPE_ROOM)}
        if settings.topic_min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
        replicas = settings.topic_replication_factor
        new = [NewTopic(t, settings.topic_partitions, replicas, topic_configs=configs) for t in topics]
        response = await admin.create_topics(new)
        failed = [(e[0], e[1]) for e in response.topic_errors if e[1] not in (0, _TOPIC_ALREADY_EXISTS)]
        if failed:
            raise RuntimeError(f"could not create topics (topic, Kafka error code): {failed}")
    finally:
        await admin.close()


async def ensure_topics_retrying(
    settings: WorkerSettings, topics: Sequence[str], client_id: str, patience: float = 60.0
) -> None:
    """ensure_topics, waiting for Kafka: a worker started before the broker (or during an outage) waits
    with backoff instead of exiting, and fails with a clear error only after `patience` seconds."""
    deadline, delay = time.monotonic() + patience, 0.5
    while True:
        try:
            await ensure_topics(settings, topics, client_id)
            return
        except KafkaConnectionError as exc:
            if time.monotonic() + delay > deadline:
                raise KafkaConnectionError(
                    f"Kafka at {settings.bootstrap_servers} did not answer within {patience:g}s: {exc}"
                ) from exc
            log.warning("Kafka at %s not reachable (%s); retrying in %.1fs", settings.bootstrap_servers, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def start_producer(producer: AIOKafkaProducer, job_topics: Sequence[str]) -> None:
    await producer.start()
    for topic in job_topics:  # so the consumer's first metadata already lists new topics
        await producer.partitions_for(topic)


async def send_alone(
    producer: AIOKafkaProducer, topic: str, value: bytes | None, key: bytes | None, headers: Headers
) -> None:
    """Send one record in a batch of its own (same partition as ``send`` would pick) and wait for it."""
    batch = producer.create_batch()
    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
        raise MessageSizeTooLargeError(f"a {len(value or b'')}-byte record does not fit a batch")
    batch.close()
    partitions = sorted(await producer.partitions_for(topic))
    partition = _KeyPartitioner()(key, partitions, partitions)
    await (await producer.send_batch(batch, topic, partition=partition))


def make_producer(settings: WorkerSettings, client_id: str) -> AIOKafkaProducer:
    # Idempotent with acks=all: an acknowledged result is durable and a retried send is not doubled.
    # No linger: under load results batch behind the one request in flight; idle, linger is pure delay.
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        max_request_size=settings.max_payload_bytes + _ENVELOPE_ROOM,
        partitioner=_KeyPartitioner(),
    )


def make_consumer(settings: WorkerSettings, client_id: str) -> AIOKafkaConsumer:
    # Offsets are committed by the worker, only for jobs whose results Kafka acknowledged.
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


def result_headers(job_id: str, trace_headers: Sequence[tuple[str, bytes]]) -> Headers:
    """``baton-job-id`` plus the W3C ``traceparent``/``tracestate`` of the job's handle span."""
    return [("baton-job-id", job_id.encode()), *trace_headers]


def dead_letter_headers(record: Any, group_id: str, reason: str, job_id: str | None) -> Headers:
    """Spring Kafka's ``kafka_dlt-*`` headers (so existing tools read them) plus Baton's own."""
    headers: Headers = [
        ("kafka_dlt-original-topic", record.topic.encode()),
        ("kafka_dlt-original-partition", record.partition.to_bytes(4, "big", signed=True)),
        ("kafka_dlt-original-offset", record.offset.to_bytes(8, "big", signed=True)),
        ("kafka_dlt-original-timestamp", int(record.timestamp).to_bytes(8, "big", signed=True)),
        ("kafka_dlt-original-consumer-group", group_id.encode()),
        ("kafka_dlt-exception-fqcn", b"Undecodable"),
        ("kafka_dlt-exception-message", reason.encode()),
        ("kafka_dlt-exception-stacktrace", b""),
        ("baton-dlt-reason", b"undecodable"),
    ]
    if job_id:
        headers.append(("baton-job-id", job_id.encode()))
    return headers


class _KeyPartitioner:
    """aiokafka's default partitioner (Java's murmur2, as every Baton producer uses), memoised per key.

    murmur2 is pure Python in aiokafka (≈ 13 µs a key here) and all messages of a run share its key.
    """

    _MAX = 65_536

    def __init__(self) -> None:
        self._memo: dict[tuple[bytes, int], int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        n = len(all_partitions)
        index = self._memo.get((key, n))
        if index is None:
            if len(self._memo) >= self._MAX:
                self._memo.clear()
            index = self._memo[(key, n)] = (murmur2(key) & 0x7FFFFFFF) % n
        return all_partitions[index]
