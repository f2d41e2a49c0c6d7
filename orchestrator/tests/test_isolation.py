"""One bad result, value or job never stalls anyone else's runs (R2.1), against real Kafka and PostgreSQL.

Each poison is produced on `workflow-results` as raw bytes for a real open attempt, the way a buggy or
hostile worker would send it; normal runs triggered afterwards must all complete promptly.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from baton_orchestrator.bus import codec

from .conftest import RawWorker, eventually, make_settings

OK = {"id": "ok", "steps": [{"name": "only", "action": "t.ok"}]}
VICTIM = {
    "id": "victim",
    "retry": {"max_retries": 1, "initial_interval": "0.1s"},
    "steps": [{"name": "only", "action": "t.victim", "timeout": "60s"}],
}
NOW = "2030-01-01T00:00:00.000Z"
# The output (or whole result) as raw JSON text: several are values orjson would refuse to produce.
POISON = {
    "nul": b'"a\\u0000b"',
    "nul_in_key": b'{"k\\u0000": 1}',
    "lone_surrogate": b'"bad \\udcff"',
    "deep": b"[" * 200 + b"]" * 200,
    "int_beyond_64_bits": b"1180591620717411303424",
    "negative_beyond_64_bits": b"-9223372036854775809",
}


def _raw_result(job: dict, output: bytes = b"1", **fields: object) -> bytes:
    head = {
        "v": 1,
        "job_id": job["job_id"],
        "run_id": job["run_id"],
        "step": job["step"],
        "attempt": job["attempt"],
        "status": "COMPLETED",
        "error": None,
        "worker": {"id": "poison", "language": "test", "sdk_version": "0"},
        "started_at": NOW,
        "finished_at": NOW,
        **fields,
    }
    return orjson.dumps(head)[:-1] + b', "output": ' + output + b"}"


async def _dlt(settings, expect: int, timeout: float = 20) -> list:
    consumer = AIOKafkaConsumer(
        settings.results_dlt_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list = []
    try:
        end = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < end:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                out += batch
    finally:
        await consumer.stop()
    return out


@pytest.fixture
async def producer(settings):
    p = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await p.start()
    yield p
    await p.stop()


async def test_poison_results_fail_only_their_attempt_and_every_other_run_completes(
    client, raw_worker, settings, producer
):
    await client.define(OK)
    await client.define(VICTIM)
    kinds: dict[str, str] = {}

    async def poisoned(job: dict) -> object:
        value = _raw_result(job, POISON[kinds[job["run_id"]]])
        await producer.send_and_wait(settings.results_topic, value, key=job["run_id"].encode())
        return RawWorker.NO_REPLY

    async with raw_worker({"t.victim": poisoned, "t.ok": lambda job: f"fine {job['input']}"}):
        for kind in POISON:
            resp = await client.trigger("victim", kind)
            kinds[resp.json()["run_id"]] = kind
        oks = [(await client.trigger("ok", i)).json()["run_id"] for i in range(10)]
        for run_id in oks:
            assert (await client.wait_run(run_id, timeout=20))["status"] == "COMPLETED"
        for run_id, kind in kinds.items():
            run = await client.wait_run(run_id, timeout=30)
            assert run["status"] == "FAILED", (kind, run)
            attempts = run["steps"][0]["attempts"]
            # The typed error followed the retry policy: two attempts, then a dead letter.
            assert [a["error"]["type"] for a in attempts] == ["invalid_result"] * 2, (kind, attempts)
            assert "refused" in attempts[0]["error"]["message"], attempts[0]
    dlt = await _dlt(settings, 2 * len(POISON))
    reasons = {dict(r.headers)["baton-dlt-reason"] for r in dlt}
    assert len(dlt) == 2 * len(POISON) and reasons == {b"invalid_result"}, (len(dlt), reasons)


async def test_malformed_timestamps_ids_and_delays_are_refused_without_stalling(client, raw_worker, settings, producer):
    await client.define(OK)
    await client.define(VICTIM)
    sent: dict[str, str] = {}
    cases = {
        "bad_finished_at": lambda job: _raw_result(job, finished_at="yesterday"),
        "naive_started_at": lambda job: _raw_result(job, started_at="2030-01-01T00:00:00"),
        "heartbeat_bad_started_at": lambda job: _raw_result(job, status="HEARTBEAT", started_at="soon"),
        "run_id_urn_form": lambda job: _raw_result({**job, "run_id": f"urn:uuid:{job['run_id']}"}),
        "retry_delay_overflows": lambda job: _raw_result(
            job,
            status="FAILED",
            error={"type": "RetryLater", "message": "later", "retryable": True, "retry_after_ms": 1e300},
        ),
    }

    async def poisoned(job: dict) -> object:
        if job["attempt"] == 1:
            kind = sent[job["run_id"]]
            await producer.send_and_wait(settings.results_topic, cases[kind](job), key=job["run_id"].encode())
        return RawWorker.NO_REPLY

    async with raw_worker({"t.victim": poisoned, "t.ok": lambda job: job["input"]}):
        for kind in cases:
            sent[(await client.trigger("victim", kind)).json()["run_id"]] = kind
        await asyncio.sleep(1)
        oks = [(await client.trigger("ok", i)).json()["run_id"] for i in range(5)]
        for run_id in oks:
            assert (await client.wait_run(run_id, timeout=20))["status"] == "COMPLETED"
        by_kind = {kind: run_id for run_id, kind in sent.items()}

        async def failed_first(kind: str) -> dict | None:
            run = await client.run(by_kind[kind])
            attempts = run["steps"][0]["attempts"]
            return run if attempts and attempts[0]["status"] == "FAILED" else None

        for kind in ("bad_finished_at", "naive_started_at"):
            run = await eventually(lambda k=kind: failed_first(k))
            assert run["steps"][0]["attempts"][0]["error"]["type"] == "invalid_result", run
        delayed = await eventually(lambda: failed_first("retry_delay_overflows"))
        step = delayed["steps"][0]
        assert step["status"] == "FAILED" and step["next_attempt_at"], step  # retrying, clamped
        retry_at = datetime.fromisoformat(step["next_attempt_at"].replace("Z", "+00:00"))
        assert retry_at < datetime.now(UTC) + timedelta(days=31), step
        for kind in ("heartbeat_bad_started_at", "run_id_urn_form"):  # nothing to fail: the attempt stays open
            run = await client.run(by_kind[kind])
            assert run["steps"][0]["status"] in ("QUEUED", "RUNNING"), (kind, run)
    assert len(await _dlt(settings, 4)) >= 4


async def test_a_result_the_database_refuses_is_isolated_and_its_batch_mates_applied(
    client, raw_worker, settings, producer, monkeypatch
):
    """The codec's checks switched off: PostgreSQL itself refuses the NUL, and bisection finds the record."""
    monkeypatch.setattr(codec, "check_raw", lambda raw, value, what="": None)
    await client.define(OK)
    await client.define(VICTIM)
    victim = (await client.trigger("victim", "nul")).json()["run_id"]
    oks = [(await client.trigger("ok", i)).json()["run_id"] for i in range(20)]
    jobs: list[dict] = []
    async with raw_worker({"t.victim": lambda job: jobs.append(job) or RawWorker.NO_REPLY, "t.ok": jobs.append}) as w:
        await eventually(lambda: _true(len(jobs) == 21), 20)
        w.handlers["t.victim"] = lambda job: RawWorker.NO_REPLY
        # The whole lot in one burst, so the poison shares its batch with the others.
        for job in jobs:
            out = POISON["nul"] if job["run_id"] == victim else b'"fine"'
            await producer.send(settings.results_topic, _raw_result(job, out), key=job["run_id"].encode())
        await producer.flush()
        for run_id in oks:
            assert (await client.wait_run(run_id, timeout=20))["status"] == "COMPLETED"
        run = await eventually(lambda: _first_failed(client, victim))
        assert run["steps"][0]["attempts"][0]["error"]["type"] == "invalid_result"
        assert "DataError" in run["steps"][0]["attempts"][0]["error"]["message"] or "Unicode" in str(run), run


