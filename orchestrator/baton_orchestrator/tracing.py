"""The orchestrator's OpenTelemetry spans (R2.8): one trace per run, across the workers, over Kafka.

baton.trigger <workflow> (SERVER) starts a run's trace and its context is stored on the run row; every job
attempt gets a baton.dispatch <step> span (PRODUCER) whose context the job's `traceparent` header carries;
the worker's handle span comes back on the result, and applying it records baton.result <step> (CONSUMER).

Off unless `configure()` (the server's start) or `install()` (tests) set a provider: `TRACER` is then None
and every hot-path caller checks that one global before doing any span work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from .engine.apply import Applied
    from .engine.writes import JobSpec

SERVICE_NAME = "baton-orchestrator"
TRACER: Tracer | None = None
_provider: TracerProvider | None = None
# The W3C propagator itself, never the global one (which may be a no-op): the headers are part of the protocol.
_W3C = TraceContextTextMapPropagator()
# W3C version 00 is 55 characters; later versions may append fields. Anything longer is not a header we honour.
_MAX_HEADER = 512


def configure(service_name: str = SERVICE_NAME) -> bool:
    """From the environment (BATON_TRACE_DIR: OTLP JSON lines files; OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/HTTP).
    With neither set nothing is configured and tracing stays off. True when it is on."""
    from baton.otel import configure_tracing

    provider = configure_tracing(service_name)
    install(provider)
    return provider is not None


def install(provider: TracerProvider | None) -> None:
    """Use `provider` for the orchestrator's spans (None: tracing off)."""
    global TRACER, _provider
    _provider = provider
    TRACER = provider.get_tracer("baton", __version__) if provider is not None else None


def shutdown() -> None:
    """Flush and stop the configured provider (the server's stop)."""
    if _provider is not None:
        _provider.shutdown()
    install(None)


def parse(traceparent: str | bytes | None, tracestate: str | bytes | None = None) -> Context | None:
    """The context a `traceparent` names; None for anything malformed (any bytes: never an error)."""
    if not traceparent or len(traceparent) > _MAX_HEADER:
        return None
    carrier = {"traceparent": _text(traceparent)}
    if tracestate and len(tracestate) <= _MAX_HEADER:
        carrier["tracestate"] = _text(tracestate)
    ctx = _W3C.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def header(span: Span) -> tuple[str, str | None]:
    """(traceparent, tracestate or None) naming `span`, written by the W3C propagator."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, trace.set_span_in_context(span))
    return carrier["traceparent"], carrier.get("tracestate") or None


def header_of(headers: Iterable[tuple[str, bytes]] | None, name: str = "traceparent") -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


def start_trigger(tracer: Tracer, workflow_id: str, traceparent: str | bytes | None, tracestate: Any = None) -> Span:
    """A run's root span in Baton, continuing the caller's trace when its header is valid."""
    return tracer.start_span(
        f"baton.trigger {workflow_id}",
        context=parse(traceparent, tracestate),
        kind=SpanKind.SERVER,
        attributes={"baton.workflow_id": workflow_id},
    )


def start_dispatch(tracer: Tracer, job: JobSpec, job_id: str, topic: str) -> tuple[Span, list[tuple[str, bytes]]]:
    """The span of one job attempt (ended once Kafka acknowledged the job) and the headers that name it."""
    span = tracer.start_span(
        f"baton.dispatch {job.step}",
        context=parse(job.traceparent) or Context(),  # no stored context: a root, not whatever is current
        kind=SpanKind.PRODUCER,
        attributes={
            "baton.run_id": job.run_id,
            "baton.workflow_id": job.workflow_id,
            "baton.step": job.step,
            "baton.attempt": job.attempt,
            "baton.action": job.action,
            "baton.job_id": job_id,
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
        },
    )
    parent, state = header(span)
    headers = [("traceparent", parent.encode())]
    if state:
        headers.append(("tracestate", state.encode()))
    return span, headers


def end_dispatch(span: Span | None, error: Exception | None = None) -> None:
    if span is None:
        return
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, f"not published yet, left for the relay: {error}"))
    span.end()


def record_results(tracer: Tracer, applied: Applied, topic: str, start_ns: int) -> None:
    """One baton.result span per outcome the batch applied (or ignored), after its transaction committed.

    Parent: the result record's traceparent (the worker's handle span), else the run's trigger span."""
    end_ns = time.time_ns()
    for outcome, status in applied.applied:
        row = applied.rows.get(outcome.job_id)
        run_tp = row.traceparent if row is not None else None
        attrs: dict[str, Any] = {
            "baton.run_id": outcome.run_id,
            "baton.step": outcome.step,
            "baton.job_id": outcome.job_id,
            "baton.outcome": outcome.status.lower(),
            "baton.step_status": status.lower(),
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
        }
        if row is not None:
            attrs.update(
                {"baton.workflow_id": row.workflow_id, "baton.attempt": row.attempt, "baton.action": row.action}
            )
        if outcome.error:
            attrs["baton.error_type"] = str(outcome.error.get("type") or "")
        ctx = parse(outcome.traceparent) or parse(run_tp) or Context()
        _emit(tracer, f"baton.result {outcome.step}", ctx, attrs, start_ns, end_ns)
    for outcome in applied.ignored:
        # A late or duplicate result: shown in its worker's trace, so a retried attempt's story is complete.
        late = parse(outcome.traceparent)
        if late is not None:
            attrs = {"baton.run_id": outcome.run_id, "baton.step": outcome.step, "baton.job_id": outcome.job_id}
            _emit(tracer, f"baton.result {outcome.step}", late, {**attrs, "baton.outcome": "ignored"}, start_ns, end_ns)


def _emit(tracer: Tracer, name: str, ctx: Context | None, attrs: dict[str, Any], start: int, end: int) -> None:
    span = tracer.start_span(name, context=ctx, kind=SpanKind.CONSUMER, attributes=attrs, start_time=start)
    span.end(end_time=end)


class TraceIdsFilter(logging.Filter):
    """Adds trace_id/span_id to records logged while a span is active (for the JSON log lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        return True
