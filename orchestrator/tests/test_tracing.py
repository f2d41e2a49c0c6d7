"""R2.8 tracing in the orchestrator, against real Kafka and PostgreSQL: trigger, dispatch and result spans
(an in-memory exporter), the job's `traceparent` header, retries and DLQ redrive staying in the run's trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from baton_orchestrator import tracing

from .conftest import RawWorker, eventually, make_settings

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def ids(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def parent_id(span: ReadableSpan) -> str | None:
    return format(span.parent.span_id, "016x") if span.parent else None


def header(rec: Any, name: str = "traceparent") -> str | None:
    return next((v.decode() for k, v in rec.headers if k == name), None)


def named_by(traceparent: str | None) -> tuple[str, str]:
    """(trace id, span id) of a W3C header (the flags vary: the SDK may set the random-trace-id bit)."""
    assert traceparent is not None
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id


async def stored_traceparent(client: Any, run_id: str) -> str | None:
    row = await client.app.state.core.db.fetchone("SELECT traceparent FROM runs WHERE id = %(id)s", {"id": run_id})
    return row.traceparent


async def trigger(client: Any, workflow: str, traceparent: Any = None, key: str | None = None) -> Any:
    headers = {} if traceparent is None else {"traceparent": traceparent}
    if key:
        headers["Idempotency-Key"] = key
    return await client.http.post(f"/workflow/{workflow}/trigger", json={"input": 1}, headers=headers)


async def test_trigger_continues_a_valid_caller_traceparent_and_stores_its_span_on_the_run(client, spans):
    await client.define({"id": "one", "steps": [{"action": "t.one"}]})
    resp = await trigger(client, "one", CALLER)
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    [span] = named(spans, "baton.trigger")
    assert span.name == "baton.trigger one" and span.kind is SpanKind.SERVER
    assert ids(span)[0] == CALLER_TRACE and parent_id(span) == CALLER_SPAN
    assert span.attributes == {"baton.workflow_id": "one", "baton.run_id": run_id}
    assert named_by(await stored_traceparent(client, run_id)) == ids(span)


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "00-" + "0" * 32 + "-" + "0" * 16 + "-01",  # all-zero ids are invalid
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\x00",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169\x003331-01",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-" + "x" * 1000,
        "x" * 1000,
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # upper case is not W3C
        "",
    ],
)
async def test_a_malformed_traceparent_is_ignored_and_the_trigger_starts_a_new_trace(client, spans, bad):
    await client.define({"id": "one", "steps": [{"action": "t.one"}]})
    resp = await trigger(client, "one", bad.encode("latin-1"))
    assert resp.status_code == 201, resp.text
    [span] = named(spans, "baton.trigger")
    assert span.parent is None and ids(span)[0] != CALLER_TRACE
    assert span.attributes is not None and span.attributes["baton.run_id"] == resp.json()["run_id"]


async def test_non_utf8_traceparent_bytes_are_ignored(client, spans):
    await client.define({"id": "one", "steps": [{"action": "t.one"}]})
    resp = await trigger(client, "one", b"00-\xff\xfe-\xc3(-01")
    assert resp.status_code == 201, resp.text
    assert named(spans, "baton.trigger")[0].parent is None


async def test_without_a_caller_traceparent_the_trigger_span_is_a_root(client, spans):
    await client.define({"id": "one", "steps": [{"action": "t.one"}]})
    resp = await trigger(client, "one")
    assert resp.status_code == 201
    [span] = named(spans, "baton.trigger")
    assert span.parent is None


async def test_an_idempotent_replay_makes_no_new_trigger_span(client, spans):
    await client.define({"id": "one", "steps": [{"action": "t.one"}]})
    first = await trigger(client, "one", key="k-1")
    again = await trigger(client, "one", CALLER, key="k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert len(named(spans, "baton.trigger")) == 1


async def test_job_carries_a_dispatch_span_of_the_trigger_and_the_result_span_is_the_workers_child(
    client, raw_worker, settings, spans
):
    await client.define({"id": "two", "steps": [{"name": "a", "action": "t.a"}, {"name": "b", "action": "t.b"}]})
    handle = TracerProvider().get_tracer("test-worker")
    async with raw_worker({"t.a": lambda j: RawWorker.NO_REPLY, "t.b": lambda j: "b"}) as worker:
        run_id = (await trigger(client, "two", CALLER)).json()["run_id"]
        await eventually(lambda: _async(worker.records))
        [trigger_span] = named(spans, "baton.trigger")
        job_rec = worker.records[0]
        [dispatch] = await eventually(lambda: _async(named(spans, "baton.dispatch a")))
        assert named_by(header(job_rec)) == ids(dispatch)
        assert dispatch.kind is SpanKind.PRODUCER and parent_id(dispatch) == ids(trigger_span)[1]
        assert dict(dispatch.attributes or {}) == {
            "baton.run_id": run_id,
            "baton.workflow_id": "two",
            "baton.step": "a",
            "baton.attempt": 1,
            "baton.action": "t.a",
            "baton.job_id": worker.seen[0]["job_id"],
            "messaging.system": "kafka",
            "messaging.destination.name": settings.job_topic("t.a"),
        }
        # The worker's handle span, child of the dispatch span; its context rides on the result.
        span = handle.start_span("baton.handle t.a", context=tracing.parse(header(job_rec)))
        span.end()
        tp, _ = tracing.header(span)
        await worker.send_result(worker.seen[0], headers=[("traceparent", tp.encode())], status="COMPLETED", output=1)
        run = await client.wait_run(run_id)
    assert run["status"] == "COMPLETED"
    [result] = await eventually(lambda: _async(named(spans, "baton.result a")))
    assert result.kind is SpanKind.CONSUMER
    assert ids(result)[0] == CALLER_TRACE and parent_id(result) == format(span.get_span_context().span_id, "016x")
    attrs = dict(result.attributes or {})
    assert attrs["baton.outcome"] == "completed" and attrs["baton.attempt"] == 1 and attrs["baton.step"] == "a"
    assert attrs["messaging.destination.name"] == settings.results_topic
    # b's result came without a traceparent: its span falls back to the run's trigger span.
    [result_b] = await eventually(lambda: _async(named(spans, "baton.result b")))
    assert parent_id(result_b) == ids(trigger_span)[1]
    [dispatch_b] = named(spans, "baton.dispatch b")
    assert parent_id(dispatch_b) == ids(trigger_span)[1] and ids(dispatch_b)[0] == CALLER_TRACE


class Boom(Exception):
    pass


class Fatal(Exception):
    retryable = False


async def test_a_retried_step_has_one_dispatch_span_per_attempt_in_the_run_trace(client, raw_worker, spans):
    await client.define({"id": "flaky", "steps": [{"action": "t.flaky", "retry": {"initial_interval": 0.1}}]})

    def flaky(job: dict[str, Any]) -> Any:
        if job["attempt"] == 1:
            raise Boom("once")
        return "ok"

    async with raw_worker({"t.flaky": flaky}) as worker:
        run = await client.wait_run((await trigger(client, "flaky")).json()["run_id"])
        assert run["status"] == "COMPLETED"
        dispatches = await eventually(
            lambda: _async(len(named(spans, "baton.dispatch")) == 2 and named(spans, "baton.dispatch"))
        )
    [trigger_span] = named(spans, "baton.trigger")
    assert sorted((s.attributes or {})["baton.attempt"] for s in dispatches) == [1, 2]
    assert {ids(s)[0] for s in dispatches} == {ids(trigger_span)[0]}
    assert {parent_id(s) for s in dispatches} == {ids(trigger_span)[1]}
    assert [named_by(header(r)) for r in worker.records] == [ids(s) for s in dispatches]
    results = await eventually(lambda: _async(len(named(spans, "baton.result")) == 2 and named(spans, "baton.result")))
    assert [(s.attributes or {})["baton.outcome"] for s in results] == ["failed", "completed"]
    assert (results[0].attributes or {})["baton.error_type"] == "Boom"


async def test_a_redriven_dead_letter_is_dispatched_in_the_run_trace(client, raw_worker, spans):
    await client.define({"id": "fatal", "steps": [{"action": "t.fatal"}]})
    healthy = False

    def fatal(job: dict[str, Any]) -> Any:
        if not healthy:
            raise Fatal("card declined")
        return "paid"

    async with raw_worker({"t.fatal": fatal}):
        run_id = (await trigger(client, "fatal", CALLER)).json()["run_id"]
        assert (await client.wait_run(run_id))["status"] == "FAILED"
        [dead] = (await client.http.get("/dlq")).json()["items"]
        healthy = True
        assert (await client.http.post(f"/dlq/{dead['id']}/redrive")).status_code == 200
        assert (await client.wait_run(run_id))["status"] == "COMPLETED"
        dispatches = await eventually(
            lambda: _async(len(named(spans, "baton.dispatch")) == 2 and named(spans, "baton.dispatch"))
        )
    [trigger_span] = named(spans, "baton.trigger")
    assert [(s.attributes or {})["baton.attempt"] for s in dispatches] == [1, 2]
    assert {ids(s)[0] for s in dispatches} == {CALLER_TRACE}
    assert {parent_id(s) for s in dispatches} == {ids(trigger_span)[1]}


async def test_retry_run_dispatches_in_the_run_trace(client, raw_worker, spans):
    await client.define({"id": "once", "steps": [{"action": "t.once", "retry": {"max_retries": 0}}]})
    calls: list[int] = []

    def once(job: dict[str, Any]) -> Any:
        calls.append(job["attempt"])
        if len(calls) == 1:
            raise Boom("transient")
        return "done"

    async with raw_worker({"t.once": once}):
        run_id = (await trigger(client, "once")).json()["run_id"]
        assert (await client.wait_run(run_id))["status"] == "FAILED"
        assert (await client.http.post(f"/workflow/run/{run_id}/retry")).status_code == 200
        assert (await client.wait_run(run_id, statuses=("COMPLETED",)))["status"] == "COMPLETED"
        dispatches = await eventually(
            lambda: _async(len(named(spans, "baton.dispatch")) == 2 and named(spans, "baton.dispatch"))
        )
    [trigger_span] = named(spans, "baton.trigger")
    assert {parent_id(s) for s in dispatches} == {ids(trigger_span)[1]}


async def test_with_tracing_off_jobs_carry_no_traceparent_and_runs_store_none(client, raw_worker):
    assert tracing.TRACER is None
    await client.define({"id": "one", "steps": [{"action": "t.one"}]})
    async with raw_worker({"t.one": lambda j: "x"}) as worker:
        run_id = (await trigger(client, "one", CALLER)).json()["run_id"]
        assert (await client.wait_run(run_id))["status"] == "COMPLETED"
    assert [k for k, _ in worker.records[0].headers] == ["baton-job-id"]
    assert await stored_traceparent(client, run_id) is None


async def _async(value: Any) -> Any:
    return value


async def test_a_timed_out_attempt_has_a_result_span_under_the_run_trace(client, raw_worker, spans):
    await client.define(
        {"id": "slow", "steps": [{"action": "t.slow", "timeout": "300ms", "retry": {"max_retries": 0}}]}
    )
    async with raw_worker({"t.slow": lambda j: RawWorker.NO_REPLY}):
        run_id = (await trigger(client, "slow", CALLER)).json()["run_id"]
        assert (await client.wait_run(run_id))["status"] == "FAILED"
    [result] = await eventually(lambda: _async(named(spans, "baton.result")))
    [trigger_span] = named(spans, "baton.trigger")
    assert parent_id(result) == ids(trigger_span)[1] and ids(result)[0] == CALLER_TRACE
    attrs = dict(result.attributes or {})
    assert attrs["baton.outcome"] == "failed" and attrs["baton.error_type"] == "Timeout"
    assert attrs["baton.step_status"] == "dead_lettered"


async def test_a_kafka_trigger_continues_the_records_traceparent(start_app, services, unique, spans):
    s = make_settings(services, unique, kafka_trigger_poll_seconds=0.2)
    client = await start_app(s=s)
    await client.define({"id": "orders", "steps": [{"action": "k.one"}]})
    topic = f"{s.topic_prefix}orders"
    await client.app.state.core.topics.ensure([topic])
    body = {"id": "o", "workflow_id": "orders", "topic": topic, "group_id": f"t-{unique}-o", "start_from": "earliest"}
    assert (await client.http.post("/triggers/kafka", json=body)).status_code == 201
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"n": 1}', key=b"k-1", headers=[("traceparent", CALLER.encode())])
        await producer.send_and_wait(topic, b'{"n": 2}', key=b"k-2", headers=[("traceparent", b"\x00\xff junk")])
    finally:
        await producer.stop()
    triggers = await eventually(
        lambda: _async(len(named(spans, "baton.trigger")) == 2 and named(spans, "baton.trigger"))
    )
    assert ids(triggers[0])[0] == CALLER_TRACE and parent_id(triggers[0]) == CALLER_SPAN
    assert triggers[1].parent is None


async def test_a_job_the_relay_republishes_keeps_its_dispatch_spans_traceparent(
    start_app, services, unique, raw_worker, spans, monkeypatch
):
    from baton_orchestrator.engine import dispatch

    async def kafka_down(producer: Any, msgs: Any) -> Any:  # the hot path's sends fail: rows stay for the relay
        return [], [(m, ConnectionError("kafka down")) for m in msgs]

    monkeypatch.setattr(dispatch, "send_each", kafka_down)
    s = make_settings(services, unique, relay_grace_seconds=0.3)
    client = await start_app(s=s)
    await client.define({"id": "one", "steps": [{"action": "t.one"}]})
    async with raw_worker({"t.one": lambda j: "x"}, s=s) as worker:
        run_id = (await trigger(client, "one", CALLER)).json()["run_id"]
        assert (await client.wait_run(run_id))["status"] == "COMPLETED"
    [d] = named(spans, "baton.dispatch")
    assert d.status.description == "not published yet, left for the relay: kafka down"
    assert named_by(header(worker.records[0])) == ids(d) and ids(d)[0] == CALLER_TRACE


def test_log_lines_carry_the_active_spans_ids(spans):
    import json
    import logging

    from opentelemetry import trace as otel_trace

    from baton_orchestrator.cli.server import JsonFormatter

    def line(msg: str) -> dict[str, Any]:
        record = logging.LogRecord("baton", logging.INFO, __file__, 1, msg, None, None)
        assert tracing.TraceIdsFilter().filter(record)
        return json.loads(JsonFormatter().format(record))

    assert tracing.TRACER is not None
    span = tracing.start_trigger(tracing.TRACER, "wf", CALLER)
    with otel_trace.use_span(span, end_on_exit=True):
        inside = line("inside")
    assert (inside["trace_id"], inside["span_id"]) == ids(span)
    assert "trace_id" not in line("outside") and "span_id" not in line("outside")


async def test_a_step_held_by_flow_control_is_dispatched_in_its_runs_trace(client, raw_worker, spans):
    # limit 1 per key: the second run's step is held (WAITING) until the first finishes, then released by
    # the gate loop, which must still give its job a dispatch span under that run's trigger span.
    await client.define(
        {"id": "gated", "concurrency": {"key": "$.input.k", "limit": 1}, "steps": [{"action": "t.gated"}]}
    )
    runs = []
    for _ in range(2):
        answer = await client.http.post("/workflow/gated/trigger", json={"input": {"k": "same"}})
        runs.append(answer.json()["run_id"])
    held = (await client.http.get(f"/workflow/run/{runs[1]}")).json()["steps"][0]
    assert held["status"] == "WAITING"
    async with raw_worker({"t.gated": lambda job: "ok"}):
        for run_id in runs:
            assert (await client.wait_run(run_id))["status"] == "COMPLETED"
        dispatches = await eventually(
            lambda: _async(len(named(spans, "baton.dispatch")) == 2 and named(spans, "baton.dispatch"))
        )
    triggers = {(s.attributes or {})["baton.run_id"]: s for s in named(spans, "baton.trigger")}
    assert sorted((d.attributes or {})["baton.run_id"] for d in dispatches) == sorted(runs)
    for d in dispatches:
        run_span = triggers[(d.attributes or {})["baton.run_id"]]
        assert ids(d)[0] == ids(run_span)[0]
        assert parent_id(d) == ids(run_span)[1]