async def _first_failed(client, run_id: str) -> dict | None:
    run = await client.run(run_id)
    attempts = run["steps"][0]["attempts"]
    return run if attempts and attempts[0]["status"] == "FAILED" else None


async def _true(value: bool) -> bool:
    return value


async def test_a_templated_job_over_the_payload_limit_fails_its_step_and_never_reaches_kafka(
    start_app, services, unique, raw_worker
):
    from baton_orchestrator.db import migrate

    s = make_settings(services, unique, max_payload_bytes=20_000)
    await asyncio.to_thread(migrate, s)
    client = await start_app(s=s)
    await client.define(
        {
            "id": "grow",
            "steps": [
                {"name": "a", "action": "t.a"},
                {
                    "name": "b",
                    "action": "t.b",
                    "depends_on": ["a"],
                    "input": {"x": "$.steps.a.output", "y": "$.steps.a.output"},
                },
                {"name": "c", "action": "t.c", "depends_on": ["a"]},
            ],
        }
    )
    async with raw_worker({"t.a": lambda j: "z" * 15_000, "t.b": lambda j: 1, "t.c": lambda j: 2}, s=s) as worker:
        run_id = (await client.trigger("grow", None)).json()["run_id"]
        run = await client.wait_run(run_id, timeout=20)
        await asyncio.sleep(0.5)
    assert run["status"] == "FAILED", run
    b = next(st for st in run["steps"] if st["name"] == "b")
    assert b["status"] == "DEAD_LETTERED" and b["error"]["type"] == "PayloadTooLarge", b
    assert "30,0" in b["error"]["message"] and "20,000" in b["error"]["message"], b["error"]
    assert sorted(j["step"] for j in worker.seen) == ["a", "c"]  # b's job never sent; c ran once
    dlq = (await client.http.get("/dlq")).json()["items"]
    assert [(d["step"], d["reason"]) for d in dlq] == [("b", "payload_too_large")], dlq
    # At trigger time the same rule is a 413 and nothing is created.
    await client.define({"id": "twice", "steps": [{"name": "a", "action": "t.a", "input": ["$.input", "$.input"]}]})
    resp = await client.trigger("twice", "q" * 12_000)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large", resp.text
    assert (await client.http.get("/workflow/runs?workflow_id=twice")).json()["items"] == []


