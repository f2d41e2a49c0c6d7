"""Service fixtures shared by every Python test suite in the repository.

Addresses come from BATON_KAFKA_BOOTSTRAP_SERVERS, BATON_DATABASE_URL and BATON_REDIS_URL (what
`make up` prints). When they are absent and a Docker engine answers, testcontainers starts the
services; otherwise the tests fail (never skip) with a message naming `make up`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


def _containers() -> Iterator[Services]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with KafkaContainer().with_kraft() as k, PostgresContainer("postgres:16") as pg, RedisContainer() as r:
        db = pg.get_connection_url().replace("postgresql+psycopg2", "postgresql")
        redis_url = f"redis://{r.get_container_host_ip()}:{r.get_exposed_port(6379)}/0"
        yield Services(k.get_bootstrap_server(), db, redis_url)


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
