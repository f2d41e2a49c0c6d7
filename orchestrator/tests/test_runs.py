"""Runs end to end against real Kafka, PostgreSQL and Redis, with a raw aiokafka test worker."""

from __future__ import annotations

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
    async with raw_worker(handlers):
        resp = await client.trigger("my-first-workflow", "Hello World")
        assert resp.status_code == 201, resp.text
        run = await client.wait_run(resp.json()["run_id"])
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
