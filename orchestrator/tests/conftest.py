"""Orchestrator test fixtures: an isolated app per test (own PostgreSQL schema, topic prefix, Redis prefix)
and a minimal raw aiokafka test worker, so the engine is tested without any SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from baton_orchestrator.app import create_app
from baton_orchestrator.db import migrate
from baton_orchestrator.settings import Settings

Handler = Callable[[dict[str, Any]], Awaitable[Any] | Any]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{getattr(check, '__name__', 'check')} not true after {timeout}s")
        await asyncio.sleep(every)
    return result


def make_settings(services: Any, unique: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": services.database_url,
        "database_schema": f"t_{unique}",
        "kafka_bootstrap_servers": services.kafka,
        "redis_url": services.redis_url,
        "topic_prefix": f"t-{unique}-",
        "redis_prefix": f"t:{unique}:",
        "engine_group_id": f"t-{unique}-engine",
        "timer_interval_seconds": 0.05,
        "relay_interval_seconds": 0.2,
        "relay_grace_seconds": 1.0,
        "topic_partitions": 2,
        "startup_timeout_seconds": 20,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def settings(services: Any, unique: str) -> AsyncIterator[Settings]:
    s = make_settings(services, unique)
    await asyncio.to_thread(migrate, s)
    yield s
    async with await psycopg.AsyncConnection.connect(services.database_url, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{s.database_schema}" CASCADE')
    await delete_topics(services.kafka, s.topic_prefix)


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """The test's topics go with it: a broker left holding thousands of test partitions slows everything
    after (it idled at a quarter of a core), benchmarks included."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


class Client:
    """An httpx client bound to a running app (lifespan entered)."""

    def __init__(self, http: httpx.AsyncClient, app: Any) -> None:
        self.http, self.app = http, app

    async def define(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.http.post("/workflow", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def trigger(self, workflow_id: str, payload: Any = None, key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return await self.http.post(f"/workflow/{workflow_id}/trigger", json={"input": payload}, headers=headers)

    async def run(self, run_id: str) -> dict[str, Any]:
        resp = await self.http.get(f"/workflow/run/{run_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def wait_run(
        self,
        run_id: str,
        statuses: tuple[str, ...] = ("COMPLETED", "FAILED", "CANCELLED"),
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            run = await self.run(run_id)
            return run if run["status"] in statuses else None

        return await eventually(done, timeout)


@pytest.fixture
async def start_app(settings: Settings) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    async with AsyncExitStack() as stack:

        async def start(role: str = "all", s: Settings | None = None) -> Client:
            app = create_app(s or settings, role=role)
            await stack.enter_async_context(app.router.lifespan_context(app))
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://baton.test")
            )
            return Client(http, app)

        yield start


@pytest.fixture
async def client(start_app: Callable[..., Awaitable[Client]]) -> Client:
    return await start_app()


class RawWorker:
    """A minimal worker on raw aiokafka: handler(job) returns an output, raises to fail, or
    returns NO_REPLY to stay silent. Records every job it saw."""

    NO_REPLY = object()

    def __init__(self, settings: Settings, handlers: dict[str, Handler], group: str | None = None) -> None:
        self.settings, self.handlers = settings, handlers
        self.group = group or f"{settings.topic_prefix}workers"
        self.seen: list[dict[str, Any]] = []
        self.records: list[Any] = []  # the job records as consumed (headers included)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RawWorker:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )
        await self.producer.start()
        topics = [self.settings.job_topic(a) for a in self.handlers]
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        await self.consumer.start()
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()
        await self.producer.stop()

    async def _loop(self) -> None:
        while True:
            polled = await self.consumer.getmany(timeout_ms=200)
            for records in polled.values():
                for rec in records:
                    self.records.append(rec)
                    await self._handle(orjson.loads(rec.value))
            if polled:
                await self.consumer.commit()

    async def _handle(self, job: dict[str, Any]) -> None:
        self.seen.append(job)
        started = _now()
        try:
            out = self.handlers[job["action"]](job)
            if asyncio.iscoroutine(out):
                out = await out
            if out is RawWorker.NO_REPLY:
                return
            result = {"status": "COMPLETED", "output": out, "error": None}
        except Exception as exc:
            # Test handlers say non-retryable / retry-later with attributes, like an SDK's error classes.
            error = {
                "type": type(exc).__name__,
                "message": str(exc),
                "stacktrace": None,
                "retryable": getattr(exc, "retryable", True),
            }
            if hasattr(exc, "retry_after_ms"):
                error["retry_after_ms"] = exc.retry_after_ms
            result = {"status": "FAILED", "output": None, "error": error}
        await self.send_result(job, **result, started_at=started)

    async def send_result(
        self, job: dict[str, Any], headers: list[tuple[str, bytes]] | None = None, **fields: Any
    ) -> None:
        body = {
            "v": 1,
            "job_id": job["job_id"],
            "run_id": job["run_id"],
            "step": job["step"],
            "attempt": job["attempt"],
            "worker": {"id": "raw-1", "language": "test", "sdk_version": "0"},
            "started_at": fields.pop("started_at", _now()),
            "finished_at": _now(),
            **fields,
        }
        await self.producer.send_and_wait(
            self.settings.results_topic, orjson.dumps(body), key=job["run_id"].encode(), headers=headers
        )


@pytest.fixture
def raw_worker(settings: Settings) -> Callable[..., RawWorker]:
    def make(handlers: dict[str, Handler], group: str | None = None, s: Settings | None = None) -> RawWorker:
        return RawWorker(s or settings, handlers, group)

    return make


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
