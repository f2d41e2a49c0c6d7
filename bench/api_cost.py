"""What the API costs per request: orchestrator CPU for a trigger, a cancel and every list/read endpoint, two
checkouts side by side (A/B).

    .venv/bin/python bench/api_cost.py --a /path/to/other/checkout [--b .] [--requests 1000] [--rounds 2]

Each checkout runs its own `baton server --role api` (its own .venv, schema and topic prefix) on the shared
stack; both stay up while each endpoint is measured A, B, A, B, so a busy machine weighs on both alike. Requests
are sequential (one in flight), CPU is the server's utime+stime from /proc, per request, in µs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from procs import cpu_seconds
from stack import free_port

ROOT = Path(__file__).resolve().parent.parent
WF = {"id": "api-cost", "steps": [{"name": "only", "action": "api-cost.noop"}]}


class Server:
    def __init__(self, label: str, checkout: Path, ts: str) -> None:
        self.label, self.checkout = label, checkout
        self.schema, self.prefix = f"apicost_{ts}_{label.lower()}", f"apicost-{ts}-{label.lower()}-"
        self.port = free_port()
        env = {
            **os.environ,
            "BATON_DATABASE_SCHEMA": self.schema,
            "BATON_TOPIC_PREFIX": self.prefix,
            "BATON_REDIS_PREFIX": f"{self.prefix}:",
            "BATON_ENGINE_GROUP_ID": f"{self.prefix}engine",
            "BATON_LOG_LEVEL": "WARNING",
        }
        argv = [str(checkout / ".venv/bin/baton"), "server", "--role", "api", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port)]
        self.log = open(Path(tempfile.gettempdir()) / f"api-cost-{ts}-{label}.log", "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=checkout, stdout=self.log, stderr=subprocess.STDOUT)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self.runs: list[str] = []

    async def ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} server exited; see {self.log.name}")
            try:
                if (await self.http.get("/health")).status_code == 200:
                    (await self.http.post("/workflow", json=WF)).raise_for_status()
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
        raise RuntimeError(f"{self.label} server not healthy in time")

    async def stop(self) -> None:
        await self.http.aclose()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        with psycopg.connect(os.environ["BATON_DATABASE_URL"], autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


async def _trigger(s: Server, i: int) -> None:
    r = await s.http.post(f"/workflow/{WF['id']}/trigger", json={"input": {"n": i}})
    r.raise_for_status()
    s.runs.append(r.json()["run_id"])


async def _cancel(s: Server, i: int) -> None:
    (await s.http.post(f"/workflow/run/{s.runs.pop()}/cancel")).raise_for_status()


def _get(path: str) -> Any:
    async def call(s: Server, i: int) -> None:
        (await s.http.get(path.format(run=s.runs[i % len(s.runs)]))).raise_for_status()

    return call


ENDPOINTS = {
    "POST trigger": _trigger,
    "GET run/{id}": _get("/workflow/run/{run}"),
    "GET runs": _get("/workflow/runs?limit=20"),
    "GET runs?wf&status": _get(f"/workflow/runs?workflow_id={WF['id']}&status=RUNNING&limit=20"),
    "GET runs/counts": _get("/workflow/runs/counts"),
    "GET workflow": _get("/workflow"),
    "GET workflow/{id}": _get(f"/workflow/{WF['id']}"),
    "GET dlq": _get("/dlq"),
    "POST cancel": _cancel,
}


async def measure(s: Server, call: Any, n: int) -> float:
    if call is not _cancel:  # warm: connections, prepared statements (a cancel needs a fresh run each)
        for i in range(20):
            await call(s, i)
    before = cpu_seconds(s.proc.pid) or 0.0
    for i in range(n):
        await call(s, i)
    return ((cpu_seconds(s.proc.pid) or 0.0) - before) / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="checkout A (with its .venv)")
    ap.add_argument("--b", type=Path, default=ROOT, help="checkout B (default: this one)")
    ap.add_argument("--requests", type=int, default=1000, help="sequential requests per endpoint per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    ts = time.strftime("%Y%m%d%H%M%S")
    servers = [Server("A", args.a.resolve(), ts), Server("B", args.b.resolve(), ts)]
    results: dict[str, dict[str, list[float]]] = {name: {"A": [], "B": []} for name in ENDPOINTS}
    try:
        await asyncio.gather(*(s.ready() for s in servers))
        # Endpoint by endpoint, A and B in turn: seconds apart, so a neighbour's burst weighs on both alike.
        for name, call in ENDPOINTS.items():
            for _ in range(args.rounds):
                for s in servers:
                    results[name][s.label].append(await measure(s, call, args.requests))
    finally:
        await asyncio.gather(*(s.stop() for s in servers), return_exceptions=True)
    print(f"A = {args.a.resolve()}\nB = {args.b.resolve()}\n")
    print(f"orchestrator CPU per request (µs), {args.requests} sequential requests, rounds A,B alternating\n")
    print("| endpoint | A rounds | B rounds | B/A (best rounds) |\n|---|---|---|---|")
    for name, by in results.items():
        a, b = min(by["A"]), min(by["B"])
        ratio = f"{b / a:.2f}" if a else "-"
        print(f"| {name} | {_fmt(by['A'])} | {_fmt(by['B'])} | {ratio} |")


def _fmt(xs: list[float]) -> str:
    return " ".join(f"{x:.0f}" for x in xs)


if __name__ == "__main__":
    asyncio.run(main())
