"""Cross-language test fixtures: the orchestrator and the three example workers as real processes, each
test on its own schema, topic prefix, Redis prefix and consumer groups."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


@dataclass
class Stack:
    url: str
    procs: Any
    env: dict[str, str]

    def define(self, name: str) -> None:
        """Define examples/workflows/<name>."""
        body = yaml.safe_load((ROOT / "examples" / "workflows" / name).read_text())
        resp = httpx.post(f"{self.url}/workflow", json=body, timeout=10)
        assert resp.status_code == 201, resp.text

    def wait_run(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = httpx.get(f"{self.url}/workflow/run/{run_id}", timeout=5).json()
            if run["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return run
            time.sleep(0.3)
        logs = self.procs.logs()
        raise AssertionError(f"run {run_id} still {run['status']} after {timeout}s: {json.dumps(run)[:2000]}\n{logs}")


@pytest.fixture
def start_stack(services: Any, processes: Any) -> Iterator[Callable[..., Stack]]:
    """start(**extra_env) -> Stack: the orchestrator + the Python, Node and Java example workers, healthy."""
    tokens: list[str] = []

    def start(**extra_env: str) -> Stack:
        token = uuid.uuid4().hex[:8]
        tokens.append(token)
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
            **extra_env,
        }
        processes.start("orchestrator", [str(VENV_BIN / "baton"), "server", "--port", str(port)], env)
        processes.start("python", [sys.executable, "examples/python/worker.py"], env)
        processes.start("node", ["node", "examples/node/worker.mjs"], env)
        processes.start("java", ["mvn", "-q", "-B", "-f", "examples/java/pom.xml", "compile", "exec:java"], env)
        url = f"http://127.0.0.1:{port}"
        _wait_health(url, processes)
        return Stack(url, processes, env)

    try:
        yield start
    finally:
        processes.stop_all()
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            for token in tokens:
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
