"""Kafka, PostgreSQL and Redis restarted or stopped during a run, on a PRIVATE stack (own ports and data
dir, started by the session fixture): the shared stack is never touched."""

from __future__ import annotations

import time

import httpx

from .harness import PrivateStack, Scenario, wait_until

WF = {
    "id": "infra",
    "retry": {"max_retries": 8, "initial_interval": "1s"},
    "steps": [{"name": n, "action": "x.step", "timeout": "30s"} for n in ("one", "two", "three")],
}
STEPS = ["one", "two", "three"]


def _start(s: Scenario, n: int = 40) -> list[str]:
    s.start_orchestrator()
    s.define(WF)
    run_ids = s.trigger_many("infra", range(n))
    s.start_worker("python", "worker", ["x.step"], sleep_ms=50)
    wait_until(lambda: s.ledger.count("done") >= n // 2, 90, 0.05, "progress before the fault")
    return run_ids


def test_kafka_restart_during_a_run(private_scenario: Scenario, private_stack: PrivateStack) -> None:
    s = private_scenario
    run_ids = _start(s)
    t_fault = time.monotonic()
    private_stack.stop_kafka()
    time.sleep(3)
    private_stack.up()
    down_s = time.monotonic() - t_fault
    after = s.trigger("infra", "kafka-back", timeout=60)
    s.wait_terminal([*run_ids, after], 150)
    counts = s.check([*run_ids, after], STEPS)
    s.report(counts, outage_s=round(down_s, 1), recovery_s=round(time.monotonic() - t_fault, 1))


def test_trigger_answers_promptly_while_kafka_is_down(private_scenario: Scenario, private_stack: PrivateStack) -> None:
    """The run and its jobs are durable in PostgreSQL (outbox): a trigger answers without waiting for Kafka."""
    s = private_scenario
    s.start_orchestrator()
    s.define(WF)
    s.start_worker("python", "worker", ["x.step"])
    s.wait_terminal([s.trigger("infra", "warm-up")], 60)  # the worker is up before the broker goes away
    private_stack.stop_kafka()
    try:
        t0 = time.monotonic()
        resp = httpx.post(f"{s.api}/workflow/infra/trigger", json={"input": "outage"}, timeout=8)
        assert resp.status_code == 201 and time.monotonic() - t0 < 8, resp.text
    finally:
        private_stack.up()
    s.wait_terminal([resp.json()["run_id"]], 90)


def test_postgres_restart_during_a_run(private_scenario: Scenario, private_stack: PrivateStack) -> None:
    s = private_scenario
    run_ids = _start(s)
    t_fault = time.monotonic()
    private_stack.stop_postgres()
    resp = httpx.post(f"{s.api}/workflow/infra/trigger", json={"input": "pg-down"}, timeout=30)
    assert resp.status_code >= 500 and resp.json()["error"]["code"], resp.text  # a clear JSON error
    assert "Traceback" not in resp.text
    health = httpx.get(f"{s.api}/health", timeout=10)
    assert health.status_code == 503 and health.json()["checks"]["postgres"]["status"] == "down", health.text
    time.sleep(2)
    private_stack.up()
    down_s = time.monotonic() - t_fault
    s.wait_health("orchestrator")
    after = s.trigger("infra", "pg-back")
    s.wait_terminal([*run_ids, after], 150)
    counts = s.check([*run_ids, after], STEPS)
    s.report(
        counts,
        outage_s=round(down_s, 1),
        trigger_during_outage=resp.status_code,
        recovery_s=round(time.monotonic() - t_fault, 1),
    )


def test_redis_down_triggers_keep_working_and_stay_idempotent(
    private_scenario: Scenario, private_stack: PrivateStack
) -> None:
    s = private_scenario
    run_ids = _start(s, 20)
    before = s.trigger("infra", "before", key="k-before")
    t_fault = time.monotonic()
    private_stack.stop_redis()
    health = httpx.get(f"{s.api}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "degraded", health.text
    # Triggers work, and Idempotency-Key holds through PostgreSQL: new keys, replays, conflicts.
    first = httpx.post(
        f"{s.api}/workflow/infra/trigger", json={"input": "down"}, headers={"Idempotency-Key": "k-down"}, timeout=15
    )
    again = httpx.post(
        f"{s.api}/workflow/infra/trigger", json={"input": "down"}, headers={"Idempotency-Key": "k-down"}, timeout=15
    )
    old = httpx.post(
        f"{s.api}/workflow/infra/trigger", json={"input": "before"}, headers={"Idempotency-Key": "k-before"}, timeout=15
    )
    clash = httpx.post(
        f"{s.api}/workflow/infra/trigger", json={"input": "other"}, headers={"Idempotency-Key": "k-down"}, timeout=15
    )
    assert (first.status_code, again.status_code, old.status_code, clash.status_code) == (201, 200, 200, 409), (
        first.text,
        again.text,
        old.text,
        clash.text,
    )
    assert again.json() == first.json() and old.json()["run_id"] == before
    plain = s.trigger("infra", "no-key")
    time.sleep(1)
    private_stack.up()  # Redis comes back empty (no persistence): PostgreSQL is still the truth
    wait_until(lambda: httpx.get(f"{s.api}/health", timeout=5).json()["status"] == "ok", 30, 0.3, "health ok again")
    recovered_s = time.monotonic() - t_fault
    replay = httpx.post(
        f"{s.api}/workflow/infra/trigger", json={"input": "down"}, headers={"Idempotency-Key": "k-down"}, timeout=15
    )
    assert replay.status_code == 200 and replay.json() == first.json(), replay.text
    all_runs = [*run_ids, before, first.json()["run_id"], plain]
    s.wait_terminal(all_runs, 120)
    counts = s.check(all_runs, STEPS)
    (n,) = s.sql("SELECT count(*) FROM runs")[0]
    assert n == len(all_runs)
    s.report(counts, health_during="degraded", health_recovery_s=round(recovered_s, 1))
