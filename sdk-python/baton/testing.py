"""Run a handler without Kafka: the same call, signature dispatch and error mapping as the worker.

from baton.testing import run_handler

async def test_charge_rejects_negative_amounts():
    outcome = await run_handler(charge, {"amount": -1})
    assert outcome.status == "FAILED"
    assert outcome.error["type"] == "NonRetryableError"
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ._dispatch import DaemonPool, make_handler
from ._dispatch import run_handler as _run
from .context import JobContext
from .protocol import Job

__all__ = ["Outcome", "make_context", "run_handler"]

_DEFAULT_MAX_PAYLOAD = 1_048_576


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the worker would send: ``status``, the decoded ``output``, the ``error`` object, and how
    many times the handler called ``ctx.heartbeat()``."""

    status: str
    output: Any
    error: dict[str, Any] | None
    heartbeats: int


class _Beats:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def make_context(
    *,
    job_id: str = "job-1",
    run_id: str = "run-1",
    workflow_id: str = "test-workflow",
    step: str = "step",
    action: str = "action",
    attempt: int = 1,
    max_attempts: int = 4,
    timeout_ms: int | None = None,
    deadline: datetime | None = None,
    on_heartbeat: Callable[[], None] | None = None,
) -> JobContext:
    """A :class:`~baton.JobContext` for calling a handler directly; ``heartbeat()`` calls ``on_heartbeat``."""
    now = datetime.now(UTC)
    job = Job(
        job_id=job_id,
        run_id=run_id,
        workflow_id=workflow_id,
        workflow_version=1,
        step=step,
        action=action,
        attempt=attempt,
        max_attempts=max_attempts,
        input=None,
        deadline=deadline or now + timedelta(milliseconds=timeout_ms or 300_000),
        created_at=now,
        timeout_ms=timeout_ms,
    )
    return JobContext(job, on_heartbeat or (lambda: None))


async def run_handler(
    fn: Callable[..., Any],
    payload: Any = None,
    *,
    max_payload_bytes: int = _DEFAULT_MAX_PAYLOAD,
    **ctx_fields: Any,
) -> Outcome:
    """Call ``fn`` as the worker would (``ctx_fields`` go to :func:`make_context`) and report the outcome.

    The payload goes through a JSON round trip first, so the handler sees what it would get from Kafka.
    """
    beats = _Beats()
    ctx = make_context(on_heartbeat=beats, **ctx_fields)
    handler = make_handler(ctx.action, fn)
    pool = DaemonPool(1, name="baton-test-handler")
    try:
        outcome = await _run(handler, json.loads(json.dumps(payload)), ctx, pool, max_payload_bytes)
    finally:
        pool.shutdown()
    return Outcome(outcome.status, json.loads(outcome.output_json), outcome.error, beats.count)
