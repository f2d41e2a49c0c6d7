"""baton.otel: the OTLP/JSON-lines file exporter and configure_tracing (no Kafka needed)."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from baton import otel
from baton.otel import JsonLinesSpanExporter, configure_tracing

HEX32, HEX16, DECIMAL = re.compile(r"^[0-9a-f]{32}$"), re.compile(r"^[0-9a-f]{16}$"), re.compile(r"^[0-9]+$")


def _provider(path: Path) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "baton-test"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    return provider


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _attrs(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["key"]: item["value"] for item in items}


def test_spans_are_written_as_otlp_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "spans.jsonl"  # the directory is created
    provider = _provider(path)
    tracer = provider.get_tracer("baton", "0.1.0")
    with tracer.start_as_current_span("baton.handle py.echo", kind=SpanKind.CONSUMER) as parent:
        parent.set_attributes(
            {
                "baton.step": "echo",
                "baton.attempt": 2,
                "ok": True,
                "ratio": 0.5,
                "tags": ["a", "b"],
                "nan": float("nan"),
            }
        )
        with tracer.start_as_current_span("user.work") as child:
            child.add_event("progress", {"done": 3})
        try:
            raise ValueError("boom")
        except ValueError as exc:
            parent.record_exception(exc)
            parent.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()

    lines = _lines(path)
    assert len(lines) == 2  # SimpleSpanProcessor: one export call (and so one line) per span
    child_req, parent_req = lines
    (resource_spans,) = parent_req["resourceSpans"]
    assert _attrs(resource_spans["resource"]["attributes"])["service.name"] == {"stringValue": "baton-test"}
    (scope_spans,) = resource_spans["scopeSpans"]
    assert scope_spans["scope"] == {"name": "baton", "version": "0.1.0"}
    (span,) = scope_spans["spans"]
    assert HEX32.match(span["traceId"]) and HEX16.match(span["spanId"])
    assert "parentSpanId" not in span  # a root span
    assert span["name"] == "baton.handle py.echo" and span["kind"] == 5
    assert DECIMAL.match(span["startTimeUnixNano"]) and DECIMAL.match(span["endTimeUnixNano"])
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
    assert _attrs(span["attributes"]) == {
        "baton.step": {"stringValue": "echo"},
        "baton.attempt": {"intValue": "2"},
        "ok": {"boolValue": True},
        "ratio": {"doubleValue": 0.5},
        "tags": {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}},
        "nan": {"doubleValue": "NaN"},
    }
    assert span["status"] == {"code": 2, "message": "boom"}
    (event,) = span["events"]
    assert event["name"] == "exception" and DECIMAL.match(event["timeUnixNano"])
    assert _attrs(event["attributes"])["exception.type"] == {"stringValue": "ValueError"}

    child_span = child_req["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert child_span["traceId"] == span["traceId"] and child_span["parentSpanId"] == span["spanId"]
    assert child_span["kind"] == 1 and child_span["status"] == {}
    assert _attrs(child_span["events"][0]["attributes"]) == {"done": {"intValue": "3"}}


def test_one_export_call_is_one_line_grouped_by_scope(tmp_path: Path) -> None:
    provider = TracerProvider()
    spans = []
    for scope in ("baton", "baton", "user"):
        span = provider.get_tracer(scope).start_span(f"s-{scope}")
        span.end()
        spans.append(span)
    exporter = JsonLinesSpanExporter(tmp_path / "x.jsonl")
    exporter.export(spans)  # type: ignore[arg-type]  # SDK spans are ReadableSpans
    (line,) = _lines(tmp_path / "x.jsonl")
    scopes = line["resourceSpans"][0]["scopeSpans"]
    assert [(s["scope"]["name"], len(s["spans"])) for s in scopes] == [("baton", 2), ("user", 1)]


def test_concurrent_exports_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    provider = _provider(path)
    tracer = provider.get_tracer("baton")

    def burst(n: int) -> None:
        for i in range(50):
            with tracer.start_as_current_span(f"t{n}-{i}") as span:
                span.set_attribute("blob", "x" * 2000)

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    names = {line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] for line in _lines(path)}
    assert len(names) == 200


def test_export_after_shutdown_fails_quietly(tmp_path: Path) -> None:
    exporter = JsonLinesSpanExporter(tmp_path / "s.jsonl")
    exporter.shutdown()
    span = TracerProvider().get_tracer("t").start_span("late")
    span.end()
    assert exporter.export([span]).name == "FAILURE"  # type: ignore[list-item]
    assert not (tmp_path / "s.jsonl").exists()


def test_configure_tracing_without_env_configures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(otel.TRACE_DIR_ENV, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    before = trace.get_tracer_provider()
    assert configure_tracing("baton-worker-python") is None
    assert trace.get_tracer_provider() is before


def test_configure_tracing_writes_service_pid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(otel.TRACE_DIR_ENV, str(tmp_path / "traces"))
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    # The global provider can be set once per process: keep this test's from leaking into the others.
    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: None)
    provider = configure_tracing("baton-worker/python")
    assert provider is not None
    with provider.get_tracer("baton").start_as_current_span("hello"):
        pass
    provider.shutdown()  # flushes the batch processor
    path = tmp_path / "traces" / f"baton-worker_python-{os.getpid()}.jsonl"
    (line,) = _lines(path)
    resource = line["resourceSpans"][0]["resource"]
    assert _attrs(resource["attributes"])["service.name"] == {"stringValue": "baton-worker/python"}
    assert line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == "hello"


def test_configure_tracing_with_otlp_endpoint_adds_the_http_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(otel.TRACE_DIR_ENV, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: export fails
    set_providers: list[object] = []
    monkeypatch.setattr(trace, "set_tracer_provider", set_providers.append)
    provider = configure_tracing("svc")
    assert provider is not None and set_providers == [provider]
    processors = provider._active_span_processor._span_processors
    exporters = [type(p.span_exporter).__name__ for p in processors]  # type: ignore[attr-defined]
    assert exporters == ["OTLPSpanExporter"]
    provider.shutdown()
