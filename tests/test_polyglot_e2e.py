"""Cross-language end to end: the orchestrator and the Python, Node and Java example workers as real
processes run the polyglot demo (examples/workflows/polyglot-demo.yaml) and the original workflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stack(start_stack: Any) -> Any:
    return start_stack()


def test_polyglot_demo_hands_data_across_python_node_and_java(stack):
    url = stack.url
    stack.define("polyglot-demo.yaml")
    order = json.loads((ROOT / "examples" / "workflows" / "demo-input.json").read_text())
    resp = httpx.post(
        f"{url}/workflow/polyglot-demo/trigger",
        json={"input": order},
        headers={"Idempotency-Key": "demo-1"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    run = stack.wait_run(resp.json()["run_id"])
    assert run["status"] == "COMPLETED", json.dumps(run)[:2000]
    by_step = {s["name"]: s for s in run["steps"]}
    languages = {name: s["attempts"][-1]["worker"]["language"] for name, s in by_step.items()}
    assert languages == {"validate": "python", "enrich": "node", "score": "java", "report": "python"}
    assert by_step["enrich"]["output"]["enriched_by"] == "node"
    assert by_step["score"]["output"]["scored_by"] == "java"
    assert by_step["report"]["input"].keys() == {"enrich", "score"}
    assert "node" in run["output"] and "java" in run["output"] and "A-1001" in run["output"]


def test_original_workflow_runs_each_step_exactly_once_with_three_languages_listening(stack):
    url = stack.url
    stack.define("my-first-workflow.yaml")
    run_ids = [
        httpx.post(f"{url}/workflow/my-first-workflow/trigger", json={"input": f"Hello World {i}"}, timeout=10).json()[
            "run_id"
        ]
        for i in range(10)
    ]
    runs = [stack.wait_run(r) for r in run_ids]
    for i, run in enumerate(runs):
        assert run["status"] == "COMPLETED"
        assert [len(s["attempts"]) for s in run["steps"]] == [1, 1]
        # step1 is registered by all three example workers; whichever ran it, step2 (Python) got its output.
        assert run["output"].startswith("Step 2 processed: ") and run["output"].endswith(f"Hello World {i}")
