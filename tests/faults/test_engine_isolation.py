"""R2.1 on real processes: poison from a real worker, a Kafka outage with short step timeouts, SIGTERM of
the engine under load, and a huge definition. Nothing stalls anyone else's runs."""

from __future__ import annotations

import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from .harness import PrivateStack, Scenario, wait_until

POISONOUS = {
    "id": "poisonous",
    "retry": {"max_retries": 1, "initial_interval": "0.2s"},
    "steps": [{"name": "bad", "action": "iso.poison", "timeout": "30s"}],
}
PLAIN = {"id": "plain", "steps": [{"name": n, "action": "iso.ok", "timeout": "30s"} for n in ("one", "two")]}
CHAIN = {
    "id": "chain3",
    "retry": {"max_retries": 5, "initial_interval": "0.5s"},
    "steps": [{"name": n, "action": "e.step", "timeout": "20s"} for n in ("one", "two", "three")],
}


def test_poison_from_a_real_worker_fails_its_step_and_survives_a_restart(scenario: Scenario) -> None:
    s = scenario
    s.start_orchestrator()
    s.define(POISONOUS)
    s.define(PLAIN)
    s.start_worker("python", "worker", ["iso.poison", "iso.ok"], LEDGER_POISON_ACTIONS="iso.poison")
    bad = [s.trigger("poisonous", kind) for kind in ("nul", "nul_in_key", "deep")]
    plain = s.trigger_many("plain", range(20))
    s.wait_terminal(plain, 60)
    counts = s.check(plain, ["one", "two"])
    s.wait_terminal(bad, 60)
    types = s.sql("SELECT DISTINCT error->>'type' FROM attempts WHERE run_id = ANY(%s::uuid[])", (bad,))
    assert s.statuses(bad) == {"FAILED": 3} and types == [("invalid_result",)], (s.statuses(bad), types)
    # The stack is not poisoned across restarts: the engine's offsets moved past every refused record.
    s.procs.signal("orchestrator", signal.SIGTERM)
    wait_until(lambda: s.procs.procs["orchestrator"].poll() is not None, 30, what="orchestrator stopped")
    s.start_orchestrator()
    after = s.trigger_many("plain", range(5))
    s.wait_terminal(after, 30)
    s.check([*plain, *after], ["one", "two"])
    s.report(counts, poisoned_runs=len(bad))


def test_kafka_outage_with_short_step_timeouts_loses_no_run(
    private_scenario: Scenario, private_stack: PrivateStack
) -> None:
    """Jobs queued while Kafka is down cannot time out: they were never dispatched (R2.1 §4)."""
    s = private_scenario
    wf = {
        "id": "short",
        "retry": {"max_retries": 2, "initial_interval": "1s"},
        "steps": [{"name": n, "action": "o.step", "timeout": "4s"} for n in ("one", "two")],
    }
    s.start_orchestrator()
    s.define(wf)
    s.start_worker("python", "worker", ["o.step"])
    s.wait_terminal([s.trigger("short", "warm-up")], 60)
    private_stack.stop_kafka()
    t_fault = time.monotonic()
    try:
        with ThreadPoolExecutor(4) as pool:
            run_ids = list(pool.map(lambda i: s.trigger("short", i, timeout=10), range(10)))
        time.sleep(max(0.0, 30 - (time.monotonic() - t_fault)))  # the outage: 7x the step timeout
    finally:
        private_stack.up()
    outage = time.monotonic() - t_fault
    s.wait_terminal(run_ids, 120)
    counts = s.check(run_ids, ["one", "two"])
    (most,) = s.sql("SELECT max(attempt) FROM attempts WHERE run_id = ANY(%s::uuid[])", (run_ids,))[0]
    assert most <= 2, f"a step ran {most} attempts: more than one extra for the outage"
    # Redeliveries of one attempt (same job_id) are at-least-once delivery; they are counted, not limited.
    runs_of = Counter((r["run_id"], r["step"]) for r in s.ledger.rows() if r["phase"] == "done")
    s.report(counts, outage_s=round(outage, 1), most_attempts=most, most_executions=max(runs_of.values()))


