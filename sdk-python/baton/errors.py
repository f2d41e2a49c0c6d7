"""Errors of the Baton SDK.

One base, :class:`BatonError`, and one class per failure kind. The class name is what a result carries as
``error.type`` (and what a workflow's ``non_retryable_errors`` matches), so the names are the same in the
Python, Node and Java SDKs. Each class has a stable ``code``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "BadRequest",
    "BatonError",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "IdleTimeout",
    "NonRetryableError",
    "NotFound",
    "PayloadTooLarge",
    "RequestTooLarge",
    "RetryLater",
    "SerializationError",
    "ServiceUnavailable",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
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


class ApiError(BatonError):
    """The Baton HTTP API answered with an error (or, for the subclasses below, did not answer).

    ``status`` is the HTTP status (``None`` when there was no answer), ``error_code`` the error
    envelope's ``error.code`` (e.g. ``run_not_found``; ``None`` when the body was not an envelope),
    ``message`` the envelope's message (else the HTTP reason: never a response body or stack trace),
    ``details`` the envelope's ``details``. ``code`` stays the SDK's stable code, like every ``BatonError``.
    """

    code = "BATON_API"

    def __init__(
        self, message: str, *, status: int | None = None, error_code: str | None = None, details: Any = None
    ) -> None:
        self.message, self.status, self.error_code, self.details = message, status, error_code, details
        prefix = " ".join(str(p) for p in (status, error_code) if p is not None)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class BadRequest(ApiError):
    """HTTP 400: the body is not valid JSON."""


class Unauthorized(ApiError):
    """HTTP 401: the server requires a bearer token (``api_key`` / ``BATON_API_KEY``) and got none."""


class Forbidden(ApiError):
    """HTTP 403: the bearer token is not one of the server's ``BATON_API_KEYS``."""


class NotFound(ApiError):
    """HTTP 404: unknown workflow, run or dead letter."""


class Conflict(ApiError):
    """HTTP 409: an Idempotency-Key reused with another body, or a run / dead letter in the wrong state."""


class RequestTooLarge(ApiError):
    """HTTP 413: the body, or the first job it would create, is over the server's payload limit."""


class ValidationFailed(ApiError):
    """HTTP 422: an invalid definition, input, id, wait or cursor; ``details`` says what."""


class ServiceUnavailable(ApiError):
    """HTTP 503: a service the server needs is down, or it holds too many waiters; retry later."""


class ApiConnectionError(ApiError):
    """No answer from the API: unreachable, connection refused or dropped, or no reply in time."""

    code = "BATON_API_CONNECTION"


class WaitTimeout(ApiError, TimeoutError):
    """``wait_for_run`` ran out of time; ``run`` is the run as it stood (also a ``TimeoutError``)."""

    code = "BATON_WAIT_TIMEOUT"

    def __init__(self, message: str, run: dict[str, Any]) -> None:
        super().__init__(message)
        self.run = run
