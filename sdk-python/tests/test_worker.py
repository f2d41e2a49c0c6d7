"""A worker against the real Kafka: job in, result out, concurrency, errors, poison jobs, presence."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema

from baton import JobContext, NonRetryableError, RetryLater, Worker, __version__

PROTOCOL = Path(__file__).resolve().parents[2] / "protocol" / "schemas"
RESULT_SCHEMA = json.loads((PROTOCOL / "result.schema.json").read_text())
PRESENCE_SCHEMA = json.loads((PROTOCOL / "worker-heartbeat.schema.json").read_text())
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def _valid(result: dict[str, Any], schema: dict[str, Any] = RESULT_SCHEMA) -> dict[str, Any]:
    jsonschema.validate(result, schema, format_checker=FORMATS)
    return result


async def test_result_carries_job_fields_when_the_original_example_runs(kit: Any) -> None:
    worker = Worker(settings=kit.settings())
    worker.register("step1", lambda payload: f"Processed: {payload}")
    job = kit.job("step1", "Hello World", attempt=2)
    await kit.send_job(job)

    report = await worker.run_until_idle(timeout=30)

    assert (report.completed, report.failed, report.dead_lettered) == (1, 0, 0)
    [record] = await kit.read("results", 1)
    result = _valid(json.loads(record.value))
    assert {k: result[k] for k in ("job_id", "run_id", "step", "attempt", "status", "output", "error")} == {
        "job_id": job["job_id"],
        "run_id": job["run_id"],
        "step": "step1",
        "attempt": 2,
        "status": "COMPLETED",
        "output": "Processed: Hello World",
        "error": None,
    }
    assert result["worker"] == {"id": worker.id, "language": "python", "sdk_version": __version__}
    assert worker.id.startswith("python-")
    assert result["started_at"] <= result["finished_at"]
    assert record.key == job["run_id"].encode()
    headers = dict(record.headers)
    assert headers["baton-job-id"] == job["job_id"].encode()
    assert headers["traceparent"].startswith(b"00-0af7651916cd43dd8448eb211c80319c")
    assert await kit.committed("step1") == 1


async def test_sync_and_async_handlers_both_complete_when_registered_together(kit: Any) -> None:
    worker = Worker(settings=kit.settings())

    @worker.action("sync")
    def sync_handler(payload: int, ctx: JobContext) -> dict[str, Any]:
        return {"n": payload * 2, "thread": threading.current_thread().name}

    @worker.action("async")
    async def async_handler(payload: int) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"n": payload + 1, "thread": threading.current_thread().name}

    await kit.send_job(kit.job("sync", 21))
    await kit.send_job(kit.job("async", 41))
    assert (await worker.run_until_idle(timeout=30)).completed == 2

    outputs = {r["step"]: r["output"] for r in map(_valid, await kit.results(2))}
    assert outputs["sync"]["n"] == 42 and outputs["sync"]["thread"].startswith("baton-handler")
    assert outputs["async"] == {"n": 42, "thread": threading.current_thread().name}


async def test_jobs_overlap_when_concurrency_is_above_one(kit: Any) -> None:
    # Room for all six: each barrier only opens when three of its handlers wait at once, so a FAILED
    # result (barrier timeout) means the jobs did not overlap.
    worker = Worker(concurrency=6, settings=kit.settings())
    threads = threading.Barrier(3, timeout=15)
    tasks = asyncio.Barrier(3)

    @worker.action("sync")
    def sync_handler(payload: Any) -> int:
        return threads.wait()

    @worker.action("async")
    async def async_handler(payload: Any) -> str:
        async with asyncio.timeout(15):
            await tasks.wait()
        return "ok"

    for action in ("sync", "sync", "sync", "async", "async", "async"):
        await kit.send_job(kit.job(action))
    report = await worker.run_until_idle(timeout=40)

    assert (report.completed, report.failed) == (6, 0)


async def test_errors_reach_the_results_topic_typed_when_handlers_raise(kit: Any) -> None:
    worker = Worker(settings=kit.settings())

    def later(payload: Any) -> None:
        raise RetryLater(1.5)

    def never(payload: Any) -> None:
        raise NonRetryableError("card declined")

    async def boom(payload: Any) -> None:
        raise ValueError("boom")

    for action, fn in (("later", later), ("never", never), ("boom", boom)):
        worker.register(action, fn)
        await kit.send_job(kit.job(action))
    report = await worker.run_until_idle(timeout=30)

    assert (report.completed, report.failed) == (0, 3)
    errors = {r["step"]: r["error"] for r in map(_valid, await kit.results(3)) if r["status"] == "FAILED"}
    assert errors["later"] | {"message": None} == {
        "type": "RetryLater",
        "message": None,
        "stacktrace": None,
        "retryable": True,
        "retry_after_ms": 1500,
    }
    assert (errors["never"]["type"], errors["never"]["retryable"]) == ("NonRetryableError", False)
    assert errors["never"]["message"] == "card declined"
    assert (errors["boom"]["type"], errors["boom"]["message"], errors["boom"]["retryable"]) == (
        "ValueError",
        "boom",
        True,
    )
    assert "raise ValueError" in errors["boom"]["stacktrace"]
    assert await kit.committed("later") + await kit.committed("never") + await kit.committed("boom") == 3


async def test_oversize_output_fails_for_good_when_over_the_payload_limit(kit: Any) -> None:
    worker = Worker(settings=kit.settings(max_payload_bytes=1000))
    worker.register("big", lambda payload: "x" * 2000)
    await kit.send_job(kit.job("big"))
    assert (await worker.run_until_idle(timeout=30)).failed == 1

    [result] = map(_valid, await kit.results(1))
    assert (result["status"], result["error"]["type"], result["error"]["retryable"]) == (
        "FAILED",
        "PayloadTooLarge",
        False,
    )


async def test_poison_job_goes_to_dlt_and_next_job_runs_when_a_record_is_undecodable(kit: Any) -> None:
    worker = Worker(concurrency=1, settings=kit.settings(topic_partitions=1))
    worker.register("step1", lambda payload: f"Processed: {payload}")
    await kit.create_topics("step1", partitions=1)
    await kit.send_job(b"{not json", action="step1", key=b"run-x")
    wrong_action = kit.job("other")
    await kit.send_job(json.dumps(wrong_action).encode(), action="step1")
    good = kit.job("step1", "after poison")
    await kit.send_job(good)

    report = await worker.run_until_idle(timeout=30)

    assert (report.completed, report.dead_lettered) == (1, 2)
    [result] = await kit.results(1)
    assert (result["job_id"], result["output"]) == (good["job_id"], "Processed: after poison")
    poison, unknown = await kit.read("jobs.DLT", 2)
    assert (poison.value, poison.key) == (b"{not json", b"run-x")
    headers = dict(poison.headers)
    assert headers["kafka_dlt-original-topic"] == f"{kit.prefix}jobs.step1".encode()
    assert int.from_bytes(headers["kafka_dlt-original-partition"], "big") == 0
    assert int.from_bytes(headers["kafka_dlt-original-offset"], "big") == 0
    assert int.from_bytes(headers["kafka_dlt-original-timestamp"], "big") > 0
    assert headers["kafka_dlt-original-consumer-group"] == kit.group.encode()
    assert headers["kafka_dlt-exception-fqcn"] == b"Undecodable"
    assert b"malformed JSON" in headers["kafka_dlt-exception-message"]
    assert headers["baton-dlt-reason"] == b"undecodable"
    assert "baton-job-id" not in headers
    assert dict(unknown.headers)["baton-job-id"] == wrong_action["job_id"].encode()
    assert await kit.committed("step1") == 3


async def test_heartbeat_result_is_sent_when_a_sync_handler_calls_it(kit: Any) -> None:
    worker = Worker(settings=kit.settings())

    def slow(payload: Any, ctx: JobContext) -> str:
        ctx.heartbeat()  # from a handler thread
        return "done"

    worker.register("slow", slow)
    job = kit.job("slow")
    await kit.send_job(job)
    await worker.run_until_idle(timeout=30)

    results = [_valid(r) for r in await kit.results(2)]
    assert [r["status"] for r in results] == ["HEARTBEAT", "COMPLETED"]
    assert results[0]["job_id"] == job["job_id"] and results[0]["finished_at"] is None


async def test_background_worker_runs_jobs_and_publishes_presence_when_used_as_context(kit: Any) -> None:
    worker = Worker(concurrency=2, settings=kit.settings(presence_interval=60))  # exactly one RUNNING
    worker.register("echo", lambda payload: payload)
    async with worker:
        await kit.send_job(kit.job("echo", {"a": 1}))
        [result] = await kit.results(1)
        assert result["output"] == {"a": 1}

    records = await kit.read("workers", 3)
    beats = [_valid(json.loads(r.value), PRESENCE_SCHEMA) for r in records]
    assert [b["status"] for b in beats] == ["RUNNING", "STOPPING", "STOPPED"]
    assert {b["worker_id"] for b in beats} == {worker.id}
    assert (beats[0]["actions"], beats[0]["concurrency"], beats[0]["group_id"]) == (["echo"], 2, kit.group)
    assert all(r.key == worker.id.encode() for r in records)
    assert await kit.committed("echo") == 1


async def test_in_flight_never_exceeds_concurrency_when_more_jobs_are_queued(kit: Any) -> None:
    worker = Worker(concurrency=2, settings=kit.settings())
    running, peak = 0, 0

    @worker.action("count")
    async def count(payload: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    for _ in range(8):
        await kit.send_job(kit.job("count"))
    assert (await worker.run_until_idle(timeout=30)).completed == 8
    assert peak == 2


async def test_unfinished_job_stays_uncommitted_and_runs_again_when_drain_times_out(kit: Any) -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    first = Worker(settings=kit.settings())

    @first.action("stuck")
    async def stuck(payload: Any) -> str:
        started.set()
        await release.wait()  # never set: the drain must give up on it
        return "unreachable"

    job = kit.job("stuck")
    await kit.send_job(job)
    async with first:
        await asyncio.wait_for(started.wait(), 20)
        await first.stop(timeout=0.2)
    assert await kit.committed("stuck") == 0

    second = Worker(settings=kit.settings())
    second.register("stuck", lambda payload: "second time")
    assert (await second.run_until_idle(timeout=30)).completed == 1
    [result] = await kit.results(1)
    assert (result["job_id"], result["output"]) == (job["job_id"], "second time")


async def test_jobs_in_flight_are_not_run_again_when_a_second_worker_joins_the_group(kit: Any) -> None:
    """A rebalance waits for the jobs running on revoked partitions, so their next owner skips them."""
    await kit.create_topics("slow", partitions=4)
    calls: Counter[str] = Counter()

    async def slow(payload: Any, ctx: JobContext) -> Any:
        calls[ctx.job_id] += 1
        await asyncio.sleep(0.5)
        return payload

    first, second = Worker(concurrency=8, settings=kit.settings()), Worker(concurrency=8, settings=kit.settings())
    first.register("slow", slow)
    second.register("slow", slow)
    jobs = [kit.job("slow", i) for i in range(48)]  # one run id each: spread over the 4 partitions
    for job in jobs:
        await kit.send_job(job)
    async with first:
        await kit.eventually(lambda: _true(len(calls) >= 8), 20)  # the first worker has 8 jobs in flight
        async with second:  # joining rebalances the group while they run
            results = await kit.results(len(jobs), timeout=40)
            await asyncio.sleep(1.0)  # a job run again would be running now
    assert sorted(r["job_id"] for r in results) == sorted(j["job_id"] for j in jobs)
    assert set(calls) == {j["job_id"] for j in jobs}
    assert [job for job, n in calls.items() if n > 1] == []


async def _true(value: bool) -> bool:
    return value
