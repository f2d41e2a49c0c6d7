"""The dashboard's pure helpers: the DAG layout and the runs page's filter parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from baton_orchestrator.ui import views


def test_a_diamond_is_laid_out_in_three_columns_with_an_edge_per_dependency():
    steps = [
        {"name": "a", "action": "x", "depends_on": []},
        {"name": "b", "action": "x", "depends_on": ["a"]},
        {"name": "c", "action": "x", "depends_on": ["a"]},
        {"name": "d", "action": "x", "depends_on": ["b", "c"]},
    ]
    assert views.layers(steps) == {"a": 0, "b": 1, "c": 1, "d": 2}
    dag = views.dag(steps, {"a": "COMPLETED"})
    assert [n.status for n in dag.nodes] == ["COMPLETED", "DEFINED", "DEFINED", "DEFINED"]
    assert len(dag.edges) == 4 and dag.nodes[1].x == dag.nodes[2].x and dag.nodes[1].y < dag.nodes[2].y
    assert dag.width >= dag.nodes[3].x + views.NODE_W


def test_a_thousand_step_chain_is_laid_out_without_recursion():
    steps = [{"name": f"s{i}", "action": "x", "depends_on": [f"s{i - 1}"] if i else []} for i in range(1000)]
    assert views.layers(steps)["s999"] == 999


def test_run_filters_read_utc_times_and_drop_unknown_statuses():
    f = views.run_filter({"status": "BOGUS", "from": "2026-01-02T03:04", "q": "  key-1 "})
    assert f.status is None and f.q == "key-1"
    assert f.created_after == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    with pytest.raises(ValueError):
        views.run_filter({"to": "yesterday"})
    assert views.duration("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.250Z") == "250 ms"
    assert views.clock("2026-01-01T12:34:56.789Z") == "12:34:56.789"
