"""R2.2: a Kafka outage longer than the producer's delivery timeout while jobs finish: once Kafka is back,
every result is sent, every partition's commits move on, and a restarted worker runs nothing again.

Runs against a private single-node stack (infra/stack.sh with its own BATON_STACK_DIR and free ports), never
the shared broker. Set BATON_SKIP_OUTAGE_TEST=1 to skip it (it takes about two minutes).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from baton import JobContext, Worker

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_S = 45.0  # longer than aiokafka's request_timeout_ms (40 s), its bound on a send in flight

pytestmark = pytest.mark.skipif(os.environ.get("BATON_SKIP_OUTAGE_TEST") == "1", reason="BATON_SKIP_OUTAGE_TEST=1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateStack:
    """infra/stack.sh on free ports in a temporary directory; stopped and removed at the end."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="baton-sdk-outage-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")  # initdb runs as postgres and must reach pg/ below
            os.chmod(self.dir, 0o755)
        self.kafka_port = _free_port()
        self.env = os.environ | {
            "BATON_STACK_DIR": str(self.dir),
            "BATON_KAFKA_PORT": str(self.kafka_port),
            "BATON_KAFKA_CONTROLLER_PORT": str(_free_port()),
            "BATON_PG_PORT": str(_free_port()),
            "BATON_REDIS_PORT": str(_free_port()),
        }
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"

    def stack(self, cmd: str, timeout: float = 240) -> None:
        proc = subprocess.run(
            [str(ROOT / "infra" / "stack.sh"), cmd], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, f"stack.sh {cmd} failed:\n{proc.stdout}\n{proc.stderr}"

    def stop_kafka(self) -> None:
        """SIGTERM to the broker this stack started (by its pid file), then wait for it to exit."""
        pidf = self.dir / "kafka.pid"
        pid = int(pidf.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        pidf.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.fixture(scope="module")
def private_stack() -> Iterator[PrivateStack]:
    stack = PrivateStack()
    try:
        stack.stack("up")
        yield stack
    finally:
        try:
            stack.stack("down", timeout=90)
        finally:
            shutil.rmtree(stack.dir, ignore_errors=True)


@pytest.fixture
async def private_kit(private_stack: PrivateStack, kit: Any, unique: str) -> AsyncIterator[Any]:
    """The suite's Kit pointed at the private broker (test modules cannot import conftest itself)."""
    producer = AIOKafkaProducer(bootstrap_servers=private_stack.bootstrap, acks="all", enable_idempotence=True)
    admin = AIOKafkaAdminClient(bootstrap_servers=private_stack.bootstrap)
    await producer.start()
    await admin.start()
    try:
        yield type(kit)(private_stack.bootstrap, f"t-{unique}-", f"t-{unique}", producer, admin)
    finally:
        await producer.stop()
        await admin.close()


def _worker(kit: Any, calls: Counter[str], gate: asyncio.Event) -> Worker:
    worker = Worker(concurrency=4, settings=kit.settings(presence_interval=1.0))

    @worker.action("work")
    async def work(payload: Any, ctx: JobContext) -> Any:
        calls[ctx.job_id] += 1
        await gate.wait()
        return payload

    return worker


async def test_commits_move_on_when_kafka_returns_after_an_outage_longer_than_the_delivery_timeout(
    private_stack: PrivateStack, private_kit: Any
) -> None:
    kit = private_kit
    await kit.create_topics("work", partitions=2)
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    jobs = [kit.job("work", n) for n in range(8)]
    for job in jobs:
        await kit.send_job(job)
    worker = _worker(kit, calls, gate)
    async with worker:
        await kit.eventually(lambda: _true(len(calls) == 4), 30)  # four in flight, four queued
        await asyncio.to_thread(private_stack.stop_kafka)
        gate.set()  # the jobs in flight finish while Kafka is down: their results cannot be sent
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(private_stack.stack, "up")

        async def all_committed() -> bool:
            return await kit.committed("work") == len(jobs)

        # No new job arrives to nudge a commit: the ones that failed during the outage must be retried.
        await kit.eventually(all_committed, timeout=90, every=1.0)
        await kit.producer.client.force_metadata_update()
        more = [kit.job("work", n) for n in range(8, 12)]
        for job in more:
            await kit.send_job(job)
        jobs += more
        await kit.eventually(all_committed, timeout=30, every=0.5)
    results = {r["job_id"]: r for r in await kit.results(len(jobs), timeout=30)}
    assert {j["job_id"] for j in jobs} <= set(results)
    assert all(results[j["job_id"]]["output"] == j["input"] for j in jobs)

    again = _worker(kit, calls, gate)
    assert (await again.run_until_idle(timeout=60)).completed == 0
    assert sorted(calls) == sorted(j["job_id"] for j in jobs)


async def _true(value: bool) -> bool:
    return value
