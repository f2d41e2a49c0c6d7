"""Signature dispatch, error mapping and serialisation, through baton.testing (no Kafka)."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from baton import ConfigError, JobContext, NonRetryableError, RetryLater, SerializationError, Worker
from baton._dispatch import bounded_text
from baton.testing import make_context, run_handler


async def test_payload_only_handler_gets_payload_when_it_takes_one_argument() -> None:
    outcome = await run_handler(lambda payload: f"Processed: {payload}", "Hello World")
    assert (outcome.status, outcome.output, outcome.error) == ("COMPLETED", "Processed: Hello World", None)


async def test_ctx_is_passed_when_handler_takes_two_arguments() -> None:
    def handler(payload: Any, ctx: JobContext) -> dict[str, Any]:
        return {"p": payload, "job": ctx.job_id, "key": ctx.idempotency_key, "attempt": ctx.attempt}

    outcome = await run_handler(handler, [1], job_id="j9", run_id="r1", step="s", attempt=2)
    assert outcome.output == {"p": [1], "job": "j9", "key": "r1:s", "attempt": 2}


async def test_ctx_is_passed_when_handler_takes_varargs() -> None:
    outcome = await run_handler(lambda *args: len(args), None)
    assert outcome.output == 2


async def test_async_handler_runs_on_the_loop_when_it_is_a_coroutine_function() -> None:
    async def handler(payload: int, ctx: JobContext) -> int:
        await asyncio.sleep(0)
        assert threading.current_thread() is threading.main_thread()
        return payload + 1

    assert (await run_handler(handler, 41)).output == 42


async def test_sync_handler_runs_in_a_thread_when_it_is_a_plain_function() -> None:
    outcome = await run_handler(lambda _: threading.current_thread() is threading.main_thread(), None)
    assert outcome.output is False


async def test_callable_object_with_async_call_is_awaited() -> None:
    class Handler:
        async def __call__(self, payload: str) -> str:
            return payload.upper()

    assert (await run_handler(Handler(), "x")).output == "X"


async def test_none_return_becomes_null_output() -> None:
    outcome = await run_handler(lambda _: None, "x")
    assert (outcome.status, outcome.output) == ("COMPLETED", None)


async def test_non_retryable_error_maps_to_non_retryable_failure() -> None:
    def handler(payload: Any) -> None:
        raise NonRetryableError("card declined")

    outcome = await run_handler(handler, None)
    assert outcome.status == "FAILED"
    assert outcome.error is not None
    assert outcome.error["type"] == "NonRetryableError"
    assert outcome.error["message"] == "card declined"
    assert outcome.error["retryable"] is False
    assert "card declined" in outcome.error["stacktrace"]


async def test_subclass_of_non_retryable_error_reports_its_own_name() -> None:
    class CardDeclined(NonRetryableError):
        pass

    async def handler(payload: Any) -> None:
        raise CardDeclined("no")

    outcome = await run_handler(handler, None)
    assert outcome.error is not None
    assert (outcome.error["type"], outcome.error["retryable"]) == ("CardDeclined", False)


async def test_retry_later_maps_to_retryable_failure_with_delay_in_ms() -> None:
    def handler(payload: Any) -> None:
        raise RetryLater(2.5)

    outcome = await run_handler(handler, None)
    assert outcome.error == {
        "type": "RetryLater",
        "message": "retry in 2.5 s",
        "stacktrace": None,
        "retryable": True,
        "retry_after_ms": 2500,
    }


@pytest.mark.parametrize("delay", [-1, math.nan, "5", True])
def test_retry_later_rejects_delay_when_not_a_non_negative_number(delay: Any) -> None:
    with pytest.raises(ValueError, match="delay"):
        RetryLater(delay)


async def test_any_other_exception_maps_to_retryable_failure_with_stack_trace() -> None:
    def explode(payload: Any) -> None:
        raise KeyError("missing")

    outcome = await run_handler(explode, None)
    assert outcome.error is not None
    assert outcome.error["type"] == "KeyError"
    assert outcome.error["message"] == "'missing'"
    assert outcome.error["retryable"] is True
    assert "in explode" in outcome.error["stacktrace"]


@pytest.mark.parametrize("value", [{1, 2}, object(), math.inf, {"a": b"bytes"}])
async def test_unserialisable_output_fails_for_good_when_not_json(value: Any) -> None:
    outcome = await run_handler(lambda _: value, None)
    assert outcome.status == "FAILED"
    assert outcome.error is not None
    assert (outcome.error["type"], outcome.error["retryable"]) == ("SerializationError", False)
    assert SerializationError.code == "BATON_SERIALIZATION"


async def test_oversize_output_fails_for_good_when_over_max_payload_bytes() -> None:
    outcome = await run_handler(lambda _: "x" * 100, None, max_payload_bytes=50)
    assert outcome.status == "FAILED"
    assert outcome.error is not None
    assert (outcome.error["type"], outcome.error["retryable"]) == ("PayloadTooLarge", False)
    assert "102 bytes" in outcome.error["message"]


async def test_output_at_the_limit_is_completed() -> None:
    outcome = await run_handler(lambda _: "x" * 48, None, max_payload_bytes=50)
    assert outcome.status == "COMPLETED"


async def test_heartbeat_is_counted_and_moves_deadline_when_timeout_is_known() -> None:
    seen: list[datetime] = []

    def handler(payload: Any, ctx: JobContext) -> None:
        seen.append(ctx.deadline)
        ctx.heartbeat()
        seen.append(ctx.deadline)

    past = datetime.now(UTC) - timedelta(seconds=5)
    outcome = await run_handler(handler, None, timeout_ms=60_000, deadline=past)
    assert outcome.heartbeats == 1
    assert seen[0] == past
    assert seen[1] > datetime.now(UTC) + timedelta(seconds=50)


def test_context_exposes_job_fields_and_a_logger_with_them() -> None:
    ctx = make_context(job_id="j", run_id="r", workflow_id="w", step="s", action="a", attempt=3, max_attempts=5)
    assert (ctx.job_id, ctx.run_id, ctx.workflow_id, ctx.step, ctx.action) == ("j", "r", "w", "s", "a")
    assert (ctx.attempt, ctx.max_attempts, ctx.idempotency_key) == (3, 5, "r:s")
    assert ctx.logger.extra == {"job_id": "j", "run_id": "r", "step": "s", "attempt": 3, "action": "a"}
    with pytest.raises(AttributeError):
        ctx.job_id = "other"  # type: ignore[misc]


def test_register_rejects_handler_when_it_takes_no_argument() -> None:
    with pytest.raises(ConfigError, match="must accept"):
        Worker("h:1").register("a", lambda: None)


class _Custom(BaseException):
    """Neither an Exception nor one of Python's own BaseExceptions."""


