"""Fixtures of the SDK's integration tests: a per-test topic prefix and group on the shared Kafka."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from baton import WorkerSettings

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 15.0, every: float = 0.05) -> T:
    """Wait until ``check()`` returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{getattr(check, '__name__', check)} not true after {timeout}s")
        await asyncio.sleep(every)
    return result


def make_job(action: str, payload: Any = None, **fields: Any) -> dict[str, Any]:
    job = {
        "v": 1,
        "job_id": uuid.uuid4().hex,
        "run_id": uuid.uuid4().hex,
        "workflow_id": "wf",
        "workflow_version": 1,
        "step": action,
        "action": action,
        "attempt": 1,
        "max_attempts": 4,
        "input": payload,
        "deadline": "2030-01-01T00:00:00.000Z",
        "timeout_ms": 300_000,
        "created_at": "2026-01-01T00:00:00.000Z",
    }
    job.update(fields)
    return job


@dataclass
class Kit:
    """Topics, a producer and readers for one test's prefix and group."""

    bootstrap: str
    prefix: str
    group: str
    producer: AIOKafkaProducer
    admin: AIOKafkaAdminClient
    created: list[str] = field(default_factory=list)
    # Test modules cannot import conftest (importlib import mode), so the helpers ride on the fixture.
    eventually = staticmethod(eventually)
    job = staticmethod(make_job)

    def settings(self, **overrides: Any) -> WorkerSettings:
        values: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "group_id": self.group,
            "topic_prefix": self.prefix,
            "topic_partitions": 2,
        }
        return WorkerSettings(**(values | overrides))

    async def create_topics(self, *actions: str, partitions: int = 2) -> None:
        names = [f"{self.prefix}jobs.{a}" for a in actions]
        names += [f"{self.prefix}{t}" for t in ("results", "jobs.DLT", "workers")]
        new = [n for n in names if n not in self.created]
        if new:
            await self.admin.create_topics([NewTopic(n, partitions, 1) for n in new])
            self.created += new
            for n in new:
                await self.producer.partitions_for(n)

    async def send_job(
        self,
        job: dict[str, Any] | bytes,
        action: str | None = None,
        key: bytes = b"k",
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Send a job; ``headers`` replace the default (a fixed ``traceparent``)."""
        if isinstance(job, dict):
            action = action or job["action"]
            key = job["run_id"].encode()
            value = json.dumps(job).encode()
        else:
            value = job
        await self.create_topics(action or "none")
        if headers is None:
            headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
        await self.producer.send_and_wait(f"{self.prefix}jobs.{action}", value, key=key, headers=headers)

    async def read(self, topic: str, count: int, timeout: float = 20.0) -> list[ConsumerRecord]:
        """The first ``count`` records of ``<prefix><topic>``, waiting at most ``timeout`` s."""
        name = f"{self.prefix}{topic}"
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = [TopicPartition(name, p) for p in await self.producer.partitions_for(name)]
            consumer.assign(parts)
            records: list[ConsumerRecord] = []

            async def enough() -> bool:
                batch = await consumer.getmany(timeout_ms=100)
                records.extend(r for rs in batch.values() for r in rs)
                return len(records) >= count

            await eventually(enough, timeout)
            return records
        finally:
            await consumer.stop()

    async def results(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in await self.read("results", count, timeout)]

    async def committed(self, action: str) -> int:
        """Sum of the group's committed offsets over the action's job topic."""
        name = f"{self.prefix}jobs.{action}"
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group)
        await consumer.start()
        try:
            parts = [TopicPartition(name, p) for p in await self.producer.partitions_for(name)]
            return sum([(await consumer.committed(tp)) or 0 for tp in parts])
        finally:
            await consumer.stop()


@pytest.fixture
async def kit(services: Any, unique: str) -> AsyncIterator[Kit]:
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all", enable_idempotence=True)
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka)
    await producer.start()
    await admin.start()
    kit = Kit(services.kafka, f"t-{unique}-", f"t-{unique}", producer, admin)
    try:
        yield kit
    finally:
        await producer.stop()
        names = set(kit.created)
        names |= {t for t in await admin.list_topics() if t.startswith(kit.prefix)}
        if names:
            await admin.delete_topics(sorted(names))
        await admin.close()
