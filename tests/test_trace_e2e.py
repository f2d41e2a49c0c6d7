"""R2.8 end to end: one OpenTelemetry trace per run across the orchestrator and the Python, Node and Java
example workers (real processes, real Kafka), written as OTLP JSON lines under BATON_TRACE_DIR and read
back by `baton trace`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from baton_orchestrator.cli.trace import SpanRecord, load, run_traces

ROOT = Path(__file__).resolve().parents[1]
BATON = str(Path(sys.executable).parent / "baton")
STEPS = {"validate": "python", "enrich": "node", "score": "java", "report": "python"}
SERVICES = {"baton-orchestrator", "baton-worker-python", "baton-worker-node", "baton-worker-java"}
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def _complete(spans: list[SpanRecord]) -> bool:
    """Every step has its dispatch, handle and result span (the processes export in batches)."""
    have = {(s.name.split(" ")[0], s.attrs.get("baton.step")) for s in spans}
    kinds = ("baton.dispatch", "baton.handle", "baton.result")
    return all((k, step) in have for k in kinds for step in STEPS) and any(
        s.name.startswith("baton.trigger") for s in spans
    )


def _wait_spans(trace_dir: Path, run_id: str, procs: Any, timeout: float = 60) -> dict[str, list[SpanRecord]]:
    deadline = time.monotonic() + timeout
    traces: dict[str, list[SpanRecord]] = {}
    while time.monotonic() < deadline:
        traces = run_traces(load(trace_dir).spans, run_id)
        if any(_complete(spans) for spans in traces.values()):
            return traces
        time.sleep(0.5)
    found = sorted({f"{s.service}: {s.name}" for spans in traces.values() for s in spans})
    raise AssertionError(f"spans of run {run_id} incomplete after {timeout}s: {found}\n{procs.logs()}")


def test_one_trace_per_run_across_the_orchestrator_and_three_languages(start_stack, tmp_path):
    trace_dir = tmp_path / "traces"
    stack = start_stack(BATON_TRACE_DIR=str(trace_dir))
    stack.define("polyglot-demo.yaml")
    order = json.loads((ROOT / "examples" / "workflows" / "demo-input.json").read_text())
    resp = httpx.post(
        f"{stack.url}/workflow/polyglot-demo/trigger",
        json={"input": order},
        headers={"traceparent": CALLER},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    assert stack.wait_run(run_id)["status"] == "COMPLETED"

    traces = _wait_spans(trace_dir, run_id, stack.procs)
    assert list(traces) == [CALLER_TRACE], "one trace, continuing the caller's"
    spans = traces[CALLER_TRACE]
    by_id = {s.span_id: s for s in spans}
    assert {s.service for s in spans} >= SERVICES
    # The orchestrator's spans are Baton's only (FastAPI's own request tracing is off).
    assert {s.name.split(" ")[0] for s in spans if s.service == "baton-orchestrator"} == {
        "baton.trigger",
        "baton.dispatch",
        "baton.result",
    }
    [trigger] = [s for s in spans if s.name == "baton.trigger polyglot-demo"]
    assert trigger.service == "baton-orchestrator" and trigger.kind == 2 and trigger.parent_id == "00f067aa0ba902b7"
    dispatches = [s for s in spans if s.name.startswith("baton.dispatch ")]
    handles = [s for s in spans if s.name.startswith("baton.handle ")]
    results = [s for s in spans if s.name.startswith("baton.result ")]
    assert dispatches and handles and results
    for d in dispatches:
        assert d.parent_id == trigger.span_id and d.kind == 4, d
        assert d.attrs["baton.run_id"] == run_id and d.attrs["messaging.system"] == "kafka"
    for h in handles:
        parent = by_id[h.parent_id or ""]
        assert parent.name.startswith("baton.dispatch ") and parent.attrs["baton.step"] == h.attrs["baton.step"], h
        assert h.kind == 5 and h.service == f"baton-worker-{STEPS[h.attrs['baton.step']]}", h
        assert h.attrs["baton.sdk.language"] == STEPS[h.attrs["baton.step"]]
        assert h.attrs["baton.attempt"] == parent.attrs["baton.attempt"]
    for r in results:
        parent = by_id[r.parent_id or ""]
        assert parent.name.startswith("baton.handle ") and parent.attrs["baton.step"] == r.attrs["baton.step"], r
        assert r.service == "baton-orchestrator" and r.attrs["baton.outcome"] == "completed"

    cli = subprocess.run(
        [BATON, "trace", run_id, "--dir", str(trace_dir)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert cli.returncode == 0, cli.stderr
    assert f"trace {CALLER_TRACE}" in cli.stdout and "baton.trigger polyglot-demo" in cli.stdout
    assert "(parent not exported)" in cli.stdout  # the caller's own span is in no file
    for service in SERVICES:
        assert service in cli.stdout
    for step in STEPS:
        assert f"baton.dispatch {step}" in cli.stdout and f"baton.result {step}" in cli.stdout
    assert "Traceback" not in cli.stderr
