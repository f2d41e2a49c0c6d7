"""R2.8 tracing against the real Kafka: the worker's baton.handle span, its parent, its attributes, the
result's traceparent, user spans nested inside handlers, failures, malformed headers, the no-op path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from baton import JobContext, NonRetryableError, RetryLater, Worker, __version__
from baton._deadline import timeout_error
from baton._dispatch import Outcome, error_from_exception
from baton._tracing import JobSpan, make_tracer
from baton.protocol import Job, WorkerInfo
from baton.testing import make_context

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
DISPATCH_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{DISPATCH_SPAN_ID}-01".encode()

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session")
def global_provider() -> TracerProvider:
    """The process's global tracer provider, set once (OpenTelemetry allows that only once)."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        return current
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider
    return provider


@pytest.fixture
def spans(global_provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _handle_span(exporter: InMemorySpanExporter, job_id: str) -> ReadableSpan:
    found = [
        s
        for s in exporter.get_finished_spans()
        if s.name.startswith("baton.handle ") and s.attributes and s.attributes.get("baton.job_id") == job_id
    ]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def _by_name(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def _hex(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def _traceparent(span: ReadableSpan) -> bytes:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}".encode()


async def _result_headers(kit: Any, count: int) -> dict[str, dict[str, bytes]]:
    """Each result's headers, by job id."""
    records = await kit.read("results", count)
    return {dict(r.headers)["baton-job-id"].decode(): dict(r.headers) for r in records}


async def test_handle_span_is_a_child_of_the_job_traceparent_with_the_contract_attributes(
    kit: Any, spans: InMemorySpanExporter
) -> None:
    worker = Worker(settings=kit.settings())
    seen: dict[str, Any] = {}

    @worker.action("py.sync")
    def sync_handler(payload: Any, ctx: JobContext) -> str:
        with trace.get_tracer("user").start_as_current_span("user.sync"):
            seen["sync"] = (ctx.trace_id, ctx.span_id)
        return "ok"

    @worker.action("py.async")
    async def async_handler(payload: Any) -> str:
        with trace.get_tracer("user").start_as_current_span("user.async"):
            await asyncio.sleep(0.01)
        return "ok"

    sync_job = kit.job("py.sync", 1, attempt=3, workflow_id="wf-trace")
    async_job = kit.job("py.async", 2)
    headers = [("traceparent", TRACEPARENT), ("tracestate", b"vendor=abc")]
    await kit.send_job(sync_job, headers=headers)
    await kit.send_job(async_job, headers=headers)
    assert (await worker.run_until_idle(timeout=30)).completed == 2

    handle = _handle_span(spans, sync_job["job_id"])
    assert handle.name == "baton.handle py.sync" and handle.kind is SpanKind.CONSUMER
    assert handle.parent is not None and handle.parent.is_remote
    assert f"{handle.parent.span_id:016x}" == DISPATCH_SPAN_ID
    trace_id, span_id = _hex(handle)
    assert trace_id == TRACE_ID
    assert handle.instrumentation_scope is not None
    assert (handle.instrumentation_scope.name, handle.instrumentation_scope.version) == ("baton", __version__)
    assert dict(handle.attributes or {}) == {
        "baton.run_id": sync_job["run_id"],
        "baton.workflow_id": "wf-trace",
        "baton.step": "py.sync",
        "baton.attempt": 3,
        "baton.action": "py.sync",
        "baton.job_id": sync_job["job_id"],
        "messaging.system": "kafka",
        "messaging.destination.name": f"{kit.prefix}jobs.py.sync",
        "baton.worker_id": worker.id,
        "baton.sdk.language": "python",
        "baton.sdk.version": __version__,
    }
    assert handle.status.status_code is StatusCode.UNSET
    assert seen["sync"] == (trace_id, span_id)  # the handler's ctx names the handle span

    for user_name, job in (("user.sync", sync_job), ("user.async", async_job)):
        user = _by_name(spans, user_name)
        parent = _handle_span(spans, job["job_id"])
        assert user.parent is not None and user.parent.span_id == parent.context.span_id
        assert _hex(user)[0] == TRACE_ID

    results = await _result_headers(kit, 2)
    for job in (sync_job, async_job):
        trace_id, span_id = _hex(_handle_span(spans, job["job_id"]))
        assert results[job["job_id"]]["traceparent"] == f"00-{trace_id}-{span_id}-01".encode()  # sampled, as given
        assert results[job["job_id"]]["tracestate"] == b"vendor=abc"


async def test_failures_are_recorded_on_the_handle_span_and_logged_with_its_ids(
    kit: Any, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(settings=kit.settings())

    @worker.action("fails")
    def fails(payload: Any) -> None:
        raise NonRetryableError("card declined")

    @worker.action("later")
    async def later(payload: Any) -> None:
        raise RetryLater(0.5, "not yet")

    failing, retrying = kit.job("fails", None), kit.job("later", None)
    await kit.send_job(failing)
    await kit.send_job(retrying)
    with caplog.at_level(logging.WARNING, logger="baton.job"):
        assert (await worker.run_until_idle(timeout=30)).failed == 2

    span = _handle_span(spans, failing["job_id"])
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "card declined"
    assert (span.attributes or {})["baton.error_type"] == "NonRetryableError"
    (event,) = span.events
    assert event.name == "exception"
    attributes = dict(event.attributes or {})
    assert attributes["exception.type"] == "NonRetryableError"
    assert attributes["exception.message"] == "card declined"
    assert "raise NonRetryableError" in str(attributes["exception.stacktrace"])

    retry = _handle_span(spans, retrying["job_id"])
    assert retry.status.status_code is StatusCode.UNSET and not retry.events
    assert (retry.attributes or {})["baton.outcome"] == "retry_later"
    assert "baton.error_type" not in (retry.attributes or {})

    trace_id, span_id = _hex(span)
    (record,) = [r for r in caplog.records if getattr(r, "job_id", None) == failing["job_id"]]
    assert (getattr(record, "trace_id", None), getattr(record, "span_id", None)) == (trace_id, span_id)


@pytest.mark.parametrize(
    "bad",
    [
        b"garbage",
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\x00",
        b"00-0af7651916cd43dd\xff\xfe8448eb211c80319c-b7ad6b7169203331-01",
        b"00-" + b"a" * 4000 + b"-b7ad6b7169203331-01",
        b"00-00000000000000000000000000000000-b7ad6b7169203331-01",
        b"",
    ],
    ids=["garbage", "nul", "non-utf8", "too-long", "zero-trace-id", "empty"],
)
async def test_a_malformed_traceparent_is_ignored_and_the_job_gets_a_root_span(
    kit: Any, spans: InMemorySpanExporter, bad: bytes
) -> None:
    worker = Worker(settings=kit.settings())
    worker.register("echo", lambda payload: payload)
    job = kit.job("echo", "hi")
    await kit.send_job(job, headers=[("traceparent", bad), ("tracestate", b"\xff\x00")])
    assert (await worker.run_until_idle(timeout=30)).completed == 1

    span = _handle_span(spans, job["job_id"])
    assert span.parent is None  # a new root, not a child of the worker's own context
    assert _hex(span)[0] != TRACE_ID
    headers = (await _result_headers(kit, 1))[job["job_id"]]
    assert headers["traceparent"] == _traceparent(span)
    assert "tracestate" not in headers


async def test_repeated_traceparent_headers_are_ignored(kit: Any, spans: InMemorySpanExporter) -> None:
    worker = Worker(settings=kit.settings())
    worker.register("echo", lambda payload: payload)
    job = kit.job("echo", "hi")
    other = b"00-11111111111111111111111111111111-2222222222222222-01"
    await kit.send_job(job, headers=[("traceparent", TRACEPARENT), ("traceparent", other)])
    assert (await worker.run_until_idle(timeout=30)).completed == 1
    assert _handle_span(spans, job["job_id"]).parent is None


async def test_with_a_no_op_tracer_the_job_context_is_still_current_and_forwarded(
    kit: Any, spans: InMemorySpanExporter
) -> None:
    worker = Worker(settings=kit.settings(), tracer_provider=NoOpTracerProvider())

    @worker.action("plain")
    def plain(payload: Any, ctx: JobContext) -> list[str | None]:
        with trace.get_tracer("user").start_as_current_span("user.inside"):  # the recording global one
            pass
        return [ctx.trace_id, ctx.span_id]

    traced, untraced = kit.job("plain", None), kit.job("plain", None)
    await kit.send_job(traced, headers=[("traceparent", TRACEPARENT), ("tracestate", b"k=v")])
    await kit.send_job(untraced, headers=[])
    assert (await worker.run_until_idle(timeout=30)).completed == 2

    assert not [s for s in spans.get_finished_spans() if s.name.startswith("baton.")]
    user_spans = [s for s in spans.get_finished_spans() if s.name == "user.inside"]
    parents = sorted((f"{s.parent.span_id:016x}" if s.parent else "root") for s in user_spans)
    assert parents == [DISPATCH_SPAN_ID, "root"]  # the traced job's user span joined the run's trace

    results = await _result_headers(kit, 2)
    assert results[traced["job_id"]]["traceparent"] == TRACEPARENT  # passed on untouched
    assert results[traced["job_id"]]["tracestate"] == b"k=v"
    assert "traceparent" not in results[untraced["job_id"]]
    outputs = {r["job_id"]: r["output"] for r in await kit.results(2)}
    assert outputs[traced["job_id"]] == [TRACE_ID, DISPATCH_SPAN_ID]
    assert outputs[untraced["job_id"]] == [None, None]


async def test_a_given_tracer_provider_is_used_instead_of_the_global_one(kit: Any, spans: InMemorySpanExporter) -> None:
    own = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(own))
    worker = Worker(settings=kit.settings(), tracer_provider=provider)
    worker.register("echo", lambda payload: payload)
    job = kit.job("echo", 1)
    await kit.send_job(job)
    assert (await worker.run_until_idle(timeout=30)).completed == 1
    assert _handle_span(own, job["job_id"]).parent is not None
    assert not [s for s in spans.get_finished_spans() if s.name.startswith("baton.")]
    provider.shutdown()


def _job_span(provider: TracerProvider, headers: list[tuple[str, Any]]) -> JobSpan:
    now = datetime.now(UTC)
    job = Job("j1", "r1", "wf", 1, "s", "a", 2, 4, None, now, now)
    return JobSpan(make_tracer(provider), job, "jobs.a", WorkerInfo("python-x", "python", __version__), headers)


def test_a_timeout_and_an_unprintable_exception_are_recorded_without_raising() -> None:
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hostile = Hostile()
    _job_span(provider, [("traceparent", TRACEPARENT)]).finish(
        Outcome("FAILED", error=error_from_exception(hostile), exception=hostile)
    )
    _job_span(provider, [("traceparent", None)]).finish(Outcome("FAILED", error=timeout_error(make_context(), 1.0)))
    unprintable, timed_out = exporter.get_finished_spans()
    assert unprintable.status.description == "<unprintable Hostile>"
    assert [e.name for e in unprintable.events] == ["exception"]
    assert (timed_out.attributes or {})["baton.error_type"] == "Timeout"
    assert timed_out.status.status_code is StatusCode.ERROR and timed_out.parent is None
    assert dict(timed_out.events[0].attributes or {})["exception.stacktrace"] == ""
