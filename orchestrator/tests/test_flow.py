"""Flow control end to end: concurrency keys, run-level limits, rate limits and priorities, checked from a
ledger the real Python SDK worker keeps (entry and exit times of every job), on real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from baton import RetryLater, Worker, WorkerSettings
from baton_orchestrator.cli.render import step_line

from .conftest import eventually


@dataclass
class Ledger:
    """What the worker saw: (entered, left, key) per job, in monotonic seconds."""

    rows: list[tuple[float, float, Any]] = field(default_factory=list)
    open: dict[Any, int] = field(default_factory=dict)
    order: list[Any] = field(default_factory=list)

    def handler(self, key_of: Any, seconds: float) -> Any:
        async def handle(payload: Any) -> Any:
            key, entered = key_of(payload), time.monotonic()
            self.order.append(payload)
            await asyncio.sleep(seconds)
            self.rows.append((entered, time.monotonic(), key))
            return payload

        return handle

    def max_in_flight(self, key: Any = None) -> int:
        """The most jobs (of `key`, or all) the worker held at once."""
        edges = sorted(
            [(t, 1) for t0, _, k in self.rows if key is None or k == key for t in (t0,)]
            + [(t, -1) for _, t1, k in self.rows if key is None or k == key for t in (t1,)],
            key=lambda e: (e[0], e[1]),  # a job leaving at the instant another enters is not an overlap
        )
        peak = now = 0
        for _, delta in edges:
            now += delta
            peak = max(peak, now)
        return peak


def sdk_worker(settings: Any, concurrency: int = 8, **handlers: Any) -> Worker:
    worker = Worker(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.topic_prefix}sdk",
        concurrency=concurrency,
        topic_prefix=settings.topic_prefix,
        settings=WorkerSettings.from_env(presence_interval=0.5),
    )
    for action, fn in handlers.items():
        worker.register(action.replace("_", "."), fn)
    return worker


async def trigger(client: Any, workflow_id: str, payload: Any, priority: int | None = None) -> str:
    body: dict[str, Any] = {"input": payload}
    if priority is not None:
        body["priority"] = priority
    resp = await client.http.post(f"/workflow/{workflow_id}/trigger", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["run_id"])


async def wait_all(client: Any, run_ids: list[str], timeout: float = 30) -> list[dict[str, Any]]:
    try:
        return [await client.wait_run(r, timeout=timeout) for r in run_ids]
    except AssertionError:
        for r in run_ids:  # what was left: the failure says which step waits for what
            run = await client.run(r)
            print(r, run["status"], [(s["name"], s["status"], s["waiting"], s["error"]) for s in run["steps"]])
        raise


async def step_status(client: Any, run_id: str, index: int = 0) -> dict[str, Any]:
    step: dict[str, Any] = (await client.run(run_id))["steps"][index]
    return step


async def test_concurrency_key_and_global_limit_hold_under_load(client, settings):
    await client.define(
        {
            "id": "per-customer",
            "steps": [
                {
                    "name": "charge",
                    "action": "f.charge",
                    "concurrency": [{"limit": 3}, {"key": "$.input.customer", "limit": 1}],
                }
            ],
        }
    )
    ledger = Ledger()
    runs = []
    for i in range(15):
        runs.append(await trigger(client, "per-customer", {"customer": f"c{i % 4}", "n": i}))
    async with sdk_worker(settings, f_charge=ledger.handler(lambda p: p["customer"], 0.15)):
        done = await wait_all(client, runs)
    assert [r["status"] for r in done] == ["COMPLETED"] * 15
    assert len(ledger.rows) == 15
    assert ledger.max_in_flight() <= 3
    for c in range(4):
        assert ledger.max_in_flight(f"c{c}") == 1
        # FIFO per key: each customer's jobs ran in the order they were triggered.
        ns = [p["n"] for p in ledger.order if p["customer"] == f"c{c}"]
        assert ns == sorted(ns)
    assert ledger.max_in_flight() == 3  # the limit is reached, not just respected by running one at a time


async def test_run_level_limit_holds_runs_and_shows_why(client, settings):
    await client.define(
        {
            "id": "two-at-a-time",
            "concurrency": {"limit": 2},
            "steps": [{"name": "a", "action": "f.a"}, {"name": "b", "action": "f.b"}],
        }
    )
    runs = [await trigger(client, "two-at-a-time", {"n": i}, priority=4 if i == 2 else None) for i in range(6)]
    third = await step_status(client, runs[2])
    assert third["waiting"]["priority"] == 4
    assert third["status"] == "WAITING"
    assert third["waiting"]["reason"] == "concurrency" and third["waiting"]["scope"] == "run"
    assert third["waiting"]["key"] is None and third["waiting"]["since"]
    spans: dict[int, list[float]] = {}

    def note(payload: Any) -> Any:
        spans.setdefault(payload["n"], []).append(time.monotonic())
        return payload

    async def slow(payload: Any) -> Any:
        note(payload)
        await asyncio.sleep(0.1)
        note(payload)
        return payload

    async with sdk_worker(settings, f_a=slow, f_b=slow):
        done = await wait_all(client, runs)
    assert [r["status"] for r in done] == ["COMPLETED"] * 6
    # A run is in flight from its first step's start to its last step's end: never more than 2 at once.
    ledger = Ledger(rows=[(min(t), max(t), n) for n, t in spans.items()])
    assert ledger.max_in_flight() == 2


async def test_rate_limit_never_exceeds_rate_plus_burst(client, settings):
    await client.define(
        {
            "id": "rated",
            "rate_limits": {"f.call": {"limit": 5, "per": "second", "burst": 2}},
            "steps": [{"action": "f.call"}],
        }
    )
    ledger = Ledger()
    async with sdk_worker(settings, f_call=ledger.handler(lambda p: None, 0.01)):
        runs = [await trigger(client, "rated", {"n": i}) for i in range(12)]
        waiting = [await step_status(client, r) for r in runs]
        held = [s for s in waiting if s["status"] == "WAITING"]
        assert held and all(s["waiting"]["reason"] == "rate_limit" and s["waiting"]["key"] == "f.call" for s in held)
        done = await wait_all(client, runs)
    assert [r["status"] for r in done] == ["COMPLETED"] * 12
    starts = sorted(r[0] for r in ledger.rows)
    # In any window of T seconds at most burst + rate * T jobs started (0.3 s of slack: Kafka delivery jitter).
    for i, t0 in enumerate(starts):
        for j in range(i, len(starts)):
            window = starts[j] - t0
            assert j - i + 1 <= 2 + 5 * (window + 0.3), (i, j, window)
    assert starts[-1] - starts[0] >= (12 - 2) / 5 - 0.3


async def test_cancel_and_timeout_free_a_slot(client, settings):
    await client.define(
        {
            "id": "one-per-key",
            "steps": [
                {
                    "action": "f.never",
                    "timeout": "1s",
                    "retry": {"max_retries": 0},
                    "concurrency": {"key": "$.input.k", "limit": 1},
                }
            ],
        }
    )
    # No worker: the first run holds the key's slot (QUEUED) until it ends.
    first = await trigger(client, "one-per-key", {"k": "x"})
    second = await trigger(client, "one-per-key", {"k": "x"})
    third = await trigger(client, "one-per-key", {"k": "x"})
    other = await trigger(client, "one-per-key", {"k": "y"})
    assert (await step_status(client, first))["status"] == "QUEUED"
    assert (await step_status(client, other))["status"] == "QUEUED"  # another key is not held
    held = await step_status(client, second)
    assert held["status"] == "WAITING" and held["waiting"] == {
        "reason": "concurrency",
        "scope": "step",
        "key": "x",
        "since": held["waiting"]["since"],
        "priority": 3,
    }
    resp = await client.http.post(f"/workflow/run/{first}/cancel")
    assert resp.status_code == 200, resp.text

    async def queued(run_id: str) -> bool:
        return (await step_status(client, run_id))["status"] in ("QUEUED", "DEAD_LETTERED")

    await eventually(lambda: queued(second), timeout=5)
    assert (await step_status(client, third))["status"] == "WAITING"
    # The second run's step times out (1 s, no retries): dead-lettered, the run FAILED, the slot free.
    assert (await client.wait_run(second, timeout=15))["status"] == "FAILED"
    await eventually(lambda: queued(third), timeout=5)
    # Cancelling a run whose step is WAITING cancels the step.
    fourth = await trigger(client, "one-per-key", {"k": "x"})
    assert (await step_status(client, fourth))["status"] == "WAITING"
    assert (await client.http.post(f"/workflow/run/{fourth}/cancel")).status_code == 200
    assert (await step_status(client, fourth))["status"] == "CANCELLED"


async def test_completion_frees_a_slot_for_a_later_step(client, settings):
    await client.define(
        {
            "id": "keyed-chain",
            "steps": [
                {"name": "lookup", "action": "f.lookup"},
                {
                    "name": "write",
                    "action": "f.write",
                    "depends_on": ["lookup"],
                    "concurrency": {"key": "$.steps.lookup.output.account", "limit": 1},
                },
            ],
        }
    )
    ledger = Ledger()
    async with sdk_worker(
        settings,
        f_lookup=lambda p: {"account": p["account"]},
        f_write=ledger.handler(lambda p: p["account"], 0.1),
    ):
        runs = [await trigger(client, "keyed-chain", {"account": "a" if i % 2 else "b"}) for i in range(8)]
        done = await wait_all(client, runs)
    assert [r["status"] for r in done] == ["COMPLETED"] * 8
    assert ledger.max_in_flight("a") == 1 and ledger.max_in_flight("b") == 1 and ledger.max_in_flight() == 2


async def test_high_priority_steps_are_released_first(client, settings):
    await client.define(
        {"id": "serial", "steps": [{"action": "f.serial", "concurrency": {"limit": 1}}]},
    )
    low = [await trigger(client, "serial", {"p": 1, "n": i}, priority=1) for i in range(5)]
    high = [await trigger(client, "serial", {"p": 5, "n": i}, priority=5) for i in range(3)]
    assert (await client.run(high[0]))["priority"] == 5
    ledger = Ledger()
    async with sdk_worker(settings, f_serial=ledger.handler(lambda p: p["p"], 0.02)):
        await wait_all(client, low + high)
    # The first low-priority step was admitted before the others arrived; then the high ones, then FIFO.
    assert [(p["p"], p["n"]) for p in ledger.order] == [(1, 0), (5, 0), (5, 1), (5, 2), (1, 1), (1, 2), (1, 3), (1, 4)]


async def test_aging_lets_a_low_priority_step_overtake(settings, start_app):
    client = await start_app(s=settings.model_copy(update={"flow_aging_seconds": 0.4}))
    await client.define(
        {"id": "serial-aged", "priority": 2, "steps": [{"action": "f.aged", "concurrency": {"limit": 1}}]}
    )
    blocker = await trigger(client, "serial-aged", {"p": "blocker"})
    old = await trigger(client, "serial-aged", {"p": "old"}, priority=1)
    assert (await client.run(blocker))["priority"] == 2  # the workflow's default
    # Waited 2.4 s at 0.4 s per level: effective priority 1 + 6 = 7, above any new step's 5.
    await asyncio.sleep(2.4)
    new = [await trigger(client, "serial-aged", {"p": f"new{i}"}, priority=5) for i in range(2)]
    ledger = Ledger()
    async with sdk_worker(settings, f_aged=ledger.handler(lambda p: p["p"], 0.02)):
        await wait_all(client, [blocker, old, *new])
    assert [p["p"] for p in ledger.order] == ["blocker", "old", "new0", "new1"]


async def test_two_engine_replicas_share_one_limit(settings, start_app):
    one, two = await start_app(), await start_app()
    await one.define({"id": "shared", "steps": [{"action": "f.shared", "concurrency": {"limit": 2}}]})
    ledger = Ledger()
    async with sdk_worker(settings, f_shared=ledger.handler(lambda p: None, 0.1)):
        runs = []
        for i in range(16):
            runs.append(await trigger(one if i % 2 else two, "shared", {"n": i}))
        done = await wait_all(one, runs)
    assert [r["status"] for r in done] == ["COMPLETED"] * 16
    assert ledger.max_in_flight() == 2


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"concurrency": {"limit": 0}}, "concurrency"),
        ({"concurrency": {"limit": -1}}, "concurrency"),
        ({"concurrency": {"limit": 10**9}}, "concurrency"),
        ({"concurrency": {"key": "input.customer", "limit": 1}}, "must be a path"),
        ({"concurrency": {"key": "$.steps.a.output.x", "limit": 1}}, "must be a path"),  # not at run level
        ({"concurrency": [{"limit": 1}, {"limit": 2}]}, "once"),
        ({"concurrency": [{"limit": 1}] * 5}, "at most"),
        ({"priority": 0}, "priority"),
        ({"priority": 6}, "priority"),
        ({"rate_limits": {"f.a": {"limit": 10, "burst": 0}}}, "burst"),
        ({"rate_limits": {"f.a": {"limit": 0}}}, "limit"),
        ({"rate_limits": {"f.a": {"limit": 1, "per": "fortnight"}}}, "per"),
        ({"rate_limits": {"f.other": {"limit": 1}}}, "no step uses"),
    ],
)
async def test_bad_flow_specs_are_422(client, patch, needle):
    body = {"id": "bad", "steps": [{"name": "a", "action": "f.a"}], **patch}
    resp = await client.http.post("/workflow", json=body)
    assert resp.status_code == 422, resp.text
    assert needle in resp.text


@pytest.mark.parametrize(
    "step_patch",
    [
        {"concurrency": {"key": "$.steps.b.output", "limit": 1}},  # b is not an ancestor of a
        {"concurrency": {"key": "$.steps.nope.output", "limit": 1}},
        {"concurrency": {"key": "$.nothing", "limit": 1}},
    ],
)
async def test_bad_step_keys_are_422(client, step_patch):
    body = {
        "id": "bad",
        "steps": [{"name": "a", "action": "f.a", **step_patch}, {"name": "b", "action": "f.b", "depends_on": []}],
    }
    resp = await client.http.post("/workflow", json=body)
    assert resp.status_code == 422, resp.text


@pytest.mark.parametrize("priority", [0, 6, -1, "high", 2.5, True])
async def test_bad_trigger_priority_is_422(client, priority):
    await client.define({"id": "p", "steps": [{"action": "f.p"}]})
    resp = await client.http.post("/workflow/p/trigger", json={"input": {}, "priority": priority})
    assert resp.status_code == 422, resp.text


async def test_a_workflow_without_limits_touches_no_flow_state(client, settings):
    await client.define({"id": "plain", "steps": [{"action": "f.plain"}]})
    run_id = await trigger(client, "plain", {})
    run = await client.run(run_id)
    assert run["steps"][0]["status"] == "QUEUED" and run["steps"][0]["waiting"] is None
    assert "concurrency" not in (await client.http.get("/workflow/plain")).json()


async def test_dashboard_and_cli_show_why_a_step_waits(client):
    await client.define(
        {"id": "shown", "steps": [{"action": "f.shown", "concurrency": {"key": "$.input.k", "limit": 1}}]}
    )
    await trigger(client, "shown", {"k": "acme"})
    held = await trigger(client, "shown", {"k": "acme"})
    page = await client.http.get(f"/ui/runs/{held}/detail")
    assert page.status_code == 200 and "waiting for concurrency (key acme)" in page.text
    assert "s-waiting" in page.text
    line = step_line((await client.run(held))["steps"][0])
    assert line["status"] == "WAITING (concurrency acme)"


async def test_retries_of_a_rate_limited_action_take_tokens_too(client, settings):
    await client.define(
        {
            "id": "rated-retries",
            "rate_limits": {"f.flaky": {"limit": 4, "per": "second", "burst": 1}},
            "steps": [{"action": "f.flaky", "retry": {"max_retries": 2, "initial_interval": 0}}],
        }
    )
    starts: list[float] = []

    async def flaky(payload: Any, ctx: Any) -> Any:
        starts.append(time.monotonic())
        if ctx.attempt == 1:
            raise RetryLater(delay=0)
        return payload

    async with sdk_worker(settings, f_flaky=flaky):
        runs = [await trigger(client, "rated-retries", {"n": i}) for i in range(4)]
        done = await wait_all(client, runs)
    assert [r["status"] for r in done] == ["COMPLETED"] * 4
    assert all(len(r["steps"][0]["attempts"]) == 2 for r in done)
    starts.sort()
    assert len(starts) == 8
    for i, t0 in enumerate(starts):  # 8 attempts through a bucket of 1 refilled at 4/s
        for j in range(i, len(starts)):
            assert j - i + 1 <= 1 + 4 * (starts[j] - t0 + 0.3), (i, j)


async def test_a_cancelled_run_frees_its_run_slot_and_a_big_key_is_fine(client):
    await client.define(
        {"id": "one-run", "concurrency": {"key": "$.input.blob", "limit": 1}, "steps": [{"action": "f.one"}]}
    )
    blob = {"text": "x" * 100_000}  # the key's value is an object far larger than an index entry may be
    first = await trigger(client, "one-run", {"blob": blob})
    second = await trigger(client, "one-run", {"blob": blob})
    other = await trigger(client, "one-run", {"blob": {"text": "y"}})
    assert (await step_status(client, first))["status"] == "QUEUED"
    assert (await step_status(client, other))["status"] == "QUEUED"
    held = await step_status(client, second)
    assert held["status"] == "WAITING" and held["waiting"]["scope"] == "run"
    assert held["waiting"]["key"].endswith("…") and len(held["waiting"]["key"]) == 200
    assert (await client.http.post(f"/workflow/run/{first}/cancel")).status_code == 200

    async def queued() -> bool:
        return (await step_status(client, second))["status"] == "QUEUED"

    await eventually(queued, timeout=5)


def test_needs_are_none_without_flow_control_and_slot_keys_round_trip():
    from baton_orchestrator import flow
    from baton_orchestrator.model import Workflow

    def index(d: dict) -> Workflow:
        for s in d["steps"]:
            s.update(retry={}, timeout=30)
        return Workflow.from_definition(d, 1)

    plain = index({"id": "w", "steps": [{"name": "a", "action": "x", "depends_on": []}]})
    assert not plain.uses_flow and flow.step_need(plain, "a", {}, {}, 3) is None and flow.run_slots(plain, {}) == ()
    limits = [{"limit": 2}, {"key": "$.input.c", "limit": 1}]
    wf = index(
        {
            "id": "w",
            "concurrency": [{"limit": 5}],
            "rate_limits": {"x": {"limit": 1, "per": "second", "burst": 1}},
            "steps": [{"name": "a", "action": "x", "depends_on": [], "concurrency": limits}],
        }
    )
    need = flow.step_need(wf, "a", {"c": {"id": 7}}, {}, 4)
    assert need is not None and need.rate == "x" and need.priority == 4
    assert [(s.limit, s.shown) for s in need.slots] == [(2, None), (1, '{"id":7}')]
    again = flow.held_need(wf, "a", [s.key for s in need.slots], 4, holds_slots=False)
    assert again == need  # a released step needs exactly what it needed when held
    assert flow.held_need(wf, "a", [s.key for s in need.slots], 4, holds_slots=True) == flow.Need((), "x", 4)
    assert [s.limit for s in flow.run_slots(wf, {})] == [5]
    assert flow.priority_of(wf, None) == 3 and flow.priority_of(replace(wf, priority=1), None) == 1


async def test_two_replicas_share_one_bucket(settings, start_app):
    one, two = await start_app(), await start_app()
    await one.define(
        {"id": "shared-rate", "rate_limits": {"f.sr": {"limit": 5, "burst": 1}}, "steps": [{"action": "f.sr"}]}
    )
    ledger = Ledger()
    async with sdk_worker(settings, f_sr=ledger.handler(lambda p: None, 0.01)):
        runs = [await trigger(one if i % 2 else two, "shared-rate", {"n": i}) for i in range(10)]
        done = await wait_all(one, runs)
    assert [r["status"] for r in done] == ["COMPLETED"] * 10
    starts = sorted(r[0] for r in ledger.rows)
    for i, t0 in enumerate(starts):
        for j in range(i, len(starts)):
            assert j - i + 1 <= 1 + 5 * (starts[j] - t0 + 0.3), (i, j)


async def test_a_replayed_trigger_spends_no_token(client, settings):
    await client.define(
        {"id": "scarce", "rate_limits": {"f.s": {"limit": 1, "per": "hour", "burst": 2}}, "steps": [{"action": "f.s"}]}
    )
    first = await client.trigger("scarce", {"n": 1}, key="k1")
    assert first.status_code == 201
    # Forget the key in Redis: the replay goes through PostgreSQL, whose insert finds the key's run.
    await client.app.state.core.redis.delete(f"{settings.redis_prefix}idem:6:scarce:k1")
    replay = await client.trigger("scarce", {"n": 1}, key="k1")
    assert replay.status_code == 200 and replay.json()["run_id"] == first.json()["run_id"]
    second, third = await trigger(client, "scarce", {"n": 2}), await trigger(client, "scarce", {"n": 3})
    assert (await step_status(client, second))["status"] == "QUEUED"  # the burst's second token was left
    assert (await step_status(client, third))["status"] == "WAITING"
