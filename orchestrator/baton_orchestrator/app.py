"""create_app(settings, role): the FastAPI app, with the engine's loops when the role includes them."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from . import __version__, ui
from .api import errors, fast, ops, routes, schedules
from .bus import kafka
from .core import Core, api_pool
from .engine.gate import GateLoop
from .engine.kafka_triggers import KafkaTriggersLoop
from .engine.loops import PresenceLoop, ResultsLoop, TimersLoop
from .engine.pg import Pg
from .engine.relay import RelayLoop
from .engine.scheduler import SchedulerLoop
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("baton")
ROLES = ("all", "api", "engine")


class StartupError(RuntimeError):
    """A required service did not answer within the start-up timeout."""


async def _connect(what: str, settings: Settings, fn: Callable[[], Awaitable[Any]]) -> None:
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(settings.startup_timeout_seconds),
            wait=wait_exponential(multiplier=0.2, max=3),
            retry=retry_if_exception_type(Exception),
            reraise=True,
        ):
            with attempt:
                await fn()
    except Exception as exc:
        raise StartupError(f"could not connect to {what} within {settings.startup_timeout_seconds:g}s: {exc}") from exc


async def _supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    # A loop must never die silently: an engine without its results loop leaves every run stuck.
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s loop crashed; restarting in 1s", name)
            await asyncio.sleep(1)


async def _start_core(settings: Settings, role: str, stack: AsyncExitStack) -> Core:
    db = api_pool(settings)
    stack.push_async_callback(db.close)
    await _connect("PostgreSQL", settings, db.ping)
    producer = kafka.producer(settings)
    await _connect("Kafka", settings, producer.start)
    stack.push_async_callback(producer.stop)
    topics = kafka.Topics(settings)
    await _connect("Kafka (admin)", settings, topics.start)
    stack.push_async_callback(topics.close)
    await topics.ensure(
        [settings.results_topic, settings.results_dlt_topic, settings.jobs_dlt_topic, settings.workers_topic]
    )
    redis = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    stack.push_async_callback(redis.aclose)
    core = Core(settings, db, redis, producer, topics, Metrics(), role=role)
    stack.push_async_callback(core.pool.close)
    # The dispatch epoch's lock, before anything is queued (engine/epoch.py).
    await _connect("PostgreSQL (dispatch epoch)", settings, lambda: core.publisher.dispatch.start(settings))
    stack.push_async_callback(core.publisher.dispatch.stop)
    try:
        await redis.ping()
    except Exception as exc:
        core.redis_failed(exc)
    return core


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the loops and wait for them; a loop that swallowed its cancellation is cancelled again."""
    pending = set(tasks)
    for _ in range(20):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    log.warning("loops still running at shutdown: %s", ", ".join(t.get_name() for t in pending))


async def _start_engine(core: Core, stack: AsyncExitStack) -> list[asyncio.Task[None]]:
    s = core.settings
    results = kafka.consumer(s, s.results_topic, s.engine_group_id)
    await _connect("Kafka (results consumer)", s, results.start)
    stack.push_async_callback(results.stop)
    presence = kafka.consumer(s, s.workers_topic, f"{s.engine_group_id}-workers")
    await _connect("Kafka (workers consumer)", s, presence.start)
    stack.push_async_callback(presence.stop)
    # One dedicated PostgreSQL connection per hot loop (engine/pg.py), closed at shutdown.
    pg_results, pg_timers, pg_relay, pg_gate = Pg(s), Pg(s), Pg(s), Pg(s)
    for pg in (pg_results, pg_timers, pg_relay, pg_gate):
        stack.push_async_callback(pg.close)
    loops = {
        "results": ResultsLoop(s, pg_results, results, core.producer, core.publisher, core.applier, core.metrics).run,
        "timers": TimersLoop(s, pg_timers, core.publisher, core.applier, core.metrics).run,
        "relay": RelayLoop(s, pg_relay, core.producer, core.publisher, core.applier, core.metrics).run,
        "presence": PresenceLoop(s, presence, core.redis).run,
        # Flow control's release loop: one query per tick while nothing is held.
        "gate": GateLoop(s, pg_gate, core.publisher, core.definitions, core.applier.flow_wake).run,
        # Off the hot path: one query per pass for schedules, one per poll for trigger definitions.
        "scheduler": SchedulerLoop(core).run,
        "kafka-triggers": KafkaTriggersLoop(core).run,
    }
    return [asyncio.create_task(_supervise(name, run), name=f"baton-{name}") for name, run in loops.items()]


async def _delete_published(core: Core) -> None:
    # Published outbox rows are normally deleted by the next transaction; this covers quiet moments.
    while True:
        await asyncio.sleep(0.25)
        try:
            await core.publisher.delete_published()
        except Exception as exc:
            log.warning("could not delete published outbox rows (the relay may resend them): %s", exc)


# FastAPI (0.16x) traces every request itself once a global tracer provider exists. Baton's spans are the
# run's (R2.8): a request span would be a second SERVER span beside baton.trigger, and every health probe,
# dashboard stream and /metrics scrape would be traced. Older FastAPI versions have no such option.
_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI).parameters
    else {}
)


def create_app(settings: Settings | None = None, role: str = "all") -> FastAPI:
    """Build the orchestrator. `role`: all (API + engine), api, or engine (loops + /health, /metrics)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            core = await _start_core(settings, role, stack)
            app.state.core = core
            if role != "engine":  # waiting requests and live views are served by API processes
                await core.feed.start()
                stack.push_async_callback(core.feed.close)
            tasks = await _start_engine(core, stack) if role in ("all", "engine") else []
            tasks.append(asyncio.create_task(_delete_published(core), name="baton-outbox-cleanup"))
            log.info("baton orchestrator started (role=%s)", role)
            try:
                yield
            finally:
                await _stop(tasks)
                await core.publisher.drain()
                with contextlib.suppress(Exception):
                    await core.publisher.delete_published()

    app = fast.BatonAPI(
        title="Baton",
        version=__version__,
        lifespan=lifespan,
        default_response_class=JSONResponse,
        description="Kafka-backed polyglot job broker: define workflows, trigger runs, inspect them.",
        docs_url=None,  # served by ui.install_docs from local assets (FastAPI's default uses a CDN)
        redoc_url=None,
        **_NO_NATIVE_TELEMETRY,
    )
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(errors.BodyLimit, max_bytes=settings.max_payload_bytes)
    app.add_middleware(errors.OptionalTrailingSlash)
    if role != "engine":  # the hottest read skips the middleware stack and the router (api/fast.py)
        app.fast_read_keys = settings.api_key_list
    app.include_router(ops.router)
    ui.install_docs(app)
    if role != "engine":
        app.include_router(routes.router)
        app.include_router(schedules.router)
        ui.install(app)
    return app
