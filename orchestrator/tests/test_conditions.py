"""`when:` conditions: the expression language (pure) and skipped branches in real runs."""

from __future__ import annotations

import pytest

from baton_orchestrator.conditions import ConditionError, parse

CTX_INPUT = {"go": True, "region": "us", "n": 3, "tags": ["a", "b"], "name": "it's"}
CTX_OUT = {"score": {"value": 120, "label": "hi"}, "empty": None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$.input.go == true", True),
        ("$.input.go == 1", False),  # JSON equality: true is not 1
        ("$.steps.score.output.value >= 100 and $.input.region != 'eu'", True),
        ("$.steps.score.output.value > 200 or not ($.input.n < 2)", True),
        ("not $.input.go", False),
        ("$.input.missing == null", True),
        ("$.input.missing", False),
        ('$.input.tags.1 == "b"', True),
        ("$.input.name == 'it\\'s'", True),
        ("$.input.region < 5", False),  # mixed types never order
        ("'abc' < 'abd'", True),
        ("$.steps.score.output.label", True),
        ("$.steps.empty.output.x == null", True),
        ("1.5e1 == 15", True),
        ("(($.input.n == 3))", True),
    ],
)
def test_conditions_evaluate_as_documented_when_given_json_values(text: str, expected: bool) -> None:
    assert parse(text).evaluate(CTX_INPUT, CTX_OUT) is expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "non-empty"),
        ("$.input.a ==", "ends too early"),
        ("$.input.a = 1", "cannot read"),
        ("__import__('os')", "unknown word"),
        ("$.steps.x.input", "unknown path"),
        ("(1 == 1", r"expected '\)'"),
        ("1 == 1 2", "unexpected"),
        ("x" * 2001, "at most 2000"),
    ],
)
def test_bad_conditions_are_refused_with_a_position_when_parsed(text: str, fragment: str) -> None:
    with pytest.raises(ConditionError, match=fragment):
        parse(text)


def test_a_condition_knows_which_steps_it_reads() -> None:
    assert parse("$.steps.a.output.x > 1 and $.input.y or $.steps.b.output == 2").refs == {"a", "b"}


BRANCHY = {
    "id": "branchy",
    "steps": [
        {"name": "score", "action": "c.score"},
        {"name": "big", "action": "c.big", "depends_on": ["score"], "when": "$.steps.score.output >= 100"},
        {"name": "after_big", "action": "c.after", "depends_on": ["big"]},
        {"name": "small", "action": "c.small", "depends_on": ["score"], "when": "$.steps.score.output < 100"},
        {"name": "report", "action": "c.report", "depends_on": ["after_big", "small"]},
    ],
}


async def test_a_false_condition_skips_its_branch_and_the_fan_in_runs_with_null(client, raw_worker):
    await client.define(BRANCHY)
    handlers = {
        "c.score": lambda j: j["input"],
        "c.big": lambda j: "big",
        "c.after": lambda j: "after",
        "c.small": lambda j: "small",
        "c.report": lambda j: j["input"],
    }
    async with raw_worker(handlers) as worker:
        low = await client.wait_run((await client.trigger("branchy", 7)).json()["run_id"])
        high = await client.wait_run((await client.trigger("branchy", 700)).json()["run_id"])
    assert low["status"] == "COMPLETED" and low["output"] == {"after_big": None, "small": "small"}, low
    assert {s["name"]: s["status"] for s in low["steps"]} == {
        "score": "COMPLETED",
        "big": "SKIPPED",
        "after_big": "SKIPPED",
        "small": "COMPLETED",
        "report": "COMPLETED",
    }
    assert high["output"] == {"after_big": "after", "small": None}, high
    ran = [(j["run_id"], j["step"]) for j in worker.seen]
    assert (low["run_id"], "big") not in ran and (high["run_id"], "small") not in ran


async def test_a_root_condition_is_decided_at_trigger_and_an_all_skipped_run_completes(client, raw_worker):
    await client.define(
        {
            "id": "gate",
            "steps": [
                {"name": "go", "action": "c.go", "when": "$.input.go == true"},
                {"name": "then", "action": "c.then", "depends_on": ["go"]},
            ],
        }
    )
    async with raw_worker({"c.go": lambda j: "went", "c.then": lambda j: j["input"]}):
        skipped = (await client.trigger("gate", {"go": False})).json()
        run = await client.run(skipped["run_id"])
        assert run["status"] == "COMPLETED" and [s["status"] for s in run["steps"]] == ["SKIPPED", "SKIPPED"], run
        went = await client.wait_run((await client.trigger("gate", {"go": True})).json()["run_id"])
    assert went["status"] == "COMPLETED" and went["output"] == "went"


@pytest.mark.parametrize(
    ("when", "fragment"),
    [("$.steps.later.output == 1", "not one of its ancestors"), ("$.input.x ===", "invalid when")],
)
async def test_a_condition_that_cannot_hold_is_422_when_defined(client, when, fragment):
    steps = [{"name": "first", "action": "a", "when": when}, {"name": "later", "action": "b", "depends_on": ["first"]}]
    resp = await client.http.post("/workflow", json={"id": "bad-when", "steps": steps})
    assert resp.status_code == 422 and fragment in resp.text, resp.text
