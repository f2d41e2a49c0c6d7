"""Turning raw timings into the reported numbers: percentiles, worker side-channel records, and the metrics
of one rate point (Baton: from the rows `collect.py` reads; T0: from the T0 engine's records).

Clocks: the harness, the workers (`time.time()`) and PostgreSQL (`now()`, the start of the writing
transaction) read the same machine clock, so differences between them are meaningful to ~µs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workloads import Workload

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


def backlog(tw0: float, tw1: float, scheds: list[float], finishes: list[float]) -> dict[str, int]:
    start, end = backlog_at(tw0, scheds, finishes), backlog_at(tw1, scheds, finishes)
    return {"backlog_start": start, "backlog_end": end, "backlog_growth": end - start}


def add_cpu(p: dict[str, Any], cpu_s: dict[str, float], measure: float) -> None:
    """CPU seconds per group over the window, per completed step (µs) and as cores busy."""
    p["cpu_s"] = {k: round(v, 3) for k, v in cpu_s.items()}
    steps = p["steps_completed_in_window"]
    p["cpu_us_per_step"] = {k: (round(v / steps * 1e6, 1) if steps else None) for k, v in p["cpu_s"].items()}
    p["cores_busy"] = {k: round(v / measure, 2) for k, v in p["cpu_s"].items()}
    groups = [k for k in p["cpu_s"] if k not in ("machine", "other")]
    p["cpu_us_per_step"]["sum_groups"] = round(sum(p["cpu_s"][k] for k in groups) / steps * 1e6, 1) if steps else None


def judge(p: dict[str, Any]) -> None:
    ok, why = sustainable(p)
    p["sustainable"], p["why_not"] = ok, why


# ---------------------------------------------------------------- a Baton point


@dataclass
class PointRows:
    """What PostgreSQL holds about one point's runs (epoch seconds; None while unset)."""

    runs: dict[str, tuple[Any, ...]]  # run_id -> (run_id, status, created_at, finished_at)
    steps: list[tuple[Any, ...]]  # (run_id, name, status, updated_at)
    attempts: list[tuple[Any, ...]]  # (job_id, run_id, step, attempt, status, queued_at)


@dataclass
class Dispatch:
    hops: list[float] = field(default_factory=list)  # parent returned -> child entered
    result_in: list[float] = field(default_factory=list)  # parent returned -> child queued
    job_out: list[float] = field(default_factory=list)  # child queued -> child entered
    first: list[float] = field(default_factory=list)  # trigger scheduled -> first step entered
    by_lang: dict[str, list[float]] = field(default_factory=dict)
    missing: int = 0  # hops whose parent's handler call was not recorded


def completed_attempts(attempts: list[tuple[Any, ...]]) -> dict[tuple[str, str], list[str]]:
    """(run_id, step) -> job_ids of its COMPLETED attempts."""
    out: dict[tuple[str, str], list[str]] = {}
    for job_id, run_id, step, _attempt, status, _q in attempts:
        if status == "COMPLETED":
            out.setdefault((run_id, step), []).append(job_id)
    return out


def dispatch(
    rows: PointRows,
    parents: dict[str, list[str]],
    sched: dict[str, float],
    records: WorkerRecords,
    tw0: float,
    tw1: float,
) -> Dispatch:
    """Per-hop latencies of the handler calls entered inside the window (for a fan-in, the latest parent)."""
    completed = completed_attempts(rows.attempts)

    def exit_of(run_id: str, step: str) -> float | None:
        jobs = completed.get((run_id, step))
        if not jobs:
            return None
        calls = records.by_job.get(jobs[0])
        return calls[0].t_exit if calls else None

    d = Dispatch()
    for job_id, run_id, step, _attempt, _status, queued in rows.attempts:
        calls = records.by_job.get(job_id)
        if not calls:
            continue
        c = calls[0]
        if not tw0 <= c.t_entry < tw1:
            continue
        d.job_out.append(c.t_entry - queued)
        if not parents[step]:
            if run_id in sched:
                d.first.append(c.t_entry - sched[run_id])
            continue
        exits = [exit_of(run_id, p) for p in parents[step]]
        if any(e is None for e in exits):
            d.missing += 1
            continue
        last = max(e for e in exits if e is not None)
        d.hops.append(c.t_entry - last)
        d.result_in.append(queued - last)
        d.by_lang.setdefault(c.lang, []).append(c.t_entry - last)
    return d


