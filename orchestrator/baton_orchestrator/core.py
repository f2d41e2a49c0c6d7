"""The running orchestrator's shared parts (pools, clients, caches), built once in the app's lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from .bus.kafka import Topics
from .engine.apply import Applier, Definitions
from .engine.dispatch import Publisher
from .engine.pg import PgPool
from .feed import RunFeed
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("baton")
# The API's pool: SQLAlchemy's pool held 10 connections (+10 overflow) for the same work.
API_POOL_SIZE = 10


def api_pool(settings: Settings, size: int = API_POOL_SIZE) -> PgPool:
    """Autocommit connections with the planner's own choices (list filters and counts need them)."""
    return PgPool(settings, size, index_plans=False)


class ServiceError(Exception):
    """A client-facing failure: HTTP status, stable code, message, details."""

    def __init__(self, status: int, code: str, message: str, details: object = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass
class Core:
    settings: Settings
    db: PgPool  # the API's statements and transactions, planned as PostgreSQL sees fit
    redis: Redis
    producer: AIOKafkaProducer
    topics: Topics
    metrics: Metrics
    role: str = "all"
    definitions: Definitions = field(default_factory=Definitions)

    def __post_init__(self) -> None:
        # Triggers: one autocommit statement each, the engine's insert, planned like the engine's (pg.py).
        self.pool = PgPool(self.settings)
        self.publisher = Publisher(self.producer, self.db)
        self.applier = Applier(self.settings, self.definitions)
        self.feed = RunFeed(self.settings, self.settings.max_waiters)
        self.redis_ok = True

    def redis_failed(self, exc: Exception) -> None:
        # Redis is a fast path only: triggers go on through PostgreSQL, /health reports "degraded".
        if self.redis_ok:
            log.warning("redis unavailable, continuing without it: %s", exc)
        self.redis_ok = False
