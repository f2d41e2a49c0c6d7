"""Cross-language end to end: the orchestrator and the Python, Node and Java example workers as real
processes run the polyglot demo (examples/workflows/polyglot-demo.yaml) and the original workflow."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def stack(services: Any, processes: Any) -> Iterator[tuple[str, Any]]:
    token = uuid.uuid4().hex[:8]
    port = _free_port()
    env = {
        **os.environ,
        "BATON_KAFKA_BOOTSTRAP_SERVERS": services.kafka,
        "BATON_DATABASE_URL": services.database_url,
        "BATON_REDIS_URL": services.redis_url,
        "BATON_DATABASE_SCHEMA": f"e2e_{token}",
        "BATON_TOPIC_PREFIX": f"e2e-{token}-",
        "BATON_REDIS_PREFIX": f"e2e:{token}:",
        "BATON_ENGINE_GROUP_ID": f"e2e-{token}-engine",
        "BATON_WORKER_GROUP": f"e2e-{token}-workers",
        "BATON_TOPIC_PARTITIONS": "2",
    }
    procs = processes
    try:
        procs.start("orchestrator", [str(VENV_BIN / "baton"), "server", "--port", str(port)], env)
        procs.start("python", [sys.executable, "examples/python/worker.py"], env)
        procs.start("node", ["node", "examples/node/worker.mjs"], env)
        procs.start("java", ["mvn", "-q", "-B", "-f", "examples/java/pom.xml", "compile", "exec:java"], env)
        url = f"http://127.0.0.1:{port}"
        _wait_health(url, procs)
        yield url, procs
    finally:
        procs.stop_all()
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "e2e_{token}" CASCADE')


def _wait_health(url: str, procs: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if procs.procs["orchestrator"].poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError("orchestrator did not become healthy:\n" + procs.log("orchestrator"))


def _wait_run(url: str, run_id: str, procs: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{url}/workflow/run/{run_id}", timeout=5).json()
        if run["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return run
        time.sleep(0.3)
    logs = procs.logs()
    raise AssertionError(f"run {run_id} still {run['status']} after {timeout}s: {json.dumps(run)[:2000]}\n{logs}")


def _define(url: str, name: str) -> None:
    body = yaml.safe_load((ROOT / "examples" / "workflows" / name).read_text())
    resp = httpx.post(f"{url}/workflow", json=body, timeout=10)
    assert resp.status_code == 201, resp.text


def test_polyglot_demo_hands_data_across_python_node_and_java(stack):
    url, procs = stack
    _define(url, "polyglot-demo.yaml")
    order = json.loads((ROOT / "examples" / "workflows" / "demo-input.json").read_text())
    resp = httpx.post(
        f"{url}/workflow/polyglot-demo/trigger",
        json={"input": order},
        headers={"Idempotency-Key": "demo-1"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    run = _wait_run(url, resp.json()["run_id"], procs)
    assert run["status"] == "COMPLETED", json.dumps(run)[:2000]
    by_step = {s["name"]: s for s in run["steps"]}
    languages = {name: s["attempts"][-1]["worker"]["language"] for name, s in by_step.items()}
    assert languages == {"validate": "python", "enrich": "node", "score": "java", "report": "python"}
    assert by_step["enrich"]["output"]["enriched_by"] == "node"
    assert by_step["score"]["output"]["scored_by"] == "java"
    assert by_step["report"]["input"].keys() == {"enrich", "score"}
    assert "node" in run["output"] and "java" in run["output"] and "A-1001" in run["output"]


def test_original_workflow_runs_each_step_exactly_once_with_three_languages_listening(stack):
    url, procs = stack
    _define(url, "my-first-workflow.yaml")
    run_ids = [
        httpx.post(f"{url}/workflow/my-first-workflow/trigger", json={"input": f"Hello World {i}"}, timeout=10).json()[
            "run_id"
        ]
        for i in range(10)
    ]
    runs = [_wait_run(url, r, procs) for r in run_ids]
    for i, run in enumerate(runs):
        assert run["status"] == "COMPLETED"
        assert [len(s["attempts"]) for s in run["steps"]] == [1, 1]
        # step1 is registered by all three example workers; whichever ran it, step2 (Python) got its output.
        assert run["output"].startswith("Step 2 processed: ") and run["output"].endswith(f"Hello World {i}")
