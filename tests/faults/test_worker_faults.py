"""Workers dying mid-job (SIGKILL, every language) and draining on SIGTERM: nothing lost, nothing
applied twice, nothing stuck."""

from __future__ import annotations

import signal
import time

import pytest

from .harness import Scenario, wait_until

LANGS = ["python", "node", "java"]


def two_steps(wf: str, action: str, timeout: str = "4s", max_retries: int = 6) -> dict:
    retry = {"max_retries": max_retries, "initial_interval": "0.5s"}
    return {
        "id": wf,
        "retry": retry,
        "steps": [
            {"name": "a", "action": action, "timeout": timeout},
            {"name": "b", "action": action, "timeout": timeout},
        ],
    }


@pytest.mark.parametrize("lang", LANGS)
def test_sigkill_worker_mid_job(scenario: Scenario, lang: str) -> None:
    action = f"k.{lang}"
    scenario.start_orchestrator()
    scenario.define(two_steps("killme", action))
    scenario.start_worker(lang, "victim", [action], sleep_ms=400)
    run_ids = [scenario.trigger("killme", {"i": i}) for i in range(20)]
    wait_until(lambda: scenario.ledger.count("done") >= 6, 60, what=f"{lang} worker made progress")
    # Jobs are in flight right now (started but not finished): kill without any chance to drain.
    in_flight = {r["job_id"] for r in scenario.ledger.rows() if r["phase"] == "start"} - {
        r["job_id"] for r in scenario.ledger.rows() if r["phase"] == "done"
    }
    scenario.procs.kill("victim")
    t_fault = time.monotonic()
    scenario.start_worker(lang, "survivor", [action], sleep_ms=50)
    recovery = scenario.wait_terminal(run_ids, 120)
    counts = scenario.check(run_ids, ["a", "b"])
    scenario.report(
        counts,
        lang=lang,
        in_flight_at_kill=len(in_flight),
        recovery_s=round(time.monotonic() - t_fault, 1),
        wait_s=round(recovery, 1),
    )


@pytest.mark.parametrize("lang", LANGS)
def test_sigterm_worker_drains_jobs_in_flight(scenario: Scenario, lang: str) -> None:
    action = f"d.{lang}"
    scenario.start_orchestrator()
    scenario.define(two_steps("drainme", action, timeout="30s"))
    scenario.start_worker(lang, "drainer", [action], sleep_ms=1500)
    run_ids = [scenario.trigger("drainme", {"i": i}) for i in range(12)]

    def in_flight() -> set[str]:
        rows = scenario.ledger.rows()
        return {r["job_id"] for r in rows if r["phase"] == "start"} - {
            r["job_id"] for r in rows if r["phase"] == "done"
        }

    wait_until(lambda: len(in_flight()) >= 2, 60, 0.05, f"{lang} jobs in flight")
    flying = in_flight()
    t_fault = time.monotonic()
    scenario.procs.signal("drainer", signal.SIGTERM)
    rc = scenario.procs.procs["drainer"].wait(40)
    drain_s = time.monotonic() - t_fault
    done = {r["job_id"] for r in scenario.ledger.rows() if r["phase"] == "done"}
    assert flying <= done, (
        f"jobs in flight at SIGTERM that did not finish: {flying - done}\n{scenario.procs.log('drainer')}"
    )
    assert rc in (0, 128 + signal.SIGTERM, -signal.SIGTERM), (rc, scenario.procs.log("drainer"))
    # Their results were sent before the exit: every drained job's attempt is COMPLETED (not re-run by a timeout).
    wait_until(
        lambda: (
            scenario.sql(
                "SELECT count(*) FROM attempts WHERE job_id = ANY(%s) AND status = 'COMPLETED'", (list(flying),)
            )[0][0]
            == len(flying)
        ),
        20,
        what="drained results applied",
    )
    scenario.start_worker(lang, "successor", [action], sleep_ms=20)
    scenario.wait_terminal(run_ids, 120)
    counts = scenario.check(run_ids, ["a", "b"])
    rerun = [r for r in scenario.ledger.rows() if r["phase"] == "done" and r["job_id"] in flying]
    scenario.report(
        counts,
        lang=lang,
        in_flight_at_sigterm=len(flying),
        drain_s=round(drain_s, 1),
        exit_code=rc,
        drained_jobs_rerun=len(rerun) - len(flying),
        recovery_s=round(time.monotonic() - t_fault, 1),
    )


def test_java_worker_death_hands_partitions_over_within_20s(scenario: Scenario) -> None:
    """A dead Java worker's partitions move within the 10 s session timeout, as in Python and Node."""
    scenario.start_orchestrator()
    scenario.define(two_steps("javakill", "jk.java", timeout="60s"))
    scenario.start_worker("java", "victim", ["jk.java"], sleep_ms=30_000)
    run_ids = scenario.trigger_many("javakill", range(3))
    wait_until(lambda: scenario.ledger.count("start") >= 1, 60, what="the Java worker started a job")
    scenario.procs.kill("victim")
    scenario.start_worker("java", "survivor", ["jk.java"])
    wait_until(lambda: scenario.ledger.count("done") >= 1, 20, what="the surviving Java worker ran a job")
    scenario.wait_terminal(run_ids, 30)