def e2e_latencies(accepted: list[Trigger], runs: dict[str, tuple[Any, ...]]) -> tuple[list[float], list[float]]:
    """Trigger scheduled -> run finished, and run created -> finished; inf for a run that did not finish."""
    e2e, e2e_server = [], []
    for t in accepted:
        r = runs.get(t.run_id or "")
        if r and r[1] == "COMPLETED" and r[3] is not None:
            e2e.append(r[3] - t.t_sched)
            e2e_server.append(r[3] - r[2])
        else:
            e2e.append(INF)
            e2e_server.append(INF)
    return e2e, e2e_server


def trigger_stats(triggers: list[Trigger], failures: list[str], tw0: float, tw1: float) -> dict[str, Any]:
    measure = tw1 - tw0
    in_win = [t for t in triggers if tw0 <= t.t_sched < tw1]
    return {
        "arrivals_in_window": len(in_win),
        "achieved_wf_per_s": round(sum(1 for t in in_win if t.status == 201) / measure, 2),
        "trigger_errors": sum(1 for t in triggers if t.status != 201),
        "trigger_status_counts": {str(k): v for k, v in Counter(t.status for t in triggers).items()},
        "trigger_failure_samples": failures[-5:],
    }


def baton_point(
    wl: Workload,
    rate: float,
    triggers: list[Trigger],
    rows: PointRows,
    records: WorkerRecords,
    failures: list[str],
    tw0: float,
    tw1: float,
    drained: bool,
) -> dict[str, Any]:
    """The metrics of one rate point of a Baton workload (before CPU and the sustainability verdict)."""
    measure = tw1 - tw0
    run_ids = [t.run_id for t in triggers if t.run_id]
    accepted_in_win = [t for t in triggers if tw0 <= t.t_sched < tw1 and t.status == 201]
    finishes = [r[3] for r in rows.runs.values() if r[3] is not None]
    e2e, e2e_server = e2e_latencies(accepted_in_win, rows.runs)
    parents = wl.parents
    d = dispatch(rows, parents, {t.run_id: t.t_sched for t in triggers if t.run_id}, records, tw0, tw1)
    one_step = not any(parents.values())
    steps_in_win = sum(1 for s in rows.steps if s[2] == "COMPLETED" and tw0 <= s[3] < tw1)
    wf_in_win = sum(1 for r in rows.runs.values() if r[1] == "COMPLETED" and r[3] is not None and tw0 <= r[3] < tw1)
    return {
        "workload": wl.name,
        "steps_per_workflow": wl.n_steps,
        "target_wf_per_s": rate,
        "target_steps_per_s": round(rate * wl.n_steps, 1),
        "window_s": round(measure, 2),
        **trigger_stats(triggers, failures, tw0, tw1),
        "wf_per_s": round(wf_in_win / measure, 2),
        "steps_per_s": round(steps_in_win / measure, 1),
        "steps_completed_in_window": steps_in_win,
        **backlog(tw0, tw1, [t.t_sched for t in triggers if t.run_id], finishes),
        "dispatch_ms": dist_ms(d.first if one_step else d.hops),
        "dispatch_definition": "trigger scheduled -> handler entered (1-step workflow)"
        if one_step
        else "parent handler returned -> child handler entered",
        "dispatch_result_in_ms": dist_ms(d.result_in),
        "dispatch_job_out_ms": dist_ms(d.job_out),
        "dispatch_by_lang_ms": {k: dist_ms(v) for k, v in d.by_lang.items()} if len(d.by_lang) > 1 else {},
        "first_step_ms": dist_ms(d.first),
        "trigger_http_ms": dist_ms([t.t_resp - t.t_sched for t in accepted_in_win]),
        "e2e_ms": dist_ms(e2e),
        "e2e_server_ms": dist_ms(e2e_server),
        "hops_missing_parent_record": d.missing,
        "drained": drained,
        "not_completed": sum(1 for r in run_ids if rows.runs.get(r, (None, None))[1] != "COMPLETED"),
        "duplicated_handler_calls": records.duplicated_jobs(set(run_ids)),
        "duplicated_completed_attempts": sum(1 for jobs in completed_attempts(rows.attempts).values() if len(jobs) > 1),
    }


