"""R2.2: past its job's deadline plus the grace, the worker answers Timeout, commits, and frees the slot
(up to max_abandoned), so handlers that never return cannot freeze a worker (real Kafka)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from baton import JobContext, Worker
from baton.protocol import format_time, parse_time

TIMEOUT_MESSAGE = re.compile(r"handler still running \d+ ms after the job's deadline \(grace 500 ms\); abandoned")


def _soon(seconds: float) -> str:
    return format_time(datetime.now(UTC) + timedelta(seconds=seconds))


def _hanging_worker(kit: Any, calls: Counter[str], release: threading.Event, **settings: Any) -> Worker:
    options = {"topic_partitions": 1, "deadline_grace": 0.5, "presence_interval": 0.3} | settings
    worker = Worker(concurrency=2, settings=kit.settings(**options))

    @worker.action("work")
    def work(payload: Any, ctx: JobContext) -> Any:
        calls[ctx.job_id] += 1
        if payload == "hang":
            release.wait(60)  # "never" returns: the test releases it at the end
            ctx.heartbeat()  # too late: dropped, like the return value
            return "late"
        return payload

    return worker


async def _max_stuck_slots(kit: Any, worker: Worker) -> int:
    beats = [json.loads(r.value) for r in await kit.read("workers", 1)]
    assert all(b["worker_id"] == worker.id for b in beats)
    return max(b.get("stuck_slots", -1) for b in beats)


async def _check_timeouts_and_stop(
    kit: Any, worker: Worker, jobs: list[dict[str, Any]], release: threading.Event
) -> None:
    results = {r["job_id"]: r for r in await kit.results(len(jobs), timeout=20)}
    first_start = min(r["started_at"] for r in results.values())
    last_finish = max(r["finished_at"] for r in results.values())
    elapsed = (parse_time(last_finish) - parse_time(first_start)).total_seconds()
    print(f"22 jobs answered {elapsed:.2f} s after the first started (step timeout 1 s, grace 0.5 s)")
    assert elapsed < 10  # a few times the step timeout, not forever
    stuck = [results[j["job_id"]] for j in jobs if j["input"] == "hang"]
    assert [(r["status"], r["error"]["type"], r["error"]["retryable"]) for r in stuck] == [
        ("FAILED", "Timeout", True)
    ] * 2
    assert all(TIMEOUT_MESSAGE.fullmatch(r["error"]["message"]) for r in stuck)
    assert [results[j["job_id"]]["output"] for j in jobs if j["input"] != "hang"] == list(range(20))
    assert worker.stuck_slots == 2
    assert await kit.eventually(lambda: _stuck_reported(kit, worker), 10)
    release.set()
    await kit.eventually(lambda: _true(worker.stuck_slots == 0), 10)


async def _stuck_reported(kit: Any, worker: Worker) -> bool:
    return await _max_stuck_slots(kit, worker) == 2


async def test_normal_jobs_complete_when_two_handlers_never_return_with_concurrency_two(kit: Any) -> None:
    await kit.create_topics("work", partitions=1)
    calls: Counter[str] = Counter()
    release = threading.Event()
    jobs = [kit.job("work", "hang", deadline=_soon(1), timeout_ms=1000) for _ in range(2)]
    jobs += [kit.job("work", n) for n in range(20)]
    for job in jobs:
        await kit.send_job(job)
    worker = _hanging_worker(kit, calls, release)
    try:
        async with worker:
            await _check_timeouts_and_stop(kit, worker, jobs, release)
    finally:
        release.set()
    assert len(await kit.read("results", len(jobs))) == len(jobs)  # the late returns were dropped
    assert await kit.committed("work") == len(jobs)
    again = _hanging_worker(kit, calls, release)
    assert (await again.run_until_idle(timeout=30)).completed == 0
    assert calls == Counter({j["job_id"]: 1 for j in jobs})


async def test_slot_stays_taken_but_job_is_answered_when_past_max_abandoned(kit: Any) -> None:
    await kit.create_topics("work", partitions=1)
    calls: Counter[str] = Counter()
    release = threading.Event()
    jobs = [kit.job("work", "hang", deadline=_soon(1), timeout_ms=1000) for _ in range(2)]
    jobs += [kit.job("work", n) for n in range(20)]
    for job in jobs:
        await kit.send_job(job)
    worker = _hanging_worker(kit, calls, release, max_abandoned=1)
    try:
        async with worker:
            await kit.eventually(lambda: _true(worker.stuck_slots == 2), 15)
            assert worker.in_flight >= 1  # the second abandoned handler still holds its slot
            await _check_timeouts_and_stop(kit, worker, jobs, release)
    finally:
        release.set()
    assert await kit.committed("work") == len(jobs)


async def test_async_handler_is_not_abandoned_when_it_heartbeats_past_its_first_deadline(kit: Any) -> None:
    worker = Worker(concurrency=1, settings=kit.settings(deadline_grace=0.5))

    @worker.action("beat")
    async def beat(payload: Any, ctx: JobContext) -> str:
        for _ in range(5):
            await asyncio.sleep(0.4)
            ctx.heartbeat()  # moves the deadline to now + timeout_ms
        return "alive"

    @worker.action("hang")
    async def hang(payload: Any) -> str:
        await asyncio.Event().wait()  # cancelled when abandoned: its slot and count free at once
        return "never"

    await kit.send_job(kit.job("beat", deadline=_soon(1), timeout_ms=1000))
    await kit.send_job(kit.job("hang", deadline=_soon(0.2), timeout_ms=200))
    report = await worker.run_until_idle(timeout=30)
    assert (report.completed, report.failed) == (1, 1)
    outcomes = {r["step"]: r for r in await kit.results(7) if r["status"] != "HEARTBEAT"}
    assert outcomes["beat"]["output"] == "alive"
    assert outcomes["hang"]["error"]["type"] == "Timeout"
    assert worker.stuck_slots == 0


async def _true(value: bool) -> bool:
    return value
