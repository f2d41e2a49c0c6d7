"""R2.2: whatever a handler does, its job ends in one result, its offset is committed, and the jobs after
it on the same partition still run (real Kafka, one partition, so they all queue behind the bad ones)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

from baton import JobContext, Worker


class Custom(BaseException):
    """A BaseException that is neither Exception nor one of Python's own."""


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception fails")


def _misbehave(kind: str) -> Any:
    if kind == "exit":
        raise SystemExit(2)
    if kind == "interrupt":
        raise KeyboardInterrupt
    if kind == "custom":
        raise Custom("not an Exception")
    if kind == "badstr":
        raise BadStr
    if kind == "surrogate_error":
        raise ValueError("bad \udcff")
    if kind == "long_error":
        raise ValueError("é" * 10_000)
    if kind == "surrogate_output":
        return "bad \udcff"
    if kind == "circular":
        loop: list[Any] = []
        loop.append(loop)
        return loop
    return f"ok {kind}"


BAD_SYNC = ["exit", "interrupt", "custom", "badstr", "surrogate_error", "long_error", "surrogate_output", "circular"]
EXPECTED_TYPES = {
    "exit": "SystemExit",
    "interrupt": "KeyboardInterrupt",
    "custom": "Custom",
    "badstr": "BadStr",
    "surrogate_error": "ValueError",
    "long_error": "ValueError",
    "surrogate_output": "SerializationError",
    "circular": "SerializationError",
    "cancel": "CancelledError",
    "async_exit": "SystemExit",
}


def _worker(kit: Any, calls: Counter[str]) -> Worker:
    worker = Worker(concurrency=2, settings=kit.settings(topic_partitions=1))

    @worker.action("sync")
    def sync_handler(payload: str, ctx: JobContext) -> Any:
        calls[ctx.job_id] += 1
        return _misbehave(payload)

    @worker.action("async")
    async def async_handler(payload: str, ctx: JobContext) -> Any:
        calls[ctx.job_id] += 1
        await asyncio.sleep(0)
        if payload == "cancel":
            raise asyncio.CancelledError  # raised by the handler itself, not by the worker
        if payload == "async_exit":
            raise SystemExit(3)
        return _misbehave(payload)

    return worker


async def test_every_misbehaving_handler_fails_its_job_and_later_jobs_complete_when_on_one_partition(
    kit: Any,
) -> None:
    await kit.create_topics("sync", "async", partitions=1)
    jobs = [kit.job("sync", kind) for kind in BAD_SYNC] + [kit.job("async", k) for k in ("cancel", "async_exit")]
    jobs += [kit.job(action, n) for n in range(10) for action in ("sync", "async")]
    for job in jobs:
        await kit.send_job(job)
    calls: Counter[str] = Counter()

    report = await _worker(kit, calls).run_until_idle(timeout=60)

    assert (report.completed, report.failed) == (20, len(EXPECTED_TYPES))
    results = {r["job_id"]: r for r in await kit.results(len(jobs))}
    by_kind = {j["input"]: results[j["job_id"]] for j in jobs if isinstance(j["input"], str)}
    assert {k: (r["status"], r["error"]["type"]) for k, r in by_kind.items()} == {
        k: ("FAILED", t) for k, t in EXPECTED_TYPES.items()
    }
    assert by_kind["surrogate_error"]["error"]["message"] == "bad \ufffd"
    long_message = by_kind["long_error"]["error"]["message"]
    kept, cut = re.fullmatch(r"(é+) …\[cut (\d+) bytes\]", long_message).groups()  # type: ignore[union-attr]
    assert len(long_message.encode()) <= 4096 and len(kept.encode()) + int(cut) == 20_000
    assert "unprintable" in by_kind["badstr"]["error"]["message"]
    assert by_kind["surrogate_output"]["error"]["retryable"] is False
    assert all(results[j["job_id"]]["status"] == "COMPLETED" for j in jobs if isinstance(j["input"], int))
    assert await kit.committed("sync") + await kit.committed("async") == len(jobs)

    # A restarted worker in the same group runs nothing again: the commits moved past every job.
    again = await _worker(kit, calls).run_until_idle(timeout=30)
    assert (again.completed, again.failed) == (0, 0)
    assert calls == Counter({j["job_id"]: 1 for j in jobs})
