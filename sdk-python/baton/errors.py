"""Errors of the Baton SDK.

One base, :class:`BatonError`, and one class per failure kind. The class name is what a result carries as
``error.type`` (and what a workflow's ``non_retryable_errors`` matches), so the names are the same in the
Python, Node and Java SDKs. Each class has a stable ``code``.
"""

from __future__ import annotations

import math
from typing import ClassVar

__all__ = [
    "BatonError",
    "ConfigError",
    "IdleTimeout",
    "NonRetryableError",
    "PayloadTooLarge",
    "RetryLater",
    "SerializationError",
    "WorkerStateError",
]


class BatonError(Exception):
    """Base class of every error the SDK defines.

    ``retryable`` says how a handler raising it is reported: the orchestrator retries a failed attempt
    only when its error is retryable.
    """

    code: ClassVar[str] = "BATON_ERROR"
    retryable: ClassVar[bool] = True


class NonRetryableError(BatonError):
    """Raise from a handler to fail the step at once: no retry, the job is dead-lettered.

    Subclasses keep that behaviour and report their own class name as ``error.type``.
    """

    code = "BATON_NON_RETRYABLE"
    retryable = False


class RetryLater(BatonError):
    """Raise from a handler to have the attempt retried after ``delay`` seconds.

    The orchestrator schedules the retry ``delay`` seconds out instead of the retry policy's interval;
    the attempt still counts against ``max_attempts``.
    """

    code = "BATON_RETRY_LATER"
    retryable = True

    def __init__(self, delay: float, message: str | None = None) -> None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay):
            raise ValueError("delay must be a finite number of seconds")
        if delay < 0:
            raise ValueError("delay must be >= 0 seconds")
        self.delay = float(delay)
        super().__init__(message if message is not None else f"retry in {self.delay:g} s")

    @property
    def delay_ms(self) -> int:
        """The delay in whole milliseconds, as sent in ``error.retry_after_ms``."""
        return round(self.delay * 1000)


class PayloadTooLarge(BatonError):
    """A handler's encoded output is larger than ``max_payload_bytes``; the step fails for good."""

    code = "BATON_PAYLOAD_TOO_LARGE"
    retryable = False


class SerializationError(BatonError):
    """A handler returned a value that is not JSON-serialisable; the step fails for good."""

    code = "BATON_SERIALIZATION"
    retryable = False


class ConfigError(BatonError, ValueError):
    """An invalid worker option, environment variable, action name or handler."""

    code = "BATON_CONFIG"
    retryable = False


class IdleTimeout(BatonError, TimeoutError):
    """``run_until_idle(timeout)`` did not reach idle in time (also a ``TimeoutError``, as before)."""

    code = "BATON_IDLE_TIMEOUT"


class WorkerStateError(BatonError, RuntimeError):
    """A call the worker's state does not allow: ``register`` after start, or starting it twice."""

    code = "BATON_WORKER_STATE"
    retryable = False