def test_engine_sigterm_under_load_loses_no_result(scenario: Scenario) -> None:
    s = scenario
    s.start_orchestrator("api", role="api")
    s.start_orchestrator("engine", role="engine")
    s.define(CHAIN)
    run_ids = s.trigger_many("chain3", range(100))
    s.start_worker("python", "worker", ["e.step"], sleep_ms=20)
    wait_until(lambda: s.ledger.count("done") >= 60, 90, 0.02, "a fifth of the steps done")
    s.procs.signal("engine", signal.SIGTERM)
    wait_until(lambda: s.procs.procs["engine"].poll() is not None, 30, what="engine stopped")
    t_restart = time.monotonic()
    s.start_orchestrator("engine", role="engine")
    s.wait_terminal(run_ids, 120)
    counts = s.check(run_ids, ["one", "two", "three"])
    # A result committed but never applied would leave its step to its 20 s timeout.
    (timeouts,) = s.sql(
        "SELECT count(*) FROM attempts WHERE run_id = ANY(%s::uuid[]) AND error->>'type' = 'Timeout'", (run_ids,)
    )[0]
    assert timeouts == 0, f"{timeouts} attempts waited for their timeout"
    s.report(counts, recovery_s=round(time.monotonic() - t_restart, 1))


def test_a_20000_step_definition_is_refused_fast_and_health_stays_responsive(scenario: Scenario) -> None:
    s = scenario
    s.start_orchestrator()
    body = {"id": "huge", "steps": [{"name": f"s{i}", "action": "a"} for i in range(20_000)]}
    health: list[float] = []

    def poll_health() -> None:
        end = time.monotonic() + 3
        while time.monotonic() < end:
            t0 = time.monotonic()
            assert httpx.get(f"{s.api}/health", timeout=5).status_code == 200
            health.append(time.monotonic() - t0)

    with ThreadPoolExecutor(1) as pool:
        watcher = pool.submit(poll_health)
        t0 = time.monotonic()
        resp = httpx.post(f"{s.api}/workflow", json=body, timeout=30)
        took = time.monotonic() - t0
        watcher.result()
    assert resp.status_code == 422 and "1000" in resp.text, resp.text[:300]
    assert took < 2 and max(health) < 1, (took, max(health))
    s.report({"runs": 0}, define_s=round(took, 2), slowest_health_s=round(max(health), 3))


def test_a_templated_job_over_the_limit_fails_fast_and_its_batch_mates_run_once(scenario: Scenario) -> None:
    s = scenario
    s.start_orchestrator(BATON_MAX_PAYLOAD_BYTES="20000")
    s.define(
        {
            "id": "grow",
            "steps": [
                {"name": "a", "action": "g.step"},
                {
                    "name": "b",
                    "action": "g.step",
                    "depends_on": ["a"],
                    "input": ["$.steps.a.output", "$.steps.a.output"],
                },
                {"name": "c", "action": "g.step", "depends_on": ["a"]},
            ],
        }
    )
    s.define(PLAIN)
    s.start_worker("python", "worker", ["g.step", "iso.ok"])
    big = [s.trigger("grow", "z" * 15_000) for _ in range(5)]
    plain = s.trigger_many("plain", range(10))
    t0 = time.monotonic()
    s.wait_terminal(big, 60)
    failed_in = time.monotonic() - t0
    s.wait_terminal(plain, 60)
    counts = s.check(plain, ["one", "two"])
    assert s.statuses(big) == {"FAILED": 5}
    reasons = s.sql("SELECT step, reason, error->>'type' FROM dead_letters WHERE run_id = ANY(%s::uuid[])", (big,))
    assert sorted(reasons) == [("b", "payload_too_large", "PayloadTooLarge")] * 5, reasons
    ran = Counter((r["run_id"], r["step"]) for r in s.ledger.rows() if r["phase"] == "done" and r["run_id"] in big)
    assert sorted(ran.values()) == [1] * 10 and {step for _, step in ran} == {"a", "c"}, ran
    s.report(counts, oversize_runs=len(big), failed_within_s=round(failed_in, 1))
