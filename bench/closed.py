"""Closed loop, as a client sees it: N workflows in flight, each client starting the next one when its
last finished. Two ways to learn that a run finished, side by side on the same 10-step chain (W1):

- `wait`: `POST .../trigger?wait=60` answers with the finished run (woken by the engine's commit);
- `poll`: `POST .../trigger`, then `GET /workflow/run/{id}` every POLL_S until it is terminal.

Latency = trigger sent -> finished run received. For `wait`, the wake latency is the time from the run's
completing transaction (runs.finished_at, PostgreSQL's now() of that transaction) to the client's answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analyze import add_cpu, dist_ms
from procs import cpu_delta

if TYPE_CHECKING:
    from sweep import Bench

POLL_S = 0.02
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass(slots=True)
class Done:
    run_id: str
    sent: float
    answered: float
    status: str


async def _client(bench: Bench, path: str, mode: str, until: float, out: list[Done]) -> None:
    pool = bench.pool
    assert pool is not None
    n = 0
    while time.time() < until:
        n += 1
        body = json.dumps({"input": {"n": n}}).encode()
        sent = time.time()
        if mode == "wait":
            status, run = await pool.request("POST", f"{path}?wait=60", body)
        else:
            status, run = await pool.request("POST", path, body)
            while status < 300 and run.get("status") not in TERMINAL:
                await asyncio.sleep(POLL_S)
                status, run = await pool.request("GET", f"/workflow/run/{run['run_id']}")
        if status >= 300 or "run_id" not in run:
            bench.trigger_failures.append(f"HTTP {status}: {str(run)[:200]}")
            continue
        out.append(Done(run["run_id"], sent, time.time(), run["status"]))


async def closed_point(bench: Bench, inflight: int, mode: str, warmup: float, measure: float) -> dict[str, Any]:
    wl = bench.wl["W1"]
    t0 = time.time()
    tw0, tw1 = t0 + warmup, t0 + warmup + measure
    sampler = asyncio.create_task(bench.sample(tw0, tw1))
    done: list[Done] = []
    path = f"/workflow/{wl.wf_id}/trigger"
    await asyncio.gather(*(_client(bench, path, mode, tw1, done) for _ in range(inflight)))
    window = await sampler
    for d in done:
        bench.accepted[d.run_id] = f"W1-closed-{mode}"
    inside = [d for d in done if tw0 <= d.answered <= tw1]
    steps = len(inside) * len(wl.steps)
    p: dict[str, Any] = {
        "workload": f"W1-closed-{mode}",
        "inflight": inflight,
        "wf_per_s": round(len(inside) / measure, 1),
        "steps_per_s": round(steps / measure, 1),
        "steps_completed_in_window": steps,
        "latency_ms": dist_ms([d.answered - d.sent for d in inside]),
        "not_completed": sum(1 for d in inside if d.status != "COMPLETED"),
    }
    if mode == "wait":
        finished = bench.db.q(
            "SELECT id::text, extract(epoch FROM finished_at) FROM runs WHERE id = ANY(%s::uuid[])",
            ([d.run_id for d in inside],),
        )
        at = {rid: float(ts) for rid, ts in finished if ts is not None}
        p["wake_ms"] = dist_ms([max(0.0, d.answered - at[d.run_id]) for d in inside if d.run_id in at])
    add_cpu(p, cpu_delta(window.a, window.b), measure)
    return p


def point_line(p: dict[str, Any]) -> str:
    lat = p["latency_ms"]
    wake = p.get("wake_ms")
    extra = f", wake p50 {wake['p50']} p99 {wake['p99']} ms" if wake and wake.get("n") else ""
    return (
        f"{p['workload']} x{p['inflight']}: {p['steps_per_s']:g} steps/s, per workflow p50 {lat['p50']} "
        f"p99 {lat['p99']} ms{extra}, orch {p['cpu_us_per_step'].get('orchestrator')} µs/step"
    )


async def closed_sweep(bench: Bench, levels: list[int], warmup: float, measure: float) -> None:
    for inflight in levels:
        for mode in ("wait", "poll"):
            p = await closed_point(bench, inflight, mode, warmup, measure)
            bench.closed.append(p)
            bench.log(point_line(p))


def markdown(points: list[dict[str, Any]]) -> list[str]:
    if not points:
        return []
    out = [
        "",
        "Closed loop, W1 (10 steps): N clients, each starting a workflow when its last one finished; "
        "`wait` = trigger?wait (woken by the engine's commit), `poll` = trigger then GET every 20 ms. "
        "Wake = the run's completing transaction → the waiting client's answer.",
        "",
        "| mode | in flight | wf/s | steps/s | per workflow p50 / p99 ms | wake p50 / p99 ms "
        "| orch µs/step | sum µs/step |",
        "|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for p in points:
        lat, wake = p["latency_ms"], p.get("wake_ms") or {}
        wake_txt = f"{wake.get('p50')} / {wake.get('p99')}" if wake.get("n") else "-"
        c = p["cpu_us_per_step"]
        out.append(
            f"| {p['workload'].rsplit('-', 1)[1]} | {p['inflight']} | {p['wf_per_s']:g} | {p['steps_per_s']:g} "
            f"| {lat['p50']} / {lat['p99']} | {wake_txt} | {c.get('orchestrator')} | {c.get('sum_groups')} |"
        )
    return out
