"""Poison on every consumed topic (jobs of each SDK, results, workers): each record lands in the right
DLT (or is rejected / ignored with a clear log), and the stream keeps flowing."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from .harness import Scenario, wait_until

ACTIONS = {"python": "p.py", "node": "p.node", "java": "p.java"}
WF = {
    "id": "poisoned",
    "retry": {"max_retries": 3, "initial_interval": "0.5s"},
    "steps": [{"name": lang, "action": action, "timeout": "20s"} for lang, action in ACTIONS.items()],
}


def _job(**over: object) -> bytes:
    body = {
        "v": 1,
        "job_id": uuid.uuid4().hex,
        "run_id": str(uuid.uuid4()),
        "workflow_id": "poisoned",
        "workflow_version": 1,
        "step": "python",
        "action": "p.py",
        "attempt": 1,
        "max_attempts": 4,
        "input": None,
        "deadline": "2030-01-01T00:00:00.000Z",
        "created_at": "2030-01-01T00:00:00.000Z",
    }
    body.update(over)
    return orjson.dumps(body)


def _result(**over: object) -> bytes:
    body = {
        "v": 1,
        "job_id": uuid.uuid4().hex,
        "run_id": str(uuid.uuid4()),
        "step": "python",
        "attempt": 1,
        "status": "COMPLETED",
        "output": 1,
        "error": None,
        "worker": {"id": "poison", "language": "test", "sdk_version": "0"},
        "started_at": "2030-01-01T00:00:00.000Z",
        "finished_at": "2030-01-01T00:00:00.000Z",
    }
    body.update(over)
    return orjson.dumps(body)


JUNK = b"\xff\xfe" + b"x" * 500_000  # large, not UTF-8, not JSON: under the broker's limit, still poison
JOB_POISON = {
    "malformed": b'{"v": 1, "job_id": ',
    "wrong_types": _job(attempt="one", workflow_version="1"),
    "unknown_version": _job(v=99),
    "not_an_object": b"[1, 2, 3]",
    "large_junk": JUNK,
}
RESULT_POISON = {
    "malformed": b"not json at all",
    "wrong_types": _result(attempt="1"),
    "unknown_version": _result(v=2),
    "failed_without_error": _result(status="FAILED", error=None),
    "run_id_not_uuid": _result(run_id="run-42"),
    "large_junk": JUNK,
}


async def _produce(kafka: str, records: list[tuple[str, bytes]]) -> str:
    """Send the poison, then try a record over the broker's limit: it must be rejected with a clear error."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        for topic, value in records:
            await producer.send_and_wait(topic, value, key=b"poison")
        with pytest.raises(KafkaError) as rejected:
            await producer.send_and_wait(records[0][0], b"x" * (3 * 1024 * 1024), key=b"poison")
        return type(rejected.value).__name__
    finally:
        await producer.stop()


async def _read_dlt(kafka: str, topic: str, expect: int, timeout: float = 30) -> list:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    out: list = []
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while len(out) < expect and loop.time() < end:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                out += batch
        await asyncio.sleep(1)  # anything extra (a poison record dead-lettered twice) shows up too
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            out += batch
    finally:
        await consumer.stop()
    return out


def test_poison_on_every_topic_is_dead_lettered_and_the_stream_keeps_flowing(scenario: Scenario) -> None:
    scenario.start_orchestrator()
    scenario.define(WF)
    for lang, action in ACTIONS.items():
        scenario.start_worker(lang, lang, [action])  # all three in the one default worker group
    prefix = scenario.env["BATON_TOPIC_PREFIX"]
    kafka = scenario.conn.kafka
    warm = scenario.trigger("poisoned", "warm-up")  # every worker is in its group before the poison
    scenario.wait_terminal([warm], 90)

    records = [(f"{prefix}jobs.{action}", v) for action in ACTIONS.values() for v in JOB_POISON.values()]
    records += [(f"{prefix}results", v) for v in RESULT_POISON.values()]
    unknown_run = str(uuid.uuid4())
    records.append((f"{prefix}results", _result(run_id=unknown_run)))  # valid, but no such run
    records += [(f"{prefix}workers", b"{{{"), (f"{prefix}workers", b'{"v": 7, "worker_id": "w"}')]
    oversize_error = asyncio.run(_produce(kafka, records))

    run_ids = [warm, *scenario.trigger_many("poisoned", range(10))]
    scenario.wait_terminal(run_ids, 90)
    counts = scenario.check(run_ids, list(ACTIONS))

    jobs_dlt = asyncio.run(_read_dlt(kafka, f"{prefix}jobs.DLT", len(ACTIONS) * len(JOB_POISON)))
    results_dlt = asyncio.run(_read_dlt(kafka, f"{prefix}results.DLT", len(RESULT_POISON)))

    def by_origin(recs: list) -> Counter:
        return Counter(dict(r.headers)["kafka_dlt-original-topic"].decode() for r in recs)

    assert by_origin(jobs_dlt) == Counter({f"{prefix}jobs.{a}": len(JOB_POISON) for a in ACTIONS.values()}), by_origin(
        jobs_dlt
    )
    assert by_origin(results_dlt) == Counter({f"{prefix}results": len(RESULT_POISON)}), by_origin(results_dlt)
    # A result that names its attempt (ids fine, the rest not) is refused as invalid_result (its attempt
    # fails at once); one that names nothing is undecodable.
    identifiable = {RESULT_POISON["wrong_types"], RESULT_POISON["failed_without_error"]}
    for rec in jobs_dlt + results_dlt:
        headers = dict(rec.headers)
        expected = b"invalid_result" if rec.value in identifiable else b"undecodable"
        assert headers["baton-dlt-reason"] == expected, headers
        assert headers["kafka_dlt-exception-message"], headers
    # Byte for byte: every poison value is in its DLT unchanged.
    assert Counter(r.value for r in jobs_dlt) == Counter(v for a in ACTIONS for v in JOB_POISON.values())
    assert Counter(r.value for r in results_dlt) == Counter(RESULT_POISON.values())
    log = scenario.procs.log("orchestrator", 1_000_000)
    wait_until(
        lambda: "result for unknown run ignored" in scenario.procs.log("orchestrator", 1_000_000),
        10,
        what="the unknown-run result logged",
    )
    assert "undecodable worker heartbeat ignored" in log
    assert scenario.procs.procs["orchestrator"].poll() is None
    assert all(scenario.procs.procs[lang].poll() is None for lang in ACTIONS), scenario.procs.logs()
    scenario.report(
        counts,
        poison_records=len(records),
        jobs_dlt=len(jobs_dlt),
        results_dlt=len(results_dlt),
        oversize_rejected_with=oversize_error,
    )
