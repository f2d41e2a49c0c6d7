"""Runs end to end against real Kafka, PostgreSQL and Redis, with a raw aiokafka test worker."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime
from pathlib import Path

import jsonschema
from aiokafka import AIOKafkaConsumer

from .conftest import RawWorker, eventually

ORIGINAL = {
    "id": "my-first-workflow",
    "steps": [{"action": "step1", "stepIndex": 0}, {"action": "step2", "stepIndex": 1}],
}


async def test_original_two_step_workflow_completes_when_posted_verbatim(client, raw_worker):
    await client.define(ORIGINAL)
    handlers = {
        "step1": lambda job: f"Processed: {job['input']}",
        "step2": lambda job: f"Step 2 processed: {job['input']}",
    }
    async with raw_worker(handlers) as worker:
        resp = await client.trigger("my-first-workflow", "Hello World")
        assert resp.status_code == 201, resp.text
        run = await client.wait_run(resp.json()["run_id"])
    validator = schema("job")
    for job in worker.seen:
        validator.validate(job)
    assert [(j["step"], j["attempt"], j["max_attempts"]) for j in worker.seen] == [("step1", 1, 4), ("step2", 1, 4)]
    assert run["status"] == "COMPLETED"
    assert run["output"] == "Step 2 processed: Processed: Hello World"
    assert [s["status"] for s in run["steps"]] == ["COMPLETED", "COMPLETED"]
    assert [len(s["attempts"]) for s in run["steps"]] == [1, 1]
    attempt = run["steps"][0]["attempts"][0]
    assert attempt["worker"]["language"] == "test" and attempt["finished_at"] and attempt["output"]


async def test_dag_fans_out_and_in_with_keyed_inputs_when_steps_depend_on_several(client, raw_worker):
    await client.define(
        {
            "id": "dag",
            "steps": [
                {"name": "a", "action": "t.a"},
                {"name": "b", "action": "t.b", "depends_on": ["a"]},
                {"name": "c", "action": "t.c", "depends_on": ["a"]},
                {"name": "d", "action": "t.d", "depends_on": ["b", "c"]},
            ],
        }
    )
    handlers = {
        "t.a": lambda j: {"n": j["input"]},
        "t.b": lambda j: j["input"]["n"] + 1,
        "t.c": lambda j: j["input"]["n"] * 10,
        "t.d": lambda j: j["input"],
    }
    async with raw_worker(handlers) as worker:
        run_id = (await client.trigger("dag", 5)).json()["run_id"]
        run = await client.wait_run(run_id)
    assert run["status"] == "COMPLETED"
    assert run["output"] == {"b": 6, "c": 50}
    assert sorted(j["step"] for j in worker.seen) == ["a", "b", "c", "d"]


class Boom(Exception):
    pass


class Fatal(Exception):
    retryable = False


class Later(Exception):
    retry_after_ms = 300


FAST_RETRY = {"max_retries": 3, "initial_interval": "1s"}


async def test_step_completes_on_third_attempt_when_handler_fails_twice(client, raw_worker):
    await client.define({"id": "flaky", "steps": [{"action": "t.flaky", "retry": {"initial_interval": 0.1}}]})

    def flaky(job):
        if job["attempt"] < 3:
            raise Boom(f"attempt {job['attempt']}")
        return {"attempt": job["attempt"]}

    async with raw_worker({"t.flaky": flaky}) as worker:
        run = await client.wait_run((await client.trigger("flaky", 1)).json()["run_id"])
    assert run["status"] == "COMPLETED" and run["output"] == {"attempt": 3}
    attempts = run["steps"][0]["attempts"]
    assert [a["status"] for a in attempts] == ["FAILED", "FAILED", "COMPLETED"]
    assert attempts[0]["error"]["type"] == "Boom"
    assert len({j["job_id"] for j in worker.seen}) == 3


async def test_step_is_dead_lettered_after_four_attempts_one_second_apart_then_redrive_completes(
    client, raw_worker, settings, services
):
    await client.define({"id": "always-fails", "steps": [{"action": "t.bad", "retry": FAST_RETRY}]})
    healthy = False

    def bad(job):
        if not healthy:
            raise Boom("still broken")
        return "fixed"

    async with raw_worker({"t.bad": bad}) as worker:
        run_id = (await client.trigger("always-fails", {"x": 1})).json()["run_id"]
        run = await client.wait_run(run_id, timeout=20)
        assert run["status"] == "FAILED"
        step = run["steps"][0]
        assert step["status"] == "DEAD_LETTERED" and len(step["attempts"]) == 4
        queued = [a["queued_at"] for a in step["attempts"]]
        gaps = [_seconds(b) - _seconds(a) for a, b in itertools.pairwise(queued)]
        assert all(0.9 <= g <= 2.5 for g in gaps), gaps
        dlq = (await client.http.get("/dlq")).json()["items"]
        assert len(dlq) == 1 and dlq[0]["run_id"] == run_id and dlq[0]["reason"] == "retries_exhausted"
        record = await _read_one(services, settings.jobs_dlt_topic)
        headers = dict(record.headers)
        schema("dlt-headers").validate({k: v.decode() for k, v in headers.items()})
        assert headers["baton-dlt-reason"] == b"retries_exhausted"
        assert headers["kafka_dlt-original-topic"] == settings.job_topic("t.bad").encode()
        assert headers["kafka_dlt-exception-fqcn"] == b"Boom"
        job = json.loads(record.value)
        assert job["run_id"] == run_id and job["attempt"] == 4 and job["input"] == {"x": 1}

        healthy = True
        resp = await client.http.post(f"/dlq/{dlq[0]['id']}/redrive", json={"input": {"x": 2}})
        assert resp.status_code == 200, resp.text
        run = await client.wait_run(run_id, statuses=("COMPLETED",))
    assert run["output"] == "fixed"
    assert worker.seen[-1]["input"] == {"x": 2} and worker.seen[-1]["attempt"] == 5
    assert (await client.http.get("/dlq")).json()["items"] == []
    again = await client.http.post(f"/dlq/{dlq[0]['id']}/redrive")
    assert again.status_code == 409 and again.json()["error"]["code"] == "dead_letter_closed"


async def test_non_retryable_error_dead_letters_after_one_attempt(client, raw_worker):
    await client.define({"id": "fatal", "steps": [{"action": "t.fatal"}]})

    def fatal(job):
        raise Fatal("card declined")

    async with raw_worker({"t.fatal": fatal}):
        run = await client.wait_run((await client.trigger("fatal")).json()["run_id"])
    assert run["status"] == "FAILED"
    assert len(run["steps"][0]["attempts"]) == 1
    dlq = (await client.http.get("/dlq")).json()["items"]
    assert dlq[0]["reason"] == "non_retryable" and dlq[0]["error"]["message"] == "card declined"


async def test_retry_later_waits_the_requested_delay_instead_of_the_policy(client, raw_worker):
    await client.define({"id": "later", "steps": [{"action": "t.later", "retry": {"initial_interval": "10s"}}]})

    def later(job):
        if job["attempt"] == 1:
            raise Later("not yet")
        return "ok"

    async with raw_worker({"t.later": later}):
        run = await client.wait_run((await client.trigger("later")).json()["run_id"], timeout=8)
    assert run["status"] == "COMPLETED"
    first, second = run["steps"][0]["attempts"]
    assert first["error"]["retry_after_ms"] == 300
    assert 0.25 <= _seconds(second["queued_at"]) - _seconds(first["finished_at"]) < 3


async def test_silent_worker_times_out_and_the_retry_completes(client, raw_worker):
    await client.define(
        {"id": "slow", "steps": [{"action": "t.slow", "timeout": "500ms", "retry": {"initial_interval": 0.1}}]}
    )

    def slow(job):
        return RawWorker.NO_REPLY if job["attempt"] == 1 else "second time lucky"

    async with raw_worker({"t.slow": slow}):
        run = await client.wait_run((await client.trigger("slow")).json()["run_id"])
    assert run["status"] == "COMPLETED"
    first = run["steps"][0]["attempts"][0]
    assert first["status"] == "FAILED" and first["error"]["type"] == "Timeout"


async def test_duplicate_and_stale_results_are_no_ops(client, raw_worker):
    await client.define(
        {"id": "dupes", "steps": [{"action": "t.one", "retry": {"initial_interval": 0.1}}, {"action": "t.two"}]}
    )
    jobs = []

    def one(job):
        jobs.append(job)
        if job["attempt"] == 1:
            raise Boom("first")
        return "one"

    async with raw_worker({"t.one": one, "t.two": lambda j: "two"}) as worker:
        run_id = (await client.trigger("dupes")).json()["run_id"]
        run = await client.wait_run(run_id)
        # Replay: a late COMPLETED for the failed first attempt, and a duplicate of the second's result.
        await worker.send_result(jobs[0], status="COMPLETED", output="stale", error=None)
        await worker.send_result(jobs[1], status="COMPLETED", output="duplicate", error=None)

        async def ignored_recorded():
            detail = await client.run(run_id)
            return (
                detail
                if len([a for a in detail["steps"][0]["attempts"]]) == 2
                and await _events(client, run_id, "result_ignored") >= 2
                else None
            )

        await eventually(ignored_recorded, timeout=10)
    run = await client.run(run_id)
    assert run["steps"][0]["output"] == "one" and run["output"] == "two"
    assert [j["step"] for j in worker.seen].count("t.two") == 1


async def test_cancel_stops_dispatching_the_next_steps(client, raw_worker):
    await client.define({"id": "cancel-me", "steps": [{"action": "t.hold"}, {"action": "t.next"}]})
    async with raw_worker({"t.hold": lambda j: RawWorker.NO_REPLY, "t.next": lambda j: "never"}) as worker:
        run_id = (await client.trigger("cancel-me")).json()["run_id"]
        await eventually(lambda: _async(len(worker.seen) == 1))
        resp = await client.http.post(f"/workflow/run/{run_id}/cancel")
        assert resp.status_code == 200 and resp.json()["status"] == "CANCELLED"
        await worker.send_result(worker.seen[0], status="COMPLETED", output="late", error=None)
        await eventually(lambda: _events_at_least(client, run_id, "result_ignored", 1), timeout=10)
    run = await client.run(run_id)
    assert run["status"] == "CANCELLED" and [s["status"] for s in run["steps"]] == ["CANCELLED", "CANCELLED"]
    assert all(j["action"] != "t.next" for j in worker.seen)
    again = await client.http.post(f"/workflow/run/{run_id}/cancel")
    assert again.status_code == 409


async def test_retry_run_reopens_the_failed_step_with_a_fresh_budget(client, raw_worker):
    await client.define(
        {"id": "retry-run", "steps": [{"action": "t.first"}, {"action": "t.once", "retry": {"max_retries": 0}}]}
    )
    calls = []

    def once(job):
        calls.append(job["attempt"])
        if len(calls) == 1:
            raise Boom("transient")
        return f"done {job['input']}"

    async with raw_worker({"t.first": lambda j: "first", "t.once": once}):
        run_id = (await client.trigger("retry-run")).json()["run_id"]
        assert (await client.wait_run(run_id))["status"] == "FAILED"
        resp = await client.http.post(f"/workflow/run/{run_id}/retry")
        assert resp.status_code == 200 and resp.json()["reopened_steps"] == ["t.once"]
        run = await client.wait_run(run_id, statuses=("COMPLETED",))
    assert run["output"] == "done first" and calls == [1, 2]


def schema(name: str) -> jsonschema.Draft202012Validator:
    path = Path(__file__).resolve().parents[2] / "protocol" / "schemas" / f"{name}.schema.json"
    return jsonschema.Draft202012Validator(json.loads(path.read_text()), format_checker=jsonschema.FormatChecker())


async def _events(client, run_id, kind):
    sql = "SELECT count(*) FROM run_events WHERE run_id = %(r)s AND type = %(t)s"
    return (await client.app.state.core.db.fetchone(sql, {"r": run_id, "t": kind}))[0]


async def _events_at_least(client, run_id, kind, n):
    return await _events(client, run_id, kind) >= n


async def _async(value):
    return value


def _seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def _read_one(services, topic):
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=services.kafka, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        return await asyncio.wait_for(consumer.getone(), 15)
    finally:
        await consumer.stop()


async def test_an_open_attempt_lives_in_its_step_and_history_gets_one_row_per_finished_attempt(client, raw_worker):
    # R2.6: queueing writes no attempts row and no run_events row; the run detail still shows the open attempt.
    await client.define({"id": "folded", "steps": [{"action": "t.f1"}, {"action": "t.f2"}]})
    run_id = (await client.trigger("folded", "x")).json()["run_id"]
    detail = await client.run(run_id)
    (open_attempt,) = detail["steps"][0]["attempts"]
    assert open_attempt["status"] == "QUEUED" and open_attempt["queued_at"] and open_attempt["finished_at"] is None
    assert await _count(client, "SELECT count(*) FROM attempts WHERE run_id = %(r)s", run_id) == 0
    async with raw_worker({"t.f1": lambda j: 1, "t.f2": lambda j: 2}):
        run = await client.wait_run(run_id)
    assert [[a["status"] for a in s["attempts"]] for s in run["steps"]] == [["COMPLETED"], ["COMPLETED"]]
    first = run["steps"][0]["attempts"][0]
    assert first["job_id"] == open_attempt["job_id"] and first["queued_at"] == open_attempt["queued_at"]
    assert first["started_at"] and first["finished_at"] and first["worker"]["language"] == "test"
    assert await _count(client, "SELECT count(*) FROM attempts WHERE run_id = %(r)s", run_id) == 2
    events = "SELECT count(*) FROM run_events WHERE run_id = %(r)s AND step IS NOT NULL"
    assert await _count(client, events, run_id) == 0


async def _count(client, sql, run_id):
    async with client.app.state.core.db.connection() as conn:
        return (await (await conn.execute(sql, {"r": run_id})).fetchone())[0]
