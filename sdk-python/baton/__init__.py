"""Baton SDK: run workflow steps from Kafka (``Worker``) and drive the orchestrator's HTTP API (``Client``).

from baton import Worker

worker = Worker()
worker.register("step1", lambda payload: f"Processed: {payload}")
worker.start()
"""

__version__ = "0.1.0"  # first: worker.py imports it

from .client import AsyncClient, Client
from .config import WorkerSettings
from .context import JobContext
from .errors import (
    ApiConnectionError,
    ApiError,
    BadRequest,
    BatonError,
    ConfigError,
    Conflict,
    Forbidden,
    IdleTimeout,
    NonRetryableError,
    NotFound,
    PayloadTooLarge,
    RequestTooLarge,
    RetryLater,
    SerializationError,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
    WorkerStateError,
)
from .worker import RunReport, Worker

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "BatonError",
    "Client",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "IdleTimeout",
    "JobContext",
    "NonRetryableError",
    "NotFound",
    "PayloadTooLarge",
    "RequestTooLarge",
    "RetryLater",
    "RunReport",
    "SerializationError",
    "ServiceUnavailable",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
    "Worker",
    "WorkerSettings",
    "WorkerStateError",
    "__version__",
]
