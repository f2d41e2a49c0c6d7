"""The workflows the bench defines (W1, W2, W3) and the arrival rates each sweep steps through.

T0 is not a Baton workflow: `t0_engine.py` runs its 10 steps itself (see `t0.py`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

ACTION = "bench.noop"
PAD = "x" * 180  # makes the run input ~200 B of JSON


# `--flow`: W1 and W2 with one flow-control feature in force but never binding (limits far above the
# load), so a run measures what the feature costs per step, not waiting.
FLOW: dict[str, dict[str, Any]] = {
    "none": {},
    "limit": {"concurrency": {"limit": 100_000}},  # a workflow-wide run limit
    "key": {"concurrency": {"key": "$.input.n", "limit": 1}},  # one run in flight per key; every run its own key
    "rate": {"rate_limits": {ACTION: {"limit": 1_000_000, "per": "second"}}},
    "priority": {"priority": 5},
}


@dataclass
class Workload:
    name: str  # W1, W2, W3
    wf_id: str
    steps: list[dict[str, Any]]
    extra: dict[str, Any] | None = None  # top-level definition fields (--flow)

    def definition(self) -> dict[str, Any]:
        return {"id": self.wf_id, "steps": self.steps, **(self.extra or {})}

    @property
    def parents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        prev = None
        for s in self.steps:
            if "depends_on" in s:
                out[s["name"]] = s["depends_on"]
            elif not any("depends_on" in x for x in self.steps):
                out[s["name"]] = [prev] if prev else []
            else:
                out[s["name"]] = []
            prev = s["name"]
        return out

    @property
    def n_steps(self) -> int:
        return len(self.steps)


def workloads(ts: str, flow: str = "none") -> dict[str, Workload]:
    fan = [f"b{i:02d}" for i in range(20)]
    extra = FLOW[flow]
    return {
        "W1": Workload("W1", f"bench-w1-{ts}", [{"name": f"s{i}", "action": ACTION} for i in range(10)], extra),
        "W2": Workload(
            "W2",
            f"bench-w2-{ts}",
            [{"name": "fan", "action": ACTION}]
            + [{"name": b, "action": ACTION, "depends_on": ["fan"]} for b in fan]
            + [{"name": "join", "action": ACTION, "depends_on": fan}],
            extra,
        ),
        "W3": Workload("W3", f"bench-w3-{ts}", [{"name": "s0", "action": ACTION}]),
    }


def geometric(start: float, factor: float, n: int) -> list[float]:
    return [round(start * factor**i, 1) for i in range(n)]


def rates(args: argparse.Namespace, name: str) -> list[float]:
    """The wf/s a sweep steps through: `--<name>-rates` if given, else a geometric ramp."""
    explicit = getattr(args, f"{name.lower()}_rates")
    if explicit:
        return [float(x) for x in explicit.split(",")]
    if args.quick:
        quick: dict[str, list[float]] = {"W1": geometric(10, 1.5, 10), "W3": [5]}
        return quick.get(name, [])
    full: dict[str, list[float]] = {
        "T0": geometric(20, 1.5, 10),
        "W1": geometric(10, 1.4, 12),
        "W2": geometric(4, 1.4, 12),
        "W3": [5],
    }
    return full[name]
