"""Pure logic: definitions, retry policy, readiness and inputs (no services)."""

from __future__ import annotations

import random

import pytest

from baton_orchestrator.definitions import DefinitionError, WorkflowSpec, find_cycle, normalise, parse_duration
from baton_orchestrator.engine import transitions as tr
from baton_orchestrator.model import Retry, Step, Workflow


def norm(body):
    return normalise(WorkflowSpec.model_validate(body), 300.0)


def test_sequential_steps_chain_in_step_index_order():
    d = norm({"id": "w", "steps": [{"action": "b", "stepIndex": 1}, {"action": "a", "stepIndex": 0}]})
    assert [(s["name"], s["depends_on"]) for s in d["steps"]] == [("a", []), ("b", ["a"])]
    assert d["steps"][0]["retry"]["max_retries"] == 3 and d["steps"][0]["timeout"] == 300.0


def test_workflow_level_retry_and_timeout_apply_unless_a_step_overrides():
    d = norm(
        {
            "id": "w",
            "retry": {"max_retries": 1},
            "timeout": "1m",
            "steps": [{"action": "a"}, {"action": "b", "timeout": 5, "retry": {"max_retries": 7}}],
        }
    )
    assert [s["retry"]["max_retries"] for s in d["steps"]] == [1, 7]
    assert [s["timeout"] for s in d["steps"]] == [60.0, 5.0]


def test_cycle_is_named():
    with pytest.raises(DefinitionError, match=r"a -> c -> b -> a"):
        norm(
            {
                "id": "w",
                "steps": [
                    {"name": "a", "action": "x", "depends_on": ["c"]},
                    {"name": "b", "action": "x", "depends_on": ["a"]},
                    {"name": "c", "action": "x", "depends_on": ["b"]},
                ],
            }
        )


def test_find_cycle_handles_long_chains_without_recursion():
    edges = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(5000)}
    assert find_cycle(edges) is None


@pytest.mark.parametrize(("raw", "seconds"), [(2, 2.0), ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0)])
def test_durations_parse(raw, seconds):
    assert parse_duration(raw, "t") == seconds


def test_failure_decisions_follow_the_policy():
    policy = Retry.from_dict(
        {
            "max_retries": 3,
            "initial_interval": 1.0,
            "backoff_coefficient": 2.0,
            "max_interval": 3.0,
            "jitter": 0.0,
            "non_retryable_errors": ["ValueError"],
        }
    )
    assert tr.decide_failure(policy, 1, 4, {"type": "Boom"}) == tr.FailureDecision(True, 1.0, "")
    assert tr.decide_failure(policy, 3, 4, {"type": "Boom"}).delay == 3.0  # 4.0 capped by max_interval
    assert tr.decide_failure(policy, 4, 4, {"type": "Boom"}).reason == "retries_exhausted"
    assert tr.decide_failure(policy, 4, 4, {"type": "Timeout"}).reason == "timeout"
    assert tr.decide_failure(policy, 1, 4, {"type": "ValueError"}).reason == "non_retryable"
    assert tr.decide_failure(policy, 1, 4, {"type": "X", "retryable": False}).retry is False
    assert tr.decide_failure(policy, 1, 4, {"type": "RetryLater", "retry_after_ms": 2500}).delay == 2.5


def test_jitter_stays_within_its_band():
    policy = Retry(initial_interval=10.0, jitter=0.2)
    delays = [tr.retry_delay(policy, 1, random.Random(i)) for i in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays) and len(set(delays)) > 100


def test_ready_steps_wait_for_every_parent():
    steps = _workflow({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}).steps
    status = {"a": "COMPLETED", "b": "COMPLETED", "c": "RUNNING", "d": "PENDING"}
    assert tr.plan(steps, status, None, {}) == ([], [])
    assert tr.plan(steps, {**status, "c": "COMPLETED"}, None, {}) == (["d"], [])


def test_blocked_run_is_detected_when_a_parent_is_dead_lettered():
    assert tr.is_blocked({"a": "DEAD_LETTERED", "b": "PENDING"})
    assert not tr.is_blocked({"a": "DEAD_LETTERED", "b": "RUNNING"})
    assert not tr.is_blocked({"a": "FAILED", "b": "PENDING"})  # a retry is scheduled


def test_step_input_rules_and_templates():
    outputs = {"a": {"n": 1, "items": [10, 20]}, "b": "x"}
    assert tr.step_input(_step([]), "run", outputs) == "run"
    assert tr.step_input(_step(["a"]), "run", outputs) == {"n": 1, "items": [10, 20]}
    assert tr.step_input(_step(["a", "b"]), "run", outputs) == {"a": outputs["a"], "b": "x"}
    template = {"first": "$.steps.a.output.items.1", "whole": "$.input", "lit": 3, "deep": "$.input.k"}
    assert tr.step_input(_step(["a"], template), {"k": "v"}, outputs) == {
        "first": 20,
        "whole": {"k": "v"},
        "lit": 3,
        "deep": "v",
    }


def _workflow(deps: dict[str, list[str]], **step: object) -> Workflow:
    steps = [{"name": n, "action": "x", "depends_on": d, "retry": {}, "timeout": 30, **step} for n, d in deps.items()]
    return Workflow.from_definition({"id": "w", "steps": steps}, 1)


def _step(depends_on: list[str], template: object = None) -> Step:
    return _workflow({"a": [], "b": [], "s": depends_on}, input=template).by_name["s"]


def test_model_is_built_once_with_the_graph_the_engine_reads():
    wf = _workflow({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})
    assert [s.children for s in wf.steps] == [("b", "c"), ("d",), ("d",), ()]
    assert wf.sinks == ("d",) and not wf.uses_flow and wf.version == 1
    assert wf.simple == {"a"}  # b and c have one parent each; d has two
    assert wf.by_name["a"].max_attempts == 4 and wf.by_name["a"].timeout_ms == 30_000
    assert wf.run_output({"d": 1}) == 1
