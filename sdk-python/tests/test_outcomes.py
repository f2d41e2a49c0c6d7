"""R2.2: whatever a handler does, its job ends in one result, its offset is committed, and the jobs after
it on the same partition still run (real Kafka, one partition, so they all queue behind the bad ones)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

from aiokafka.admin import NewTopic

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


async def test_job_with_a_lone_surrogate_in_its_ids_is_dead_lettered_and_the_next_job_runs(kit: Any) -> None:
    """A result naming such a job could never be encoded: without this the partition froze behind it."""
    await kit.create_topics("sync", partitions=1)
    bad = kit.job("sync", "x")
    raw = json.dumps(bad).replace(bad["run_id"], "\\udcff" + bad["run_id"][1:]).encode()
    await kit.send_job(raw, action="sync")
    good = kit.job("sync", "after")
    await kit.send_job(good)
    calls: Counter[str] = Counter()

    report = await _worker(kit, calls).run_until_idle(timeout=30)

    assert (report.completed, report.dead_lettered) == (1, 1)
    [dead] = await kit.read("jobs.DLT", 1)
    assert dead.value == raw and b"run_id" in dict(dead.headers)["kafka_dlt-exception-message"]
    assert await kit.committed("sync") == 2


async def test_bookkeeping_is_empty_after_thousands_of_jobs_through_every_outcome(kit: Any) -> None:
    await kit.create_topics("sync", "async", partitions=2)
    kinds = [*BAD_SYNC, "ok"]
    jobs = [kit.job("sync", kinds[n % len(kinds)]) for n in range(3000)]
    sends = [
        await kit.producer.send(f"{kit.prefix}jobs.sync", json.dumps(j).encode(), key=j["run_id"].encode())
        for j in jobs
    ]
    await asyncio.gather(*sends)
    worker = _worker(kit, Counter())
    async with worker:
        runtime = worker._runtime
        assert runtime is not None
        tracker = runtime._committer.tracker  # type: ignore[union-attr]

        async def all_committed() -> bool:
            return await kit.committed("sync") == len(jobs)

        await kit.eventually(all_committed, timeout=60, every=0.5)
        parts = tracker._parts.values()
        assert sum(len(p.pending) + len(p.done) for p in parts) == 0
        assert len(runtime._tasks) == 0 and len(runtime._extra) <= 1 and worker.stuck_slots == 0
    counts = Counter(r["status"] for r in await kit.results(len(jobs), timeout=30))
    ok = sum(j["input"] == "ok" for j in jobs)
    assert counts == {"COMPLETED": ok, "FAILED": len(jobs) - ok}


async def test_result_refused_by_kafka_as_too_large_is_replaced_by_a_failed_one_when_the_topic_limit_is_lower(
    kit: Any,
) -> None:
    results_topic = f"{kit.prefix}results"
    await kit.admin.create_topics([NewTopic(results_topic, 1, 1, topic_configs={"max.message.bytes": "2000"})])
    kit.created.append(results_topic)
    await kit.create_topics("sync", partitions=1)
    big, after = kit.job("sync", "big"), kit.job("sync", "ok")
    await kit.send_job(big)
    await kit.send_job(after)
    worker = Worker(settings=kit.settings(topic_partitions=1))
    worker.register("sync", lambda payload: "x" * 5000 if payload == "big" else payload)

    report = await worker.run_until_idle(timeout=30)

    assert (report.completed, report.failed) == (1, 1)
    results = {r["job_id"]: r for r in await kit.results(2)}
    refused = results[big["job_id"]]
    assert (refused["status"], refused["error"]["type"], refused["error"]["retryable"]) == (
        "FAILED",
        "PayloadTooLarge",
        False,
    )
    assert "rejected by Kafka" in refused["error"]["message"] and refused["output"] is None
    assert results[after["job_id"]]["output"] == "ok"
    assert await kit.committed("sync") == 2


async def test_poison_job_too_large_for_the_dlt_is_dead_lettered_without_its_value_and_the_next_job_runs(
    kit: Any,
) -> None:
    dlt = f"{kit.prefix}jobs.DLT"
    await kit.admin.create_topics([NewTopic(dlt, 1, 1, topic_configs={"max.message.bytes": "2000"})])
    kit.created.append(dlt)
    await kit.create_topics("sync", partitions=1)
    await kit.send_job(b"not json " * 600, action="sync")
    after = kit.job("sync", "ok")
    await kit.send_job(after)
    worker = Worker(settings=kit.settings(topic_partitions=1))
    worker.register("sync", lambda payload: payload)

    report = await worker.run_until_idle(timeout=30)

    assert (report.completed, report.dead_lettered) == (1, 1)
    [dead] = await kit.read("jobs.DLT", 1)
    assert dead.value is None and dict(dead.headers)["baton-dlt-value-dropped"]
    assert dict(dead.headers)["baton-dlt-reason"] == b"undecodable"
    assert await kit.committed("sync") == 2
