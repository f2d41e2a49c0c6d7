"""The running orchestrator's shared parts (pools, clients, caches), built once in the app's lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from .bus.kafka import Topics
from .engine.apply import Applier, Definitions
from .engine.dispatch import Publisher
from .engine.pg import PgPool
from .feed import RunFeed
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("baton")


class ServiceError(Exception):
    """A client-facing failure: HTTP status, stable code, message, details."""

    def __init__(self, status: int, code: str, message: str, details: object = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass
class Core:
    settings: Settings
    db: AsyncEngine
    redis: Redis
    producer: AIOKafkaProducer
    topics: Topics
    metrics: Metrics
    role: str = "all"
    definitions: Definitions = field(default_factory=Definitions)

    def __post_init__(self) -> None:
        self.pool = PgPool(self.settings)  # triggers: one autocommit statement each
        self.publisher = Publisher(self.producer, self.db)
        self.applier = Applier(self.settings, self.definitions)
        self.feed = RunFeed(self.settings, self.settings.max_waiters)
        self.redis_ok = True

    def redis_failed(self, exc: Exception) -> None:
        # Redis is a fast path only: triggers go on through PostgreSQL, /health reports "degraded".
        if self.redis_ok:
            log.warning("redis unavailable, continuing without it: %s", exc)
        self.redis_ok = False
