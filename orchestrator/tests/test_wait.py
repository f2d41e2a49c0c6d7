"""Trigger-and-wait and long polls (R2.4): woken by the commit that finishes the run, across processes."""

from __future__ import annotations

import asyncio
import time

from baton_orchestrator.api import schemas
from baton_orchestrator.db import migrate

from .conftest import RawWorker, make_settings

ONE = {"id": "one", "steps": [{"name": "only", "action": "w.one"}]}


async def test_trigger_with_wait_answers_with_the_finished_run_when_it_completes(client, raw_worker):
    await client.define(ONE)
    async with raw_worker({"w.one": lambda job: f"done {job['input']}"}):
        resp = await client.http.post("/workflow/one/trigger?wait=20", json={"input": "x"})
        assert resp.status_code == 201, resp.text
        run = resp.json()
        assert run["status"] == "COMPLETED" and run["output"] == "done x" and run["steps"][0]["attempts"]
        schemas.Run.model_validate(run)  # the body PostgreSQL builds is the documented shape
        replay = await client.http.post(
            "/workflow/one/trigger?wait=20", json={"input": "y"}, headers={"Idempotency-Key": "k1"}
        )
        again = await client.http.post(
            "/workflow/one/trigger?wait=20", json={"input": "y"}, headers={"Idempotency-Key": "k1"}
        )
        assert (replay.status_code, again.status_code) == (201, 200)
        assert replay.json()["run_id"] == again.json()["run_id"] and again.json()["status"] == "COMPLETED"


async def test_trigger_with_wait_is_202_with_the_run_as_it_stands_when_the_wait_ends(client):
    await client.define(ONE)  # no worker: the run cannot finish
    t0 = time.monotonic()
    resp = await client.http.post("/workflow/one/trigger?wait=0.5", json={"input": 1})
    assert resp.status_code == 202 and resp.json()["status"] == "RUNNING", resp.text
    assert 0.4 < time.monotonic() - t0 < 3


async def test_a_long_poll_is_woken_by_the_engine_of_another_process(start_app, services, unique, raw_worker):
    s = make_settings(services, unique)
    await asyncio.to_thread(migrate, s)
    api = await start_app(role="api", s=s)
    await start_app(role="engine", s=s)
    await api.define(ONE)
    run_id = (await api.trigger("one", "later")).json()["run_id"]
    poll = asyncio.create_task(api.http.get(f"/workflow/run/{run_id}?wait=30"))
    await asyncio.sleep(0.5)
    assert not poll.done()
    async with raw_worker({"w.one": lambda job: "woken"}, s=s):
        t0 = time.monotonic()
        resp = await poll
    assert resp.status_code == 200 and resp.json()["status"] == "COMPLETED", resp.text
    assert time.monotonic() - t0 < 15


async def test_wait_bounds_are_clear_errors_when_exceeded(start_app, services, unique):
    s = make_settings(services, unique, max_waiters=1, max_wait_seconds=5)
    await asyncio.to_thread(migrate, s)
    client = await start_app(s=s)
    await client.define(ONE)
    run_id = (await client.trigger("one", 1)).json()["run_id"]
    too_long = await client.http.get(f"/workflow/run/{run_id}?wait=6")
    assert too_long.status_code == 422 and too_long.json()["error"]["code"] == "invalid_wait", too_long.text
    negative = await client.http.get(f"/workflow/run/{run_id}?wait=-1")
    assert negative.status_code == 422
    first = asyncio.create_task(client.http.get(f"/workflow/run/{run_id}?wait=2"))
    await asyncio.sleep(0.3)
    second = await client.http.get(f"/workflow/run/{run_id}?wait=2")
    assert second.status_code == 503 and second.json()["error"]["code"] == "too_many_waiters", second.text
    assert (await first).status_code == 200


async def test_the_original_slashed_urls_are_served_directly_when_posted_without_redirects(client):
    resp = await client.http.post("/workflow/", json={"id": "slashed", "steps": [{"action": "a"}]})
    assert resp.status_code == 201, resp.text
    listed = await client.http.get("/workflow/")
    assert listed.status_code == 200 and [w["id"] for w in listed.json()["items"]] == ["slashed"]
    assert (await client.http.get("/workflow/slashed/")).status_code == 200
    assert (await client.http.post("/workflow/slashed/trigger/", json={"input": 1})).status_code == 201


async def test_a_long_poll_with_changed_from_answers_at_the_next_change_of_the_run(client, raw_worker):
    await client.define({"id": "two", "steps": [{"name": "a", "action": "w.a"}, {"name": "b", "action": "w.b"}]})
    run = (await client.trigger("two", 1)).json()
    first = await client.run(run["run_id"])
    same = await client.http.get(f"/workflow/run/{run['run_id']}?wait=0.3&changed_from={first['version']}")
    assert same.json()["version"] == first["version"]  # nothing moved: answered at the end of the wait
    poll = asyncio.create_task(
        client.http.get(f"/workflow/run/{run['run_id']}?wait=20&changed_from={first['version']}")
    )
    async with raw_worker({"w.a": lambda job: "a", "w.b": lambda job: RawWorker.NO_REPLY}):
        moved = (await poll).json()
    assert moved["version"] != first["version"] and moved["status"] == "RUNNING"