async def test_an_engine_dropped_from_its_group_rejoins_and_consumes_again(start_app, services, unique, raw_worker):
    """PostgreSQL 'down' (every apply fails transiently) for longer than max.poll.interval: the consumer is
    dropped from the group; once PostgreSQL is back the engine's commit is refused, and it must carry on."""
    import psycopg

    from baton_orchestrator.db import migrate
    from baton_orchestrator.engine.apply import Applier

    s = make_settings(services, unique, engine_max_poll_interval_seconds=2)
    await asyncio.to_thread(migrate, s)
    client = await start_app(s=s)
    await client.define(OK)
    real_apply = Applier.apply
    down_until = time.monotonic() + 1e9

    async def flaky(self, conn, outcomes, writes):
        if time.monotonic() < down_until:
            raise psycopg.OperationalError("connection refused (test outage)")
        return await real_apply(self, conn, outcomes, writes)

    Applier.apply = flaky
    try:
        async with raw_worker({"t.ok": lambda job: job["input"]}, s=s):
            before = [(await client.trigger("ok", i)).json()["run_id"] for i in range(5)]
            down_until = time.monotonic() + 6  # three poll intervals without a poll
            await asyncio.sleep(7)
            for run_id in before:
                assert (await client.wait_run(run_id, timeout=30))["status"] == "COMPLETED"
            after = [(await client.trigger("ok", i)).json()["run_id"] for i in range(5)]
            for run_id in after:
                assert (await client.wait_run(run_id, timeout=30))["status"] == "COMPLETED"
    finally:
        Applier.apply = real_apply


async def test_an_outbox_record_kafka_refuses_for_good_ends_its_step_instead_of_looping(
    start_app, services, unique, monkeypatch
):
    """The relay's permanent-failure path: a job record larger than any request Kafka takes."""
    import psycopg

    from baton_orchestrator.db import migrate
    from baton_orchestrator.engine.dispatch import Publisher

    s = make_settings(services, unique, relay_grace_seconds=0.3)
    await asyncio.to_thread(migrate, s)

    async def held(self, msgs):  # the hot path leaves every row to the relay
        return False

    monkeypatch.setattr(Publisher, "publish", held)
    client = await start_app(s=s)
    await client.define(
        {"id": "huge-job", "retry": {"max_retries": 3}, "steps": [{"name": "only", "action": "t.none"}]}
    )
    async with await psycopg.AsyncConnection.connect(services.database_url, autocommit=True) as conn:
        await conn.execute(f'SET search_path TO "{s.database_schema}"')
        # Hold the relay off the step until its job is 3 MiB: beyond the producer's largest request (2 MiB).
        # The relay rebuilds the job from the step's columns.
        async with conn.transaction():
            run_id = (await client.trigger("huge-job", 1)).json()["run_id"]
            await conn.execute(
                "UPDATE steps SET input = to_jsonb(repeat('x', 3145728)) WHERE run_id = %s AND status = 'QUEUED'",
                (run_id,),
            )

        async def failed() -> dict | None:
            run = await client.run(run_id)
            return run if run["status"] == "FAILED" else None

        run = await eventually(failed, 30)
        step = run["steps"][0]
        assert step["status"] == "DEAD_LETTERED" and step["error"]["type"] == "PayloadTooLarge", step
        assert "refused the job" in step["error"]["message"], step["error"]
        assert len(step["attempts"]) == 1  # given up at once: a retry could never be sent either

        async def outbox_empty() -> bool:
            return (await (await conn.execute("SELECT count(*) FROM outbox")).fetchone())[0] == 0

        await eventually(outbox_empty, 20)
