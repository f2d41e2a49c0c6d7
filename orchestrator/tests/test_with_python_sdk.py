"""The orchestrator with the real Python SDK worker: results, errors and retries meet as designed."""

from __future__ import annotations

import asyncio

from baton import NonRetryableError, RetryLater, Worker, WorkerSettings

from .conftest import eventually


def sdk_worker(settings, **handlers) -> Worker:
    worker = Worker(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.topic_prefix}sdk",
        concurrency=4,
        topic_prefix=settings.topic_prefix,
        settings=WorkerSettings.from_env(presence_interval=0.5),
    )
    for action, fn in handlers.items():
        worker.register(action.replace("_", "."), fn)
    return worker


async def test_original_example_runs_through_the_python_sdk(client, settings):
    await client.define(
        {"id": "my-first-workflow", "steps": [{"action": "step1", "stepIndex": 0}, {"action": "step2", "stepIndex": 1}]}
    )
    worker = sdk_worker(settings)
    worker.register("step1", lambda payload: f"Processed: {payload}")
    worker.register("step2", lambda payload: f"Step 2 processed: {payload}")
    async with worker:
        run = await client.wait_run((await client.trigger("my-first-workflow", "Hello World")).json()["run_id"])

        async def listed():
            items = (await client.http.get("/workers")).json()["items"]
            return [w for w in items if w["worker_id"] == worker.id]

        presence = (await eventually(listed, timeout=15))[0]
    assert run["status"] == "COMPLETED" and run["output"] == "Step 2 processed: Processed: Hello World"
    attempt = run["steps"][0]["attempts"][0]
    assert attempt["worker"]["language"] == "python" and attempt["started_at"] <= attempt["finished_at"]
    assert presence["language"] == "python" and {"step1", "step2"} <= set(presence["actions"])


async def test_sdk_errors_drive_retries_and_dead_letters(client, settings):
    await client.define(
        {
            "id": "errors",
            "steps": [
                {"name": "later", "action": "e.later", "retry": {"initial_interval": "20s"}},
                {"name": "fatal", "action": "e.fatal"},
            ],
        }
    )
    calls: list[str] = []

    async def later(payload, ctx):
        calls.append(f"later-{ctx.attempt}")
        if ctx.attempt == 1:
            raise RetryLater(delay=0.2)
        return "later ok"

    def fatal(payload):
        calls.append("fatal")
        raise NonRetryableError("no way")

    async with sdk_worker(settings, e_later=later, e_fatal=fatal):
        run = await client.wait_run((await client.trigger("errors", {})).json()["run_id"], timeout=15)
    assert run["status"] == "FAILED"
    later_step, fatal_step = run["steps"]
    assert later_step["status"] == "COMPLETED" and len(later_step["attempts"]) == 2
    assert later_step["attempts"][0]["error"]["type"] == "RetryLater"
    assert fatal_step["status"] == "DEAD_LETTERED" and len(fatal_step["attempts"]) == 1
    assert fatal_step["attempts"][0]["error"]["type"] == "NonRetryableError"
    assert calls == ["later-1", "later-2", "fatal"]


async def test_heartbeats_keep_a_long_step_alive_past_its_timeout(client, settings):
    await client.define({"id": "long", "steps": [{"action": "e.long", "timeout": "1s"}]})

    async def long(payload, ctx):
        for _ in range(6):
            await asyncio.sleep(0.4)
            ctx.heartbeat()
        return "still here"

    async with sdk_worker(settings, e_long=long):
        run = await client.wait_run((await client.trigger("long")).json()["run_id"], timeout=20)
    assert run["status"] == "COMPLETED" and len(run["steps"][0]["attempts"]) == 1
