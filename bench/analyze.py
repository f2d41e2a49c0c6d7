"""Turning raw timings into the reported numbers: percentiles, per-point metrics, worker side-channel records.

Clocks: the harness, the workers (`time.time()`) and PostgreSQL (`now()`, the start of the writing
transaction) read the same machine clock, so differences between them are meaningful to ~µs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INF = math.inf


def pct(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); inf values sort last; nan for an empty list."""
    if not values:
        return math.nan
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    if xs[hi] == INF:
        return INF if pos > lo or xs[lo] == INF else xs[lo]
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def dist_ms(values_s: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max in milliseconds (None for infinite: something never finished)."""

    def ms(v: float) -> float | None:
        if math.isnan(v) or v == INF:
            return None
        return round(v * 1000, 3)

    if not values_s:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "n": len(values_s),
        "p50": ms(pct(values_s, 50)),
        "p95": ms(pct(values_s, 95)),
        "p99": ms(pct(values_s, 99)),
        "max": ms(max(values_s)) if values_s else None,
    }


@dataclass
class HandlerCall:
    job_id: str
    run_id: str
    step: str
    attempt: int
    t_entry: float
    t_exit: float
    lang: str


@dataclass
class WorkerRecords:
    """Incrementally reads the workers' CSV side channel (one file per worker process)."""

    files: list[Path] = field(default_factory=list)
    offsets: dict[Path, int] = field(default_factory=dict)
    by_job: dict[str, list[HandlerCall]] = field(default_factory=lambda: defaultdict(list))
    by_run: dict[str, list[HandlerCall]] = field(default_factory=lambda: defaultdict(list))
    bad_lines: int = 0

    def refresh(self) -> None:
        for path in self.files:
            if not path.exists():
                continue
            with open(path) as f:
                f.seek(self.offsets.get(path, 0))
                data = f.read()
            end = data.rfind("\n") + 1  # a partial last line is read next time
            self.offsets[path] = self.offsets.get(path, 0) + len(data[:end].encode())
            for line in data[:end].splitlines():
                parts = line.split(",")
                if len(parts) != 7:
                    self.bad_lines += 1
                    continue
                call = HandlerCall(
                    parts[0], parts[1], parts[2], int(parts[3]), float(parts[4]), float(parts[5]), parts[6]
                )
                self.by_job[call.job_id].append(call)
                self.by_run[call.run_id].append(call)

    def duplicated_jobs(self, run_ids: set[str] | None = None) -> int:
        """job_ids whose handler was entered more than once (at-least-once redelivery; 0 without faults)."""
        return sum(
            1 for calls in self.by_job.values() if len(calls) > 1 and (run_ids is None or calls[0].run_id in run_ids)
        )


@dataclass
class Trigger:
    t_sched: float  # when the open-loop schedule wanted this arrival
    t_sent: float
    t_resp: float
    status: int  # HTTP status; 0 = transport error; -1 = shed (in-flight cap reached, never sent)
    run_id: str | None


def backlog_at(t: float, scheds: list[float], finishes: list[float]) -> int:
    """Arrivals scheduled by t minus runs finished by t: requests waiting anywhere in the system."""
    return sum(1 for s in scheds if s <= t) - sum(1 for f in finishes if f <= t)


def sustainable(point: dict[str, Any], max_p99_s: float = 1.0) -> tuple[bool, str]:
    """Highest-rate criterion: the load generator kept up, no errors, backlog flat, p99 e2e < 1 s, drained."""
    reasons = []
    if point["achieved_wf_per_s"] < 0.95 * point["target_wf_per_s"]:
        reasons.append(f"arrivals {point['achieved_wf_per_s']:.1f}/s < 95% of target")
    if point.get("trigger_errors"):
        reasons.append(f"{point['trigger_errors']} trigger errors/shed")
    tolerance = max(3, 0.05 * point["arrivals_in_window"])
    if point["backlog_growth"] > tolerance:
        reasons.append(f"backlog grew by {point['backlog_growth']} (> {tolerance:.0f})")
    p99 = point["e2e_ms"]["p99"]
    if p99 is None or p99 >= max_p99_s * 1000:
        reasons.append(f"e2e p99 {'∞' if p99 is None else round(p99)} ms >= {max_p99_s * 1000:.0f} ms")
    if not point.get("drained", True):
        reasons.append("did not drain")
    return (not reasons, "; ".join(reasons))
