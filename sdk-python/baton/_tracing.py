"""The worker's OpenTelemetry spans (R2.8, docs/sdk-contract.md "Tracing"): one ``baton.handle <action>``
CONSUMER span per job, child of the job's ``traceparent``, current while the handler runs. Private.

Only the OpenTelemetry API is used: with no SDK configured the tracer is a no-op, and this module then
costs one header parse per job (the incoming context is still made current, so a user's own spans
inside the handler join the run's trace) and builds no attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import __version__
from ._dispatch import Outcome
from .errors import RetryLater
from .protocol import Job, WorkerInfo

__all__ = ["JobSpan", "make_tracer", "parent_context"]

Headers = list[tuple[str, bytes]]

# Not the global propagator, which may be a no-op: jobs and results always speak W3C trace context.
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = ("traceparent", "tracestate")
# Longer values are dropped before decoding: a valid traceparent is 55 characters, and W3C asks
# vendors to propagate at most 512 of tracestate.
_MAX_HEADER_BYTES = {"traceparent": 128, "tracestate": 512}


def make_tracer(provider: TracerProvider | None) -> Tracer:
    """The ``baton`` tracer of ``provider``, or of the global provider (resolved lazily when the
    application sets one after the worker was built)."""
    return trace.get_tracer("baton", __version__, tracer_provider=provider)


def parent_context(headers: Sequence[tuple[str, bytes | None]]) -> tuple[Context, Headers]:
    """The job's trace context from its ``traceparent``/``tracestate`` headers (an empty context when
    absent or malformed: any bytes, NUL, non-UTF-8, too long, repeated), and those headers as given
    when the traceparent is valid (else none)."""
    carrier: dict[str, str] = {}
    raw: Headers = []
    for key, value in headers:
        if key not in _TRACE_HEADERS:
            continue
        if key in carrier:
            return Context(), []  # W3C: several traceparent (or tracestate) fields are invalid
        text = _decode(key, value)
        if text is None:
            if key == "traceparent":
                return Context(), []
            continue  # a bad tracestate alone is dropped: the parent still counts
        assert value is not None
        carrier[key] = text
        raw.append((key, value))
    if "traceparent" not in carrier:
        return Context(), []
    context = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return Context(), []
    return context, raw


def _decode(key: str, value: bytes | None) -> str | None:
    if value is None or len(value) > _MAX_HEADER_BYTES[key]:
        return None
    try:
        return value.decode("ascii")  # both headers are printable ASCII by definition
    except UnicodeDecodeError:
        return None


class JobSpan:
    """The handle span of one job: started by the constructor, ended by :meth:`finish`.

    ``context`` is what the handler runs in; ``headers`` are the ``traceparent``/``tracestate`` to put
    on the job's results (the handle span's, or the job's own when the tracer is a no-op).
    """

    __slots__ = ("context", "headers", "span")

    def __init__(
        self, tracer: Tracer, job: Job, topic: str, worker: WorkerInfo, record_headers: Sequence[tuple[str, Any]]
    ) -> None:
        parent, incoming = parent_context(record_headers)
        self.span: Span = tracer.start_span(f"baton.handle {job.action}", context=parent, kind=SpanKind.CONSUMER)
        self.context = trace.set_span_in_context(self.span, parent)
        if not self.span.is_recording():
            self.headers = incoming  # nothing new to say: pass the job's context on untouched
            return
        self.span.set_attributes(
            {
                "baton.run_id": job.run_id,
                "baton.workflow_id": job.workflow_id,
                "baton.step": job.step,
                "baton.attempt": job.attempt,
                "baton.action": job.action,
                "baton.job_id": job.job_id,
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "baton.worker_id": worker.id,
                "baton.sdk.language": worker.language,
                "baton.sdk.version": worker.sdk_version,
            }
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=self.context)
        self.headers = [(key, value.encode()) for key, value in carrier.items()]

    @property
    def ids(self) -> tuple[str, str] | None:
        """``(trace_id, span_id)`` in lowercase hex of the current span, when there is a valid one."""
        span_context = self.span.get_span_context()
        if not span_context.is_valid:
            return None
        return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"

    def attach(self) -> Token[Context]:
        """Make the handle span current (until ``opentelemetry.context.detach`` of the returned token)."""
        return otel_context.attach(self.context)

    def finish(self, outcome: Outcome) -> None:
        """Record how the job ended (contract: ERROR + exception event + ``baton.error_type``; a
        ``RetryLater`` stays UNSET with ``baton.outcome=retry_later``) and end the span."""
        span, error = self.span, outcome.error
        if error is not None and span.is_recording():
            if isinstance(outcome.exception, RetryLater):
                span.set_attribute("baton.outcome", "retry_later")
            else:
                span.set_status(Status(StatusCode.ERROR, error["message"]))
                span.set_attribute("baton.error_type", error["type"])
                # What record_exception() would add, from the error object: its texts are already made
                # safe and bounded, and str() of a hostile exception may raise.
                span.add_event(
                    "exception",
                    {
                        "exception.type": error["type"],
                        "exception.message": error["message"],
                        "exception.stacktrace": error.get("stacktrace") or "",
                        "exception.escaped": "False",
                    },
                )
        span.end()
