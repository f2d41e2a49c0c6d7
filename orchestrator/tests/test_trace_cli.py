"""`baton trace`: reading OTLP JSON lines span files into a run's tree (pure: files in a tmp dir, no services)."""

from __future__ import annotations

import io
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from rich.console import Console
from typer.testing import CliRunner

from baton.otel import JsonLinesSpanExporter
from baton_orchestrator import tracing
from baton_orchestrator.cli import app
from baton_orchestrator.cli import trace as tree_cli

RUN = "6f1d1c2e-8c1a-4d0e-9a47-0d7c2b1a9e11"
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def provider(path: Path, service: str) -> TracerProvider:
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    return p


def write_run(directory: Path) -> None:
    """A run's spans as the orchestrator and a worker write them, in two files, plus another run's trace."""
    orch, worker = (
        provider(directory / "orch-1.jsonl", "baton-orchestrator"),
        provider(directory / "sub" / "w-2.jsonl", "baton-worker-node"),
    )
    o, w = orch.get_tracer("baton"), worker.get_tracer("baton")
    run = {"baton.run_id": RUN, "baton.workflow_id": "demo"}
    trig = o.start_span("baton.trigger demo", context=tracing.parse(CALLER), kind=SpanKind.SERVER, attributes=run)
    ctx = tracing.parse(tracing.header(trig)[0])
    for attempt in (1, 2):
        step = {**run, "baton.step": "enrich", "baton.attempt": attempt, "baton.action": "node.enrich"}
        disp = o.start_span("baton.dispatch enrich", context=ctx, kind=SpanKind.PRODUCER, attributes=step)
        disp.end()
        handle = w.start_span(
            "baton.handle node.enrich", context=tracing.parse(tracing.header(disp)[0]), kind=SpanKind.CONSUMER
        )
        handle.set_attributes(step)
        if attempt == 1:
            handle.set_attribute("baton.error_type", "Boom")
            handle.set_status(Status(StatusCode.ERROR, "enrichment service down"))
        handle.end()
        outcome = "failed" if attempt == 1 else "completed"
        result = o.start_span(
            "baton.result enrich",
            context=tracing.parse(tracing.header(handle)[0]),
            kind=SpanKind.CONSUMER,
            attributes={**step, "baton.outcome": outcome},
        )
        result.end()
    trig.end()
    o.start_span("baton.trigger other", attributes={"baton.run_id": "another-run"}).end()
    orch.shutdown()
    worker.shutdown()


def render(directory: Path, run_id: str = RUN) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = tree_cli.render(
        run_id, directory, Console(file=out, width=200, color_system=None), Console(file=err, width=200)
    )
    return code, out.getvalue(), err.getvalue()


def test_loads_every_file_and_builds_the_runs_tree_with_services_attributes_and_status(tmp_path):
    write_run(tmp_path)
    loaded = tree_cli.load(tmp_path)
    assert loaded.files == 2 and loaded.skipped == 0 and len(loaded.spans) == 8
    [spans] = tree_cli.run_traces(loaded.spans, RUN).values()
    assert len(spans) == 7 and spans[0].name == "baton.trigger demo"
    code, out, err = render(tmp_path)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("trace 0af7651916cd43dd8448eb211c80319c · 7 spans")
    assert "baton.trigger demo  baton-orchestrator" in lines[1] and "(parent not exported)" in lines[1]
    dispatch = [i for i, line in enumerate(lines) if "baton.dispatch enrich" in line]
    assert len(dispatch) == 2 and "attempt=1" in lines[dispatch[0]] and "attempt=2" in lines[dispatch[1]]
    handle = lines[dispatch[0] + 1]
    assert "baton.handle node.enrich  baton-worker-node" in handle
    assert "error_type=Boom" in handle and "ERROR enrichment service down" in handle
    assert "baton.result enrich" in lines[dispatch[0] + 2] and "outcome=failed" in lines[dispatch[0] + 2]
    assert "outcome=completed" in lines[dispatch[1] + 2]
    # Nesting: dispatch under trigger, handle under dispatch, result under handle.
    indent = [len(line) - len(line.lstrip("│├└─ ")) for line in lines[dispatch[0] : dispatch[0] + 3]]
    assert indent[0] < indent[1] < indent[2]
    assert "another-run" not in out and "baton.trigger other" not in out


def test_malformed_lines_and_spans_are_skipped_and_counted(tmp_path):
    write_run(tmp_path)
    with (tmp_path / "orch-1.jsonl").open("ab") as f:
        f.write(b"not json\n\xff\xfe\x00binary\n[1, 2]\n{}\n")
        f.write(b'{"resourceSpans": 5}\n')
        f.write(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "1"}, 7]}]}]}\n')
    (tmp_path / "notes.txt").write_text("ignored: not *.jsonl")
    loaded = tree_cli.load(tmp_path)
    assert loaded.skipped == 6 and len(loaded.spans) == 8
    code, out, err = render(tmp_path)
    assert code == 0 and "skipped 6 malformed" in err and "baton.trigger demo" in out


def test_no_spans_of_the_run_exits_1_saying_where_it_looked(tmp_path):
    write_run(tmp_path)
    code, out, err = render(tmp_path, "no-such-run")
    assert code == 1 and out == ""
    assert "no spans of run no-such-run in 2 *.jsonl file(s)" in err and str(tmp_path) in err


def test_cli_usage_errors_exit_2_and_a_missing_dir_is_named(tmp_path, monkeypatch):
    runner = CliRunner()
    missing = runner.invoke(app, ["trace", RUN, "--dir", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "is not a directory" in missing.output
    assert runner.invoke(app, ["trace"]).exit_code == 2
    monkeypatch.setenv("BATON_TRACE_DIR", str(tmp_path))
    write_run(tmp_path)
    found = runner.invoke(app, ["trace", RUN])
    assert found.exit_code == 0, found.output
    assert "baton.dispatch enrich" in found.output and "Traceback" not in found.output
    empty = tmp_path / "empty"
    empty.mkdir()
    none = runner.invoke(app, ["trace", RUN, "--dir", str(empty)])
    assert none.exit_code == 1 and "no spans of run" in none.output


def test_durations_are_human_readable():
    assert [tree_cli.duration(n) for n in (500, 1_500_000, 2_345_000_000, -1)] == ["0 µs", "1.5 ms", "2.35 s", "?"]
