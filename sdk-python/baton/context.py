"""The context a handler may take as its second argument."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .protocol import Job

__all__ = ["JobContext"]

_log = logging.getLogger("baton.job")


class JobContext:
    """What a handler knows about the job it runs, plus :meth:`heartbeat` and a :attr:`logger`.

    The worker builds one per job; tests build one with :func:`baton.testing.make_context`.
    Everything is read-only except :attr:`deadline`, which :meth:`heartbeat` moves.
    """

    __slots__ = ("_deadline", "_job", "_logger", "_on_heartbeat", "_trace_ids")

    def __init__(self, job: Job, on_heartbeat: Callable[[], None], trace_ids: tuple[str, str] | None = None) -> None:
        self._job = job
        self._deadline = job.deadline
        self._on_heartbeat = on_heartbeat
        self._trace_ids = trace_ids
        extra: dict[str, object] = {
            "job_id": job.job_id,
            "run_id": job.run_id,
            "step": job.step,
            "attempt": job.attempt,
            "action": job.action,
        }
        if trace_ids is not None:
            extra["trace_id"], extra["span_id"] = trace_ids
        self._logger = logging.LoggerAdapter(_log, extra)

    @property
    def job_id(self) -> str:
        """Names this attempt of this step; a redelivery of the attempt carries the same id."""
        return self._job.job_id

    @property
    def run_id(self) -> str:
        """The workflow run this job belongs to."""
        return self._job.run_id

    @property
    def workflow_id(self) -> str:
        """The workflow definition's id."""
        return self._job.workflow_id

    @property
    def step(self) -> str:
        """The step's name in the workflow."""
        return self._job.step

    @property
    def action(self) -> str:
        """The action the job was dispatched to."""
        return self._job.action

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        return self._job.attempt

    @property
    def max_attempts(self) -> int:
        """How many attempts the retry policy allows in total."""
        return self._job.max_attempts

    @property
    def idempotency_key(self) -> str:
        """``"<run_id>:<step>"``: stable across retries, for side effects that must happen once."""
        return f"{self._job.run_id}:{self._job.step}"

    @property
    def trace_id(self) -> str | None:
        """The job's trace (32 lowercase hex digits) when it is traced (``traceparent`` or a tracer)."""
        return self._trace_ids[0] if self._trace_ids else None

    @property
    def span_id(self) -> str | None:
        """The worker's ``baton.handle`` span (16 lowercase hex digits) while tracing is configured; with
        no OpenTelemetry SDK, the span of the job's ``traceparent``."""
        return self._trace_ids[1] if self._trace_ids else None

    @property
    def deadline(self) -> datetime:
        """When the orchestrator gives up on this attempt (UTC); :meth:`heartbeat` extends it."""
        return self._deadline

    @property
    def logger(self) -> logging.LoggerAdapter[Any]:
        """A ``baton.job`` logger adapter; its records carry ``job_id``, ``run_id``, ``step``, ``attempt``,
        ``action``, and ``trace_id``/``span_id`` when the job is traced."""
        return self._logger

    def heartbeat(self) -> None:
        """Tell the orchestrator the handler is alive, extending the attempt's deadline.

        Non-blocking and safe from any thread (sync handlers run in a thread pool): it only queues a
        HEARTBEAT result. When the job carries ``timeout_ms``, :attr:`deadline` moves to now + timeout.
        """
        if self._job.timeout_ms is not None:
            self._deadline = datetime.now(UTC) + timedelta(milliseconds=self._job.timeout_ms)
        self._on_heartbeat()

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job_id!r}, run_id={self.run_id!r}, step={self.step!r}, attempt={self.attempt})"
