"""What one read costs: `GET /workflow/run/{id}` of a finished 10-step run (W1), N times in a row, with the
CPU of the orchestrator and of PostgreSQL per read (from /proc, like every other number here)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx

from procs import cpu_delta, snapshot

if TYPE_CHECKING:
    from sweep import Bench

READS = 1000


async def read_cost(bench: Bench, client: httpx.AsyncClient) -> dict[str, Any]:
    wl = bench.wl["W1"]
    resp = await client.post(f"/workflow/{wl.wf_id}/trigger?wait=60", json={"input": {"n": 0}})
    run = resp.json()
    if run.get("status") != "COMPLETED":
        raise RuntimeError(f"the read-cost run did not complete: {resp.status_code} {resp.text[:300]}")
    bench.accepted[run["run_id"]] = "reads"
    path = f"/workflow/run/{run['run_id']}"
    for _ in range(50):  # warm caches and connections
        await client.get(path)
    a = snapshot(bench.groups)
    t0 = time.perf_counter()
    for _ in range(READS):
        r = await client.get(path)
        r.raise_for_status()
    wall = time.perf_counter() - t0
    cpu = cpu_delta(a, snapshot(bench.groups))
    point = {
        "reads": READS,
        "steps": len(run["steps"]),
        "body_bytes": len(r.content),
        "wall_ms_per_read": round(wall / READS * 1000, 3),
        "cpu_us_per_read": {k: round(v / READS * 1e6, 1) for k, v in cpu.items()},
    }
    c = point["cpu_us_per_read"]
    bench.log(
        f"GET /workflow/run/{{id}} ({point['steps']} steps) x{READS}: {point['wall_ms_per_read']} ms each, "
        f"orchestrator {c.get('orchestrator')} µs, postgres {c.get('postgres')} µs of CPU per read"
    )
    return point


def markdown(point: dict[str, Any] | None) -> list[str]:
    if not point:
        return []
    c = point["cpu_us_per_read"]
    return [
        "",
        f"Reads: `GET /workflow/run/{{id}}` of a finished {point['steps']}-step run, {point['reads']} in a row: "
        f"{point['wall_ms_per_read']} ms each; CPU per read: orchestrator {c.get('orchestrator')} µs, "
        f"PostgreSQL {c.get('postgres')} µs, load generator {c.get('loadgen')} µs ({point['body_bytes']} bytes).",
    ]
