"""Pure helpers for the dashboard's templates: the DAG's layout, durations, JSON for people, filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ..store.filters import RUN_STATUSES, RunFilter

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 170, 46, 60, 22, 12


@dataclass(frozen=True)
class Node:
    name: str
    action: str
    status: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    path: str  # an SVG path from the parent's right side to the child's left side


@dataclass(frozen=True)
class Dag:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layers(steps: list[dict[str, Any]]) -> dict[str, int]:
    """Each step's column: the length of its longest path from a root (definitions are acyclic)."""
    deps = {s["name"]: s.get("depends_on") or [] for s in steps}
    depth: dict[str, int] = {}
    for name in deps:  # iterative, so a 1000-step chain does not hit the recursion limit
        stack = [name]
        while stack:
            top = stack[-1]
            pending = [d for d in deps[top] if d not in depth and d in deps]
            if pending:
                stack.extend(pending)
                continue
            depth[top] = 1 + max((depth[d] for d in deps[top] if d in depth), default=-1)
            stack.pop()
    return depth


def dag(steps: list[dict[str, Any]], status: dict[str, str] | None = None) -> Dag:
    """Steps as boxes in columns by depth, rows in definition order; edges from depends_on."""
    depth = layers(steps)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[int, int]] = {}
    nodes = []
    for s in steps:
        col = depth[s["name"]]
        row = rows.get(col, 0)
        rows[col] = row + 1
        x, y = PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)
        pos[s["name"]] = (x, y)
        nodes.append(Node(s["name"], s["action"], (status or {}).get(s["name"], "DEFINED"), x, y))
    edges = []
    for s in steps:
        cx, cy = pos[s["name"]]
        for d in s.get("depends_on") or []:
            px, py = pos[d]
            x1, y1, x2, y2 = px + NODE_W, py + NODE_H // 2, cx, cy + NODE_H // 2
            mid = (x1 + x2) // 2
            edges.append(Edge(f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"))
    width = PAD * 2 + (max(depth.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values(), default=1) * (NODE_H + GAP_Y) - GAP_Y
    return Dag(nodes, edges, width, height)


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # the form's times are UTC


def duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    ms = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def short_time(value: str | None) -> str:
    return value.replace("T", " ").split(".")[0].removesuffix("Z") if value else ""


def clock(value: str | None) -> str:
    """HH:MM:SS.mmm of a timestamp: a timeline's rows share their date."""
    return value.split("T", 1)[1].removesuffix("Z")[:12] if value and "T" in value else ""


def run_filter(params: dict[str, str]) -> RunFilter:
    """The runs page's query string as a filter; unknown statuses and empty fields are dropped."""
    status = params.get("status") or None
    return RunFilter(
        workflow_id=params.get("workflow_id") or None,
        status=status if status in RUN_STATUSES else None,
        created_after=parse_time(params.get("from")),
        created_before=parse_time(params.get("to")),
        q=(params.get("q") or "").strip() or None,
    )


FILTER_KEYS = ("workflow_id", "status", "from", "to", "q")
DLQ_FILTER_KEYS = ("action", "reason", "workflow_id", "run_id")