# ---------------------------------------------------------------- a T0 point


def t0_dispatch(
    rows: list[list[str]], recv: dict[tuple[str, int], float], records: WorkerRecords, tw0: float, tw1: float
) -> tuple[Dispatch, int]:
    """Per-hop latencies of T0's 10-step runs from the worker records, and the steps finished in the window.
    `recv` is when the T0 engine polled step k's result: the split point of a hop."""
    d = Dispatch()
    steps_in_win = 0
    for r in rows:
        calls = {c.step: c for c in reversed(records.by_run.get(r[0], []))}
        for k in range(10):
            c = calls.get(f"s{k}")
            if c is None:
                continue
            if tw0 <= c.t_exit < tw1:
                steps_in_win += 1
            if not tw0 <= c.t_entry < tw1:
                continue
            if k == 0:
                d.first.append(c.t_entry - float(r[1]))
            elif (prev := calls.get(f"s{k - 1}")) is not None:
                d.hops.append(c.t_entry - prev.t_exit)
                if (t_recv := recv.get((r[0], k - 1))) is not None:
                    d.result_in.append(t_recv - prev.t_exit)
                    d.job_out.append(c.t_entry - t_recv)
    return d, steps_in_win


def t0_point(
    rate: float,
    rows: list[list[str]],
    recv: dict[tuple[str, int], float],
    records: WorkerRecords,
    tw0: float,
    tw1: float,
    measure: float,
) -> dict[str, Any]:
    """The metrics of one T0 rate point; `rows` are the T0 engine's `run_id,t_sched,t_finished` lines."""
    scheds = [float(r[1]) for r in rows]
    finishes = [float(r[2]) for r in rows if r[2]]
    e2e = [(float(r[2]) - float(r[1])) if r[2] else INF for r in rows if tw0 <= float(r[1]) < tw1]
    d, steps_in_win = t0_dispatch(rows, recv, records, tw0, tw1)
    in_win = sum(1 for s in scheds if tw0 <= s < tw1)
    return {
        "workload": "T0",
        "steps_per_workflow": 10,
        "target_wf_per_s": rate,
        "target_steps_per_s": rate * 10,
        "window_s": round(measure, 2),
        "arrivals_in_window": in_win,
        "achieved_wf_per_s": round(in_win / measure, 2),
        "trigger_errors": 0,
        "wf_per_s": round(sum(1 for f in finishes if tw0 <= f < tw1) / measure, 2),
        "steps_per_s": round(steps_in_win / measure, 1),
        "steps_completed_in_window": steps_in_win,
        **backlog(tw0, tw1, scheds, finishes),
        "dispatch_ms": dist_ms(d.hops),
        "dispatch_definition": "parent handler returned -> child handler entered (no DB)",
        "dispatch_result_in_ms": dist_ms(d.result_in),
        "dispatch_job_out_ms": dist_ms(d.job_out),
        "dispatch_split_definition": "result in = parent returned -> T0 engine polled the result; "
        "job out = polled -> child handler entered",
        "first_step_ms": dist_ms(d.first),
        "e2e_ms": dist_ms(e2e),
        "drained": len(finishes) == len(rows),
        "not_completed": len(rows) - len(finishes),
        "duplicated_handler_calls": records.duplicated_jobs({r[0] for r in rows}),
        "duplicated_completed_attempts": 0,
    }
