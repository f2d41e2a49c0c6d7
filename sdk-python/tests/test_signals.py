"""Process-level delivery guarantees: SIGTERM drains in-flight jobs, SIGKILL loses none."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from baton import Worker

SCRIPT = Path(__file__).with_name("worker_process.py")
Spawn = Callable[..., Coroutine[Any, Any, asyncio.subprocess.Process]]


@pytest.fixture
async def spawn(kit: Any, tmp_path: Path) -> AsyncIterator[Spawn]:
    """Start ``worker_process.py`` on the test's topics; kills whatever is left at teardown."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(ledger: Path, hold_s: float, concurrency: int = 3, **extra_env: str) -> asyncio.subprocess.Process:
        env = (
            os.environ
            | {
                "BATON_KAFKA_BOOTSTRAP_SERVERS": kit.bootstrap,
                "BATON_WORKER_GROUP": kit.group,
                "BATON_TOPIC_PREFIX": kit.prefix,
                "BATON_TOPIC_PARTITIONS": "2",
                "BATON_WORKER_CONCURRENCY": str(concurrency),
                "BATON_WORKER_PRESENCE_INTERVAL": "60",  # one RUNNING, then STOPPING, STOPPED
            }
            | extra_env
        )
        log = (tmp_path / f"worker-{len(procs)}.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), str(ledger), str(hold_s), env=env, stdout=log, stderr=log
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def test_in_flight_jobs_finish_and_commit_when_worker_gets_sigterm(
    kit: Any, spawn: Spawn, tmp_path: Path
) -> None:
    await kit.create_topics("hold")
    jobs = [kit.job("hold", n) for n in range(3)]
    for job in jobs:
        await kit.send_job(job)
    ledger = tmp_path / "ledger"
    proc = await spawn(ledger, hold_s=2.0)

    async def three_started() -> bool:
        return len(_lines(ledger)) == 3

    await kit.eventually(three_started, timeout=30)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 0

    results = await kit.results(3)
    assert sorted((r["job_id"], r["status"]) for r in results) == sorted((j["job_id"], "COMPLETED") for j in jobs)
    assert await kit.committed("hold") == 3
    log = (tmp_path / "worker-0.log").read_text()
    assert "draining 3 jobs" in log
    presence = [json.loads(r.value)["status"] for r in await kit.read("workers", 3)]
    assert presence == ["RUNNING", "STOPPING", "STOPPED"]


async def test_job_is_redelivered_to_another_worker_when_the_first_is_killed_mid_job(
    kit: Any, spawn: Spawn, tmp_path: Path
) -> None:
    await kit.create_topics("hold")
    job = kit.job("hold", "survive me")
    await kit.send_job(job)
    ledger = tmp_path / "ledger"
    proc = await spawn(ledger, hold_s=120)

    async def started() -> bool:
        return _lines(ledger) == [job["job_id"]]

    await kit.eventually(started, timeout=30)
    proc.kill()
    await proc.wait()

    second = Worker(settings=kit.settings())
    second.register("hold", lambda payload: f"redelivered: {payload}")
    async with second:
        [result] = await kit.results(1, timeout=45)
    assert (result["job_id"], result["status"], result["output"]) == (
        job["job_id"],
        "COMPLETED",
        "redelivered: survive me",
    )
    assert result["worker"]["id"] == second.id
    assert await kit.committed("hold") == 1


async def test_worker_exits_promptly_when_sigterm_arrives_while_it_waits_for_kafka(
    kit: Any, spawn: Spawn, tmp_path: Path
) -> None:
    nobody = socket.socket()
    nobody.bind(("127.0.0.1", 0))  # a port nothing listens on (bound, never listening)
    try:
        port = nobody.getsockname()[1]
        proc = await spawn(tmp_path / "ledger", hold_s=0, BATON_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}")
        log = tmp_path / "worker-0.log"

        async def waiting_for_kafka() -> bool:
            return log.exists() and "not reachable" in log.read_text()

        await kit.eventually(waiting_for_kafka, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        nobody.close()


async def test_stop_is_bounded_by_the_drain_timeout_when_asked_during_a_rebalance(kit: Any) -> None:
    """The first worker is inside its revocation wait (jobs in flight) when the stop comes."""
    await kit.create_topics("slow", partitions=4)
    started = asyncio.Event()

    async def slow(payload: Any) -> Any:
        started.set()
        await asyncio.sleep(30)
        return payload

    first, second = Worker(concurrency=4, settings=kit.settings()), Worker(concurrency=4, settings=kit.settings())
    first.register("slow", slow)
    second.register("slow", slow)
    for n in range(8):
        await kit.send_job(kit.job("slow", n))
    async with first:
        await asyncio.wait_for(started.wait(), 20)
        joining = asyncio.create_task(second.__aenter__())  # rebalances the group
        try:
            await asyncio.sleep(1.5)  # the first worker now waits (up to 5 s) for its jobs to finish
            began = time.monotonic()
            await first.stop(timeout=1.0)
            assert time.monotonic() - began < 3.0
        finally:
            await joining
            await second.stop(timeout=0.5)
