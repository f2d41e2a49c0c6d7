"""The engine SIGKILLed mid-batch (and restarted), and two engine replicas with one killed."""

from __future__ import annotations

import time

from .harness import Scenario, wait_until

WF = {
    "id": "chain3",
    "retry": {"max_retries": 5, "initial_interval": "0.5s"},
    "steps": [{"name": n, "action": "e.step", "timeout": "20s"} for n in ("one", "two", "three")],
}


def test_engine_sigkill_mid_batch_and_restart(scenario: Scenario) -> None:
    scenario.start_orchestrator("api", role="api")
    scenario.start_orchestrator("engine", role="engine")
    scenario.define(WF)
    run_ids = scenario.trigger_many("chain3", range(100))
    scenario.start_worker("python", "worker", ["e.step"], sleep_ms=20)  # after the triggers: a backlog
    wait_until(lambda: scenario.ledger.count("done") >= 60, 90, 0.02, "a fifth of the steps done")
    scenario.procs.kill("engine")
    t_fault = time.monotonic()
    progress = scenario.ledger.count("done")
    scenario.start_orchestrator("engine", role="engine")
    scenario.wait_terminal(run_ids, 120)
    recovery = time.monotonic() - t_fault
    counts = scenario.check(run_ids, ["one", "two", "three"])
    scenario.report(counts, steps_done_at_kill=progress, recovery_s=round(recovery, 1))


def test_two_engine_replicas_one_killed(scenario: Scenario) -> None:
    scenario.start_orchestrator("api", role="api")
    scenario.start_orchestrator("engine1", role="engine")
    scenario.start_orchestrator("engine2", role="engine")
    scenario.define(WF)
    run_ids = scenario.trigger_many("chain3", range(100))
    scenario.start_worker("python", "worker", ["e.step"], sleep_ms=20)  # after the triggers: a backlog
    wait_until(lambda: scenario.ledger.count("done") >= 60, 90, 0.02, "a fifth of the steps done")
    scenario.procs.kill("engine1")
    t_fault = time.monotonic()
    progress = scenario.ledger.count("done")
    scenario.wait_terminal(run_ids, 120)
    recovery = time.monotonic() - t_fault
    counts = scenario.check(run_ids, ["one", "two", "three"])
    scenario.report(counts, steps_done_at_kill=progress, recovery_s=round(recovery, 1))
