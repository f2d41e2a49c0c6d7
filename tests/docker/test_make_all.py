"""`make all` for real: the images built FROM debian:bookworm-slim, the polyglot demo run in containers.

Run by `make test-docker` (tests/docker/run.sh), which provides the engine, the base image and the ports;
`make test` ignores this folder. Without a Docker engine these tests fail, never skip. The compose project
(COMPOSE_PROJECT_NAME) and the host ports (BATON_*_PORT) come from the environment, so the shared native
stack's ports and a developer's own `make all` are left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "batontest")
API = f"http://127.0.0.1:{os.environ.get('BATON_PORT', '18080')}"
LANGUAGES = {"validate": "python", "enrich": "node", "score": "java", "report": "python"}
SERVICE_OF = {"python": "worker-python", "node": "worker-node", "java": "worker-java"}
IMAGES = ("kafka", "postgres", "redis", "orchestrator", "worker-python", "worker-node", "worker-java")


def _compose_cmd() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    assert shutil.which("docker-compose"), "neither `docker compose` nor docker-compose is installed"
    return ["docker-compose"]


def _env() -> dict[str, str]:
    return {**os.environ, "COMPOSE_PROJECT_NAME": PROJECT}


def _run(cmd: list[str], timeout: float) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _make(target: str, timeout: float = 900) -> str:
    return _run(["make", "--no-print-directory", target], timeout)


def _compose(*args: str, timeout: float = 120) -> str:
    return _run([*_compose_cmd(), "-f", "docker-compose.yml", "--profile", "all", *args], timeout)


def eventually(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := check():
                return result
        except httpx.HTTPError:
            pass  # the API is (re)starting
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout:.0f}s\n{_logs()}")
        time.sleep(every)


def _logs() -> str:
    proc = subprocess.run(
        [*_compose_cmd(), "-f", "docker-compose.yml", "--profile", "all", "logs", "--tail", "40", "--no-color"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return proc.stdout[-6000:]


def _containers(service: str, all_states: bool = False) -> list[str]:
    labels = ["--filter", f"label=com.docker.compose.project={PROJECT}"]
    labels += ["--filter", f"label=com.docker.compose.service={service}"]
    return _run(["docker", "ps", "-q", *(["-a"] if all_states else []), *labels], 30).split()


def _hostname(service: str) -> str:
    (container,) = _containers(service)
    return _run(["docker", "inspect", "-f", "{{.Config.Hostname}}", container], 30).strip()


def _volumes() -> set[str]:
    out = _run(["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"], 30)
    return set(out.split())


def _get(path: str) -> Any:
    resp = httpx.get(f"{API}{path}", timeout=5)
    resp.raise_for_status()
    return resp.json()


def _healthy() -> bool:
    return httpx.get(f"{API}/health", timeout=5).status_code == 200


def _run_done(run_id: str) -> dict[str, Any] | None:
    run = _get(f"/workflow/run/{run_id}")
    return run if run["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None


def _trigger(key: str) -> str:
    order = json.loads((ROOT / "examples/workflows/demo-input.json").read_text())
    resp = httpx.post(
        f"{API}/workflow/polyglot-demo/trigger", json={"input": order}, headers={"Idempotency-Key": key}, timeout=10
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["run_id"])


def _assert_done_by_each_languages_container(run: dict[str, Any]) -> None:
    assert run["status"] == "COMPLETED", json.dumps(run)[:2000]
    steps = {s["name"]: s for s in run["steps"]}
    workers = {name: s["attempts"][-1]["worker"] for name, s in steps.items()}
    assert {name: w["language"] for name, w in workers.items()} == LANGUAGES
    for name, worker in workers.items():
        # Worker ids are <language>-<hostname>-<pid>-<hex>: the hostname is the container's.
        host = _hostname(SERVICE_OF[worker["language"]])
        assert worker["id"].startswith(f"{worker['language']}-{host}-"), (name, worker, host)
    assert steps["enrich"]["output"]["enriched_by"] == "node"
    assert steps["score"]["output"]["scored_by"] == "java"
    assert "A-1001" in json.dumps(run["output"])


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def engine() -> None:
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.fail(f"no Docker engine answers (`docker info`: {proc.stderr.strip()[:300]}): run `make test-docker`")


@pytest.fixture(scope="module")
def stack(engine: None) -> Iterator[None]:
    """`make all` once for the module; `make clean` afterwards whatever happened."""
    try:
        out = _make("all")
        assert f"API {API}" in out and "baton trigger polyglot-demo" in out, out
        eventually(_healthy, 240, f"GET {API}/health answers 200")
        yield
    finally:
        subprocess.run(
            ["make", "--no-print-directory", "clean"], cwd=ROOT, env=_env(), capture_output=True, timeout=300
        )


# ------------------------------------------------------------------------------------------------- tests
def test_every_image_is_built_from_debian_and_runs_as_non_root(engine: None) -> None:
    for name in IMAGES:
        info = json.loads(_run(["docker", "image", "inspect", f"baton/{name}:local"], 30))[0]
        assert info["Config"]["User"] not in ("", "0", "root"), f"baton/{name} runs as root"
        assert info["Os"] == "linux"
    base = json.loads(_run(["docker", "image", "inspect", "debian:bookworm-slim"], 30))[0]
    for name in IMAGES:
        layers = json.loads(_run(["docker", "image", "inspect", f"baton/{name}:local"], 30))[0]["RootFS"]["Layers"]
        assert layers[: len(base["RootFS"]["Layers"])] == base["RootFS"]["Layers"], f"baton/{name} FROM the base"


def test_polyglot_demo_runs_in_the_containers_when_made_with_make_all(stack: None) -> None:
    env = {**_env(), "BATON_API_URL": API}
    cli = [str(ROOT / ".venv/bin/baton")]
    for cmd in (
        [*cli, "apply", "examples/workflows/polyglot-demo.yaml"],
        [*cli, "trigger", "polyglot-demo", "--input", (ROOT / "examples/workflows/demo-input.json").read_text(),
         "--key", "docker-demo-1", "--wait", "120"],
    ):  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{cmd[1]}: {proc.stdout}{proc.stderr}\n{_logs()}"
    # The CLI says "run <id> started" on stderr (stdout stays the run's output, for scripts).
    run_id = re.search(r"^run (\S+) started", proc.stdout + proc.stderr, re.M)
    assert run_id, proc.stdout + proc.stderr
    _assert_done_by_each_languages_container(_get(f"/workflow/run/{run_id.group(1)}"))
    assert all(_containers(s) for s in ("kafka", "postgres", "redis", "orchestrator", *SERVICE_OF.values()))


def test_run_completes_when_the_java_worker_restarts_mid_run(stack: None) -> None:
    _compose("stop", "worker-java")
    run_id = _trigger("docker-restart-1")

    def scoring_waits() -> bool:
        steps = {s["name"]: s["status"] for s in _get(f"/workflow/run/{run_id}")["steps"]}
        return steps["enrich"] == "COMPLETED" and steps["score"] not in ("COMPLETED", "FAILED")

    eventually(scoring_waits, 60, "validate and enrich done while Java is down")
    _compose("start", "worker-java")
    run = eventually(lambda: _run_done(run_id), 180, f"run {run_id} ends after the Java worker restarts")
    _assert_done_by_each_languages_container(run)


def test_stop_keeps_the_volumes_and_clean_deletes_them(stack: None) -> None:
    runs_before = {r["run_id"] for r in _get("/workflow/runs")["items"]}
    assert runs_before, "the earlier tests left runs"
    volumes = _volumes()
    assert {f"{PROJECT}_{v}" for v in ("kafka-data", "postgres-data", "redis-data")} <= volumes, volumes
    _make("stop", 300)
    assert not _containers("orchestrator", all_states=True) and not _containers("kafka", all_states=True)
    assert _volumes() == volumes, "make stop keeps the data volumes"

    _make("all")
    eventually(_healthy, 240, "the API answers after a second make all")
    assert runs_before <= {r["run_id"] for r in _get("/workflow/runs")["items"]}, "earlier runs survive make stop"

    _make("clean", 300)
    assert not _volumes(), "make clean deletes the data volumes"
