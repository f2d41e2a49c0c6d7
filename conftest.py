"""Service fixtures shared by every Python test suite in the repository, and the cross-language stack.

Addresses come from BATON_KAFKA_BOOTSTRAP_SERVERS, BATON_DATABASE_URL and BATON_REDIS_URL (what
`make up` prints). When they are absent and a Docker engine answers, testcontainers starts the
services; otherwise the tests fail (never skip) with a message naming `make up`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent

ENV_KAFKA = "BATON_KAFKA_BOOTSTRAP_SERVERS"
ENV_DB = "BATON_DATABASE_URL"
ENV_REDIS = "BATON_REDIS_URL"


@dataclass(frozen=True)
class Services:
    kafka: str
    database_url: str
    redis_url: str


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def _reachable(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            return True
    except OSError:
        return False


def _host_port(url: str) -> str:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    return rest.rsplit("@", 1)[-1]


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    kafka, db, redis_url = os.environ.get(ENV_KAFKA), os.environ.get(ENV_DB), os.environ.get(ENV_REDIS)
    if kafka and db and redis_url:
        down = [
            name
            for name, addr in (
                ("Kafka", kafka.split(",")[0]),
                ("PostgreSQL", _host_port(db)),
                ("Redis", _host_port(redis_url)),
            )
            if not _reachable(addr)
        ]
        if down:
            pytest.fail(f"{', '.join(down)} not reachable at the configured address; run `make up`", False)
        yield Services(kafka, db, redis_url)
        return
    if _docker_available():
        yield from _containers()
        return
    pytest.fail(
        f"{ENV_KAFKA}, {ENV_DB} and {ENV_REDIS} are not set and no Docker engine answers. "
        "Start the native stack with `make up` and export what `make status` prints "
        "(or run the tests with `make test`, which does both).",
        False,
    )


# The fallback runs the images docker-compose.yml builds (`make test-docker` builds them and runs the stack
# smoke suite through this path), configured as compose configures them.
FALLBACK_IMAGES = {name: f"baton/{name}:local" for name in ("kafka", "postgres", "redis")}
KAFKA_ENV = {
    "CLUSTER_ID": "Ai5JjVzwQvOnFdnCstN9qg",
    "KAFKA_NODE_ID": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093,EXTERNAL://:19092",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EXTERNAL:PLAINTEXT",
    "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
    "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _publish(container: Any, port: int) -> int:
    """Publish `port` on a free loopback port (with_bind_ports takes no host address; docker-py does)."""
    host_port = _free_port()
    container.ports[str(port)] = ("127.0.0.1", host_port)
    return host_port


def _wait_healthy(container: Any, timeout: float = 120) -> None:
    """Until the image's HEALTHCHECK reports healthy (the same check compose waits on)."""
    wrapped = container.get_wrapped_container()
    deadline = time.monotonic() + timeout
    while True:
        wrapped.reload()
        state = wrapped.attrs["State"]
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if not state.get("Running") or time.monotonic() > deadline:
            logs = wrapped.logs(tail=30).decode(errors="replace")
            pytest.fail(
                f"{wrapped.image.tags}: not healthy ({state.get('Status')}) after {timeout:.0f}s\n{logs}", False
            )
        time.sleep(1)


def _containers() -> Iterator[Services]:
    # Ryuk (the reaper) is pulled from Docker Hub, which may be unreachable; the with-block stops ours.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    import docker
    from testcontainers.core.container import DockerContainer

    missing = [i for i in FALLBACK_IMAGES.values() if not docker.from_env().images.list(name=i)]
    if missing:
        pytest.fail(f"images {missing} are missing: build them with `docker-compose build kafka postgres redis`", False)
    kafka, pg, redis = (DockerContainer(FALLBACK_IMAGES[name]) for name in ("kafka", "postgres", "redis"))
    kport, pgport, rport = _publish(kafka, 19092), _publish(pg, 5432), _publish(redis, 6379)
    for key, value in {
        **KAFKA_ENV,
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://localhost:9092,EXTERNAL://127.0.0.1:{kport}",
    }.items():
        kafka = kafka.with_env(key, value)
    for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        pg = pg.with_env(key, "baton")
    with kafka, pg, redis:
        for container in (pg, redis, kafka):
            _wait_healthy(container)
        yield Services(
            f"127.0.0.1:{kport}", f"postgresql://baton:baton@127.0.0.1:{pgport}/baton", f"redis://127.0.0.1:{rport}/0"
        )


@pytest.fixture
def unique() -> str:
    """A short unique token for per-test topic prefixes, groups, schemas and keys."""
    return uuid.uuid4().hex[:10]


class Processes:
    """Child processes for cross-language tests: own session each, logged to a file, always stopped."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = open(self.logdir / f"{name}.log", "ab")  # the child owns it; closed when it exits
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited ({proc.returncode}):\n{self.log(name)}"

    def stop_all(self) -> None:
        """SIGTERM every process group (workers drain), then SIGKILL what is still there after 20 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
                print(f"{name} had to be killed")

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)}" for name in self.procs)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Start real worker/orchestrator processes; whatever a test leaves running is stopped afterwards."""
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


# ------------------------------------------------------------------ cross-language stacks (tests/)
# Here rather than in tests/conftest.py: that module would be `tests.conftest`, the name orchestrator/tests'
# conftest already has, and pytest refuses the second one when the suites run together.


@dataclass
class Stack:
    url: str
    procs: Any
    env: dict[str, str]

    def define(self, name: str) -> None:
        """Define examples/workflows/<name>."""
        import httpx
        import yaml

        body = yaml.safe_load((ROOT / "examples" / "workflows" / name).read_text())
        resp = httpx.post(f"{self.url}/workflow", json=body, timeout=10)
        assert resp.status_code == 201, resp.text

    def wait_run(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        import httpx

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
        baton = str(Path(sys.executable).parent / "baton")
        processes.start("orchestrator", [baton, "server", "--port", str(port)], env)
        processes.start("python", [sys.executable, "examples/python/worker.py"], env)
        processes.start("node", ["node", "examples/node/worker.mjs"], env)
        processes.start("java", ["mvn", "-q", "-B", "-f", "examples/java/pom.xml", "compile", "exec:java"], env)
        url = f"http://127.0.0.1:{port}"
        _wait_health(url, processes)
        return Stack(url, processes, env)

    try:
        yield start
    finally:
        import psycopg

        processes.stop_all()
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            for token in tokens:
                conn.execute(f'DROP SCHEMA IF EXISTS "e2e_{token}" CASCADE')


def _wait_health(url: str, procs: Any) -> None:
    import httpx

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