@pytest.mark.parametrize("raised", [SystemExit(2), KeyboardInterrupt(), asyncio.CancelledError(), _Custom("x")])
async def test_base_exception_fails_the_job_when_a_sync_or_async_handler_raises_it(raised: BaseException) -> None:
    def sync_handler(payload: Any) -> None:
        raise raised

    async def async_handler(payload: Any) -> None:
        raise raised

    for handler in (sync_handler, async_handler):
        outcome = await run_handler(handler, None)
        assert outcome.status == "FAILED" and outcome.error is not None
        assert (outcome.error["type"], outcome.error["retryable"]) == (type(raised).__name__, True)


async def test_message_and_stacktrace_are_cut_to_their_bounds_when_too_long() -> None:
    def deep(n: int) -> None:
        if n:
            deep(n - 1)
        raise ValueError("x" * 5000 + "\udcff")

    outcome = await run_handler(lambda _: deep(300), None)
    assert outcome.error is not None
    message, trace = outcome.error["message"], outcome.error["stacktrace"]
    assert len(message.encode()) <= 4096 and message.endswith(" …[cut 926 bytes]")
    assert message.startswith("x" * 4000)
    assert "[Previous line repeated" in trace  # Python folds the recursion itself

    def huge(payload: Any) -> None:
        raise ValueError("y" * 20_000)

    trace = (await run_handler(huge, None)).error["stacktrace"]  # type: ignore[index]
    assert len(trace.encode()) <= 16_384 and trace.startswith("Traceback") and trace.endswith(" bytes]")


def test_bounded_text_replaces_lone_surrogates_and_cuts_at_a_character_boundary() -> None:
    assert bounded_text("a\ud800b\udcff", 100) == "a\ufffdb\ufffd"
    cut = bounded_text("€" * 100, 40)  # 3 bytes each
    assert cut == "€" * 7 + " …[cut 279 bytes]" and len(cut.encode()) <= 40


async def test_output_with_a_lone_surrogate_fails_with_serialization_error() -> None:
    outcome = await run_handler(lambda _: {"text": "bad \udcff"}, None)
    assert outcome.status == "FAILED" and outcome.error is not None
    assert (outcome.error["type"], outcome.error["retryable"]) == ("SerializationError", False)
    assert outcome.error["message"].encode()  # the error itself encodes


async def test_exception_whose_str_raises_still_fails_the_job_with_its_type() -> None:
    class Opaque(Exception):
        def __str__(self) -> str:
            raise SystemExit("nope")

    def handler(payload: Any) -> None:
        raise Opaque

    outcome = await run_handler(handler, None)
    assert outcome.error is not None
    assert (outcome.error["type"], outcome.error["message"]) == ("Opaque", "<unprintable Opaque>")
