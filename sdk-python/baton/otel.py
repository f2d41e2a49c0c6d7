"""Application-side tracing setup: the OpenTelemetry SDK, exporters, and an OTLP/JSON-lines file exporter.

Needs the ``otel`` extra (``pip install 'baton-worker[otel]'``). The SDK library itself (``baton``) only
uses the OpenTelemetry API and never imports this module: applications (the example workers, the
orchestrator) call :func:`configure_tracing` once at start and shut the returned provider down on exit.

Environment (read by :func:`configure_tracing`):

- ``BATON_TRACE_DIR``: write finished spans to ``$BATON_TRACE_DIR/<service>-<pid>.jsonl``, one OTLP/JSON
  ``ExportTraceServiceRequest`` per line, as the OpenTelemetry Collector's file exporter does.
- ``OTEL_EXPORTER_OTLP_ENDPOINT``: also export over OTLP/HTTP (the standard exporter, which reads the
  other ``OTEL_EXPORTER_OTLP_*`` variables itself).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.util.types import AttributeValue

__all__ = ["TRACE_DIR_ENV", "JsonLinesSpanExporter", "configure_tracing", "encode_spans"]

TRACE_DIR_ENV = "BATON_TRACE_DIR"
_OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
# A file export's batches go out at least this often, so `make demo` sees spans while a process runs.
_FILE_EXPORT_DELAY_MS = 1000
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


class JsonLinesSpanExporter(SpanExporter):
    """Appends one OTLP/JSON ``ExportTraceServiceRequest`` line per export call to ``path``.

    Thread-safe: one lock serialises the appends, so lines of concurrent exports never interleave.
    The parent directory is created when missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        line = json.dumps(encode_spans(spans), separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with self._path.open("a", encoding="utf-8") as out:
                    out.write(line)
            except OSError:
                return SpanExportResult.FAILURE  # the processor logs a failed export; the app goes on
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written (and its file closed) before export() returns


def configure_tracing(service_name: str) -> TracerProvider | None:
    """Configure the global tracer provider from the environment; ``None`` (nothing configured) when
    neither ``BATON_TRACE_DIR`` nor ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

    The provider is set as the global one (possible once per process) and returned: call its
    ``shutdown()`` on exit so the last spans are flushed (it also does so at interpreter exit).
    """
    trace_dir = os.environ.get(TRACE_DIR_ENV, "").strip()
    endpoint = os.environ.get(_OTLP_ENDPOINT_ENV, "").strip()
    if not trace_dir and not endpoint:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if trace_dir:
        exporter = JsonLinesSpanExporter(Path(trace_dir) / trace_file_name(service_name))
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=_FILE_EXPORT_DELAY_MS))
    if endpoint:
        # Imported only when used: it brings protobuf and an HTTP client along.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def trace_file_name(service_name: str) -> str:
    """``<service>-<pid>.jsonl``, with characters unsafe in a file name replaced by ``_``."""
    safe = _UNSAFE_FILE_CHARS.sub("_", service_name) or "service"
    return f"{safe}-{os.getpid()}.jsonl"


# ------------------------------------------------------------------ OTLP/JSON encoding


def encode_spans(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` in OTLP/JSON: spans grouped by resource, then by scope;
    ids in lowercase hex, 64-bit integers (times, ``intValue``) as decimal strings."""
    by_resource: dict[int, tuple[Resource, dict[tuple[str, str, str], list[ReadableSpan]]]] = {}
    for span in spans:
        resource_key = id(span.resource)
        _, scopes = by_resource.setdefault(resource_key, (span.resource, {}))
        scope = span.instrumentation_scope
        scope_key = (scope.name, scope.version or "", scope.schema_url or "") if scope else ("", "", "")
        scopes.setdefault(scope_key, []).append(span)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.attributes)},
                "scopeSpans": [_scope_spans(key, group) for key, group in scopes.items()],
            }
            for resource, scopes in by_resource.values()
        ]
    }


def _scope_spans(key: tuple[str, str, str], spans: list[ReadableSpan]) -> dict[str, Any]:
    name, version, schema_url = key
    scope: dict[str, Any] = {"name": name}
    if version:
        scope["version"] = version
    out: dict[str, Any] = {"scope": scope, "spans": [_span(span) for span in spans]}
    if schema_url:
        out["schemaUrl"] = schema_url
    return out


def _span(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None  # an SDK span always has one
    out: dict[str, Any] = {"traceId": _trace_id(context.trace_id), "spanId": _span_id(context.span_id)}
    if context.trace_state:
        out["traceState"] = context.trace_state.to_header()
    if span.parent is not None and span.parent.span_id:
        out["parentSpanId"] = _span_id(span.parent.span_id)
    out["flags"] = int(context.trace_flags)
    out["name"] = span.name
    out["kind"] = span.kind.value + 1  # the API's SpanKind starts at INTERNAL = 0, OTLP's at 1
    out["startTimeUnixNano"] = str(span.start_time or 0)
    out["endTimeUnixNano"] = str(span.end_time or 0)
    out["attributes"] = _attributes(span.attributes)
    if span.events:
        out["events"] = [_event(event) for event in span.events]
    if span.links:
        out["links"] = [
            {
                "traceId": _trace_id(link.context.trace_id),
                "spanId": _span_id(link.context.span_id),
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
        ]
    out["status"] = _status(span)
    for field, count in (
        ("droppedAttributesCount", span.dropped_attributes),
        ("droppedEventsCount", span.dropped_events),
        ("droppedLinksCount", span.dropped_links),
    ):
        if count:
            out[field] = count
    return out


def _status(span: ReadableSpan) -> dict[str, Any]:
    status: dict[str, Any] = {}
    code = span.status.status_code.value  # UNSET 0, OK 1, ERROR 2: the same numbers as OTLP
    if code:
        status["code"] = code
    if span.status.description:
        status["message"] = span.status.description
    return status


def _event(event: Event) -> dict[str, Any]:
    return {"timeUnixNano": str(event.timestamp), "name": event.name, "attributes": _attributes(event.attributes)}


def _attributes(attributes: Mapping[str, AttributeValue] | None) -> list[dict[str, Any]]:
    return [{"key": key, "value": _any_value(value)} for key, value in (attributes or {}).items()]


def _any_value(value: object) -> dict[str, Any]:
    # bool before int: True is an int in Python, but a boolValue in OTLP.
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        # proto3 JSON spells the non-finite doubles as strings; json.dumps would write bare NaN.
        return {"doubleValue": value if math.isfinite(value) else _NON_FINITE[repr(value)]}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"stringValue": value.decode("utf-8", errors="replace")}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [_any_value(item) for item in value]}}
    return {"stringValue": str(value)}


def _trace_id(value: int) -> str:
    return f"{value:032x}"


def _span_id(value: int) -> str:
    return f"{value:016x}"
