"""Baton worker SDK: register handlers for actions and run them from Kafka.

from baton import Worker

worker = Worker()
worker.register("step1", lambda payload: f"Processed: {payload}")
worker.start()
"""

__version__ = "0.1.0"  # first: worker.py imports it

from .config import WorkerSettings
from .context import JobContext
from .errors import (
    BatonError,
    ConfigError,
    IdleTimeout,
    NonRetryableError,
    PayloadTooLarge,
    RetryLater,
    SerializationError,
    WorkerStateError,
)
from .worker import RunReport, Worker

__all__ = [
    "BatonError",
    "ConfigError",
    "IdleTimeout",
    "JobContext",
    "NonRetryableError",
    "PayloadTooLarge",
    "RetryLater",
    "RunReport",
    "SerializationError",
    "Worker",
    "WorkerSettings",
    "WorkerStateError",
    "__version__",
]
