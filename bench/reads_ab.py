"""Read and trigger cost, this checkout beside another git ref, in one run (R2.6).

    .venv/bin/python bench/reads_ab.py                 # base = merge-base with main, 4 rounds
    .venv/bin/python bench/reads_ab.py --base HEAD~3 --rounds 6 --reads 2000

One `baton server` (this checkout, role all) and one worker finish a 10-step W1 run; then two API-only
servers on the same schema — the base ref's code (`git archive` into a temporary directory, put first on
PYTHONPATH) and this checkout's — serve `GET /workflow/run/{id}` N times in a row and M triggers each,
alternately (A B A B …), so both see the same machine load. CPU is the API process's own (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx

from analyze import WorkerRecords
from procs import TICK, Managed
from stack import PY, ROOT, Stack, free_port
from workloads import workloads


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="git ref to compare with (default: the merge-base with main)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--triggers", type=int, default=300)
    ap.add_argument("--idle", type=float, default=3, help="seconds of idle CPU measured before each side")
    ap.add_argument("--api-key", default="bench-key", help="BATON_API_KEYS of the servers (auth on, as deployed)")
    args = ap.parse_args()
    args.workers, args.concurrency, args.keep_schema = "python", 8, False
    return args


def export_ref(ref: str, into: Path) -> Path:
    """The ref's orchestrator package, extracted (no checkout, no build)."""
    tar = into / "base.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(tar), ref, "orchestrator"], check=True)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into / "orchestrator"


def api_server(stack: Stack, name: str, code: Path | None, key: str) -> tuple[Managed, int]:
    port = free_port()
    env = {**stack.env, **stack.orch_env, "BATON_API_KEYS": key}
    if code is not None:  # before the editable install's finder, which is the last on sys.meta_path
        env["PYTHONPATH"] = str(code)
    argv = [PY, "-m", "baton_orchestrator", "server", "--host", "127.0.0.1", "--port", str(port)]
    proc = Managed(name, [*argv, "--role", "api", "--no-migrate"], env, stack.tmp / f"{name}.log", cwd=str(ROOT))
    stack.procs.append(proc)
    return proc, port


async def finished_run(stack: Stack, key: str) -> tuple[str, str]:
    """A finished 10-step W1 run (orchestrator + one worker of this checkout); returns (run id, workflow id)."""
    stack.env["BATON_API_KEYS"] = key
    stack.start_orchestrator("all")
    wl = workloads(stack.ts)["W1"]
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.port}", headers=headers, timeout=90) as c:
        await stack.wait_health(c)
        (await c.post("/workflow", json=wl.definition())).raise_for_status()
        workers = stack.start_workers(stack.prefix, "reads", WorkerRecords([]))
        await stack.wait_group_stable(f"{stack.prefix}workers", workers)
        run = (await c.post(f"/workflow/{wl.wf_id}/trigger?wait=60", json={"input": {"n": 0}})).json()
    if run.get("status") != "COMPLETED" or len(run["steps"]) != 10:
        raise RuntimeError(f"the run did not complete: {run}")
    return run["run_id"], wl.wf_id


def ustime(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all threads."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


async def idle_rate(pid: int, seconds: float) -> float:
    """CPU seconds per second the server spends with no request (its background loops)."""
    a = sum(ustime(pid))
    await asyncio.sleep(seconds)
    return (sum(ustime(pid)) - a) / seconds


async def cost(c: httpx.AsyncClient, pid: int, n: int, method: str, path: str, **kw: Any) -> tuple[float, ...]:
    """Per request over n sequential ones: µs of the server's CPU (user + system), of which system, and ms of
    wall time."""
    for _ in range(30):
        (await c.request(method, path, **kw)).raise_for_status()
    (u0, s0), t0 = ustime(pid), time.perf_counter()
    for _ in range(n):
        (await c.request(method, path, **kw)).raise_for_status()
    (u1, s1), wall = ustime(pid), time.perf_counter() - t0
    return (u1 - u0 + s1 - s0) / n * 1e6, (s1 - s0) / n * 1e6, wall / n * 1e3


SIDES = (
    "idle_us_per_s",
    "read_cpu_us",
    "read_sys_us",
    "read_wall_ms",
    "trigger_cpu_us",
    "trigger_sys_us",
    "trigger_wall_ms",
)


async def measure(stack: Stack, args: argparse.Namespace, base: str, tmp: Path) -> dict[str, dict[str, list[float]]]:
    run_id, wf_id = await finished_run(stack, args.api_key)
    servers = {
        f"base {base[:10]}": api_server(stack, "api-base", export_ref(base, tmp), args.api_key),
        "this checkout": api_server(stack, "api-head", None, args.api_key),
    }
    headers = {"authorization": f"Bearer {args.api_key}"}
    results: dict[str, dict[str, list[float]]] = {k: {n: [] for n in SIDES} for k in servers}
    clients = {k: httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", headers=headers) for k, (_, p) in servers.items()}
    try:
        for k, (proc, _) in servers.items():
            await stack.wait_health(clients[k], proc=proc)
        for r in range(args.rounds):
            order = list(servers.items()) if r % 2 == 0 else list(reversed(servers.items()))
            for k, (proc, _) in order:
                c = clients[k]
                idle = await idle_rate(proc.pid, args.idle) * 1e6
                read = await cost(c, proc.pid, args.reads, "GET", f"/workflow/run/{run_id}")
                body = {"input": {"n": r}}
                trig = await cost(c, proc.pid, args.triggers, "POST", f"/workflow/{wf_id}/trigger", json=body)
                for name, v in zip(SIDES, (idle, *read, *trig), strict=True):
                    results[k][name].append(v)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for c in clients.values():
            await c.aclose()
    return results


async def main() -> None:
    args = parse()
    base = args.base or subprocess.check_output(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], text=True)
    base = base.strip()
    stack = Stack(args)
    notes: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = await measure(stack, args, base, Path(tmp))
    finally:
        stack.stop_processes(notes)
        await stack.remove_namespace(notes)
        shutil.rmtree(stack.tmp, ignore_errors=True)  # the servers' logs
    print_table(results, args)
    for n in notes:
        print("note:", n)


def _cell(vals: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(vals))} ({', '.join(fmt.format(v) for v in vals)})"


def print_table(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    print(f"\n{args.rounds} rounds alternating; {args.reads} reads and {args.triggers} triggers per round and side")
    print("Medians (each round's value in brackets). µs of the API process's CPU per request, user + system;")
    print("idle: its CPU per second with no requests (background loops), included in the per-request numbers.")
    print("| code | idle µs/s | read µs CPU | of which sys | read ms wall | trigger µs CPU | of which sys | ms wall |")
    print("|---|---|---|---|---|---|---|---|")
    for k, m in results.items():
        cells = [_cell(m[n], "{:.2f}" if n.endswith("ms") else "{:.0f}") for n in SIDES]
        print(f"| {k} | {' | '.join(cells)} |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
