"""T0, the transport floor: the harness side of `t0_engine.py` (started with the bench's workers; driven one
rate point at a time over its stdin/stdout as JSON lines, its records read back from CSV files).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyze import add_cpu, judge, t0_point
from procs import Managed, cpu_delta
from report import point_line
from workloads import rates

if TYPE_CHECKING:
    from sweep import Bench


async def t0_sweep(bench: Bench) -> None:
    prefix = f"{bench.stack.prefix}t0-"
    bench.log("T0: starting transport-floor engine and workers")
    workers = bench.stack.start_workers(prefix, "t0", bench.records)
    eng = bench.stack.start_t0_engine(prefix)
    assert eng.proc.stdout and eng.proc.stdin
    line = await asyncio.wait_for(asyncio.to_thread(eng.proc.stdout.readline), 60)
    if "ready" not in line:
        raise RuntimeError(f"t0 engine did not start:\n{eng.tail()}")
    bench.groups.orchestrator, bench.groups.workers = [eng.pid], [w.pid for w in workers]
    await bench.stack.wait_group_stable(f"{prefix}workers", workers)
    # Warm-up: a few runs through the whole loop.
    await run_point(bench, eng, 5, 0, 3, 0, probe=True)
    for rate in rates(bench.args, "T0"):
        p = await run_point(bench, eng, rate, bench.args.warmup, bench.args.measure, bench.args.drain)
        bench.points.append(p)
        bench.log(point_line(p))
        if not p["sustainable"]:
            break
    eng.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
    eng.proc.stdin.flush()
    eng.stop(10)
    for w in workers:
        w.stop(15)


async def run_point(
    bench: Bench, eng: Managed, rate: float, warmup: float, measure: float, drain: float, probe: bool = False
) -> dict[str, Any]:
    """One T0 point; a probe only checks that its runs completed (and returns {})."""
    assert eng.proc.stdout and eng.proc.stdin
    t_start = time.time() + 0.3
    tw0, tw1 = t_start + warmup, t_start + warmup + measure
    out = bench.stack.tmp / f"t0-{rate}.csv"
    cmd = {"cmd": "point", "rate": rate, "t_start": t_start, "duration": warmup + measure, "steps": 10,
           "drain": drain if not probe else 60, "out": str(out)}  # fmt: skip
    eng.proc.stdin.write(json.dumps(cmd) + "\n")
    eng.proc.stdin.flush()
    sampler = asyncio.create_task(bench.sample(tw0, tw1))
    line = await asyncio.wait_for(asyncio.to_thread(eng.proc.stdout.readline), warmup + measure + drain + 90)
    window = await sampler
    if not line:
        raise RuntimeError(f"t0 engine died:\n{eng.tail()}")
    await asyncio.sleep(0.35)
    bench.records.refresh()
    rows, recv = read_records(out)
    if probe:
        if any(not r[2] for r in rows):
            raise RuntimeError("T0 warm-up runs did not complete")
        return {}
    p = t0_point(rate, rows, recv, bench.records, tw0, tw1, measure)
    add_cpu(p, cpu_delta(window.a, window.b), measure)
    judge(p)
    return p


def read_records(out: Path) -> tuple[list[list[str]], dict[tuple[str, int], float]]:
    """The engine's `run_id,t_sched,t_finished` rows, and from `<out>.recv` when it polled step k's result."""
    rows = [ln.split(",") for ln in out.read_text().splitlines()]
    recv: dict[tuple[str, int], float] = {}
    recv_path = Path(str(out) + ".recv")
    if recv_path.exists():
        for ln in recv_path.read_text().splitlines():
            rid, k, t = ln.split(",")
            recv.setdefault((rid, int(k)), float(t))
    return rows, recv
