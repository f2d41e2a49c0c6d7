"""The bench run: T0, then the orchestrator and workers for the Baton workloads (W3, W1, W2), each swept up
its rates until a point is not sustainable, an optional profiled point, the correctness check, cleanup.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx

import results
from analyze import Trigger, WorkerRecords, add_cpu, baton_point, judge
from closed import closed_sweep
from collect import Db, Window, py_spy, row_ops_per_step, sample_window
from loadgen import HttpPool, open_loop
from peers.compare import headline as peer_headline
from peers.compare import run_peer
from procs import cpu_delta, peak_rss_mb
from reads import read_cost
from report import point_line
from stack import RESULTS, Stack, shared_groups
from t0 import t0_sweep
from workloads import Workload, rates, workloads


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack = Stack(args)
        self.db = Db(self.stack.db_url, self.stack.schema)
        self.records = WorkerRecords()
        self.points: list[dict[str, Any]] = []
        self.closed: list[dict[str, Any]] = []  # closed-loop points (closed.py)
        self.reads: dict[str, Any] | None = None  # the cost of one run read (reads.py)
        self.peer: dict[str, Any] | None = None  # --peer: the peer's closed loop beside C1 (peers/compare.py)
        self.peak_rss: dict[str, float] | None = None  # taken before Baton's processes stop for the peer leg
        self.accepted: dict[str, str] = {}  # run_id -> workload, every accepted trigger
        self.wl = workloads(self.stack.ts_id.replace("_", ""), args.flow)
        self.pool: HttpPool | None = None
        self.trigger_failures: list[str] = []
        self.peak_pss: dict[str, int] = {}  # group -> largest PSS sum sampled in a window (shared services)
        self.profile: dict[str, Any] | None = None
        self.correct: dict[str, Any] = {}
        self.notes: list[str] = []
        self.groups = shared_groups(self.stack.db_url)
        self.started = time.time()

    def log(self, msg: str) -> None:
        print(f"[bench {time.time() - self.started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    async def sample(self, tw0: float, tw1: float) -> Window:
        return await sample_window(self.groups, self.db, self.peak_pss, tw0, tw1)

    async def trigger(self, wf_id: str, rate: float, t_start: float, duration: float) -> list[Trigger]:
        if self.pool is None:
            self.pool = HttpPool("127.0.0.1", self.stack.port, self.args.connections)
        path = f"/workflow/{wf_id}/trigger"
        return await open_loop(self.pool, path, rate, t_start, duration, self.args.inflight_cap, self.trigger_failures)

    # ------------------------------------------------------------ a Baton point

    async def point(
        self, wl: Workload, rate: float, warmup: float, measure: float, profile: bool = False
    ) -> dict[str, Any]:
        self.trigger_failures = []
        t_start = time.time() + 0.3
        tw0, tw1 = t_start + warmup, t_start + warmup + measure
        sampler = asyncio.create_task(self.sample(tw0, tw1))
        spy = asyncio.create_task(self.py_spy(tw0, measure)) if profile else None
        triggers = await self.trigger(wl.wf_id, rate, t_start, warmup + measure)
        window = await sampler
        if spy:
            await spy
        run_ids = [t.run_id for t in triggers if t.run_id]
        for r in run_ids:
            self.accepted[r] = wl.name
        drained, _ = await self.db.drain(run_ids, self.args.drain)
        await asyncio.sleep(0.35)  # the workers' side channel flushes every 100 ms
        self.records.refresh()
        rows = self.db.point_rows(run_ids)
        p = baton_point(wl, rate, triggers, rows, self.records, self.trigger_failures, tw0, tw1, drained)
        add_cpu(p, cpu_delta(window.a, window.b), measure)
        if window.commits0 is not None and window.commits1 is not None and p["steps_completed_in_window"]:
            commits = window.commits1 - window.commits0
            p["pg_commits_per_step_approx"] = round(commits / p["steps_completed_in_window"], 2)
        if window.rows0 is not None and window.rows1 is not None and p["steps_completed_in_window"]:
            p.update(row_ops_per_step(window.rows0, window.rows1, p["steps_completed_in_window"]))
        judge(p)
        if profile:
            p["profiled"] = True
        return p

    async def py_spy(self, t0: float, seconds: float) -> None:
        raw = RESULTS / f"profile-{self.stack.ts}.txt"
        svg = RESULTS / f"profile-{self.stack.ts}.svg"
        orch = self.stack.orch
        self.profile = await py_spy(orch.pid if orch else None, t0, seconds, raw, svg)

    # ------------------------------------------------------------ the Baton workloads

    async def start_baton(self, client: httpx.AsyncClient) -> None:
        """Orchestrator up, workflows defined, workers started and warmed up (their consumer groups joined)."""
        await self.stack.wait_health(client)
        orch = self.stack.orch
        assert orch is not None
        self.db.connect()
        self.groups.orchestrator = [orch.pid]
        if self.args.orchestrator == "split":
            engine = self.stack.start_engine()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.stack.engine_port}") as probe_engine:
                await self.stack.wait_health(probe_engine, proc=engine)
            self.groups.orchestrator.append(engine.pid)
        for wl in self.wl.values():
            r = await client.post("/workflow", json=wl.definition())
            if r.status_code != 201:
                raise RuntimeError(f"define {wl.wf_id}: {r.status_code} {r.text}")
        workers = self.stack.start_workers(self.stack.prefix, "baton", self.records)
        self.groups.workers = [w.pid for w in workers]
        waited = await self.stack.wait_group_stable(f"{self.stack.prefix}workers", workers)
        self.log(f"workers: {self.args.workers}; group stable after {waited:.1f} s; warming up")
        probe = await self.trigger(self.wl["W1"].wf_id, 5, time.time(), 0.6)
        ok, _ = await self.db.drain([t.run_id for t in probe if t.run_id], 90)
        if not ok or any(t.status != 201 for t in probe):
            raise RuntimeError(f"warm-up runs did not complete\n{orch.tail()}")
        for t in probe:
            self.accepted[t.run_id or ""] = "probe"

    async def sweep(self, name: str) -> None:
        """Up the workload's rates until a point is not sustainable or the time budget is spent."""
        wl = self.wl[name]
        meas = self.args.w3_measure if name == "W3" else self.args.measure
        p: dict[str, Any] | None = None
        good: float | None = None
        for rate in rates(self.args, name):
            p = await self.point(wl, rate, self.args.warmup, meas)
            self.points.append(p)
            self.log(point_line(p))
            if not p["sustainable"]:
                break
            good = rate
            if time.time() - self.started > self.args.budget:
                self.notes.append(f"{name} sweep stopped by the time budget ({self.args.budget:.0f} s)")
                break
        explicit = getattr(self.args, f"{name.lower()}_rates")
        bad = p["target_wf_per_s"] if p is not None and not p["sustainable"] else None
        for _ in range(0 if explicit or name == "W3" else self.args.refine):
            # The ramp's steps are coarse (x1.4-1.5): probe between the last sustainable and the first
            # unsustainable rate, so the reported throughput is not an artefact of where a step landed.
            if p is None or good is None or bad is None or time.time() - self.started > self.args.budget:
                break
            if not p["drained"]:
                await self.db.drain(list(self.accepted), 60)
            mid = round((good * bad) ** 0.5, 1)
            p = await self.point(wl, mid, self.args.warmup, meas)
            self.points.append(p)
            self.log(point_line(p) + " (refinement)")
            good, bad = (mid, bad) if p["sustainable"] else (good, mid)
        if p is not None and not p["drained"]:  # let a saturated point's backlog go before the next workload
            await self.db.drain(list(self.accepted), 60)

    def closed_levels(self) -> list[int]:
        return [int(x) for x in (self.args.closed or ("1,20" if self.args.quick else "1,50,200")).split(",")]

    async def closed_loop(self) -> None:
        levels = self.closed_levels()
        if self.pool is not None:
            await self.pool.close()
        # One connection per client: a waiting request holds its connection until the run is done.
        self.pool = HttpPool("127.0.0.1", self.stack.port, max(levels) + 2)
        await closed_sweep(self, levels, self.args.warmup, self.args.measure)
        await self.pool.close()
        self.pool = None

    async def profile_point(self) -> None:
        best = results.best(self.points, "W1")
        rate = self.args.profile_rate or (best["target_wf_per_s"] if best else 20)
        self.log(f"profiling the orchestrator with py-spy under W1 at {rate:g} wf/s")
        p = await self.point(self.wl["W1"], rate, 2, self.args.profile_seconds, profile=True)
        p["workload"] = "W1-profiled"
        self.points.append(p)
        self.log(point_line(p))

    async def run(self) -> None:
        todo = ["W3", "W1", "C1"] if self.args.quick else [w.strip().upper() for w in self.args.workloads.split(",")]
        if "T0" in todo:
            await t0_sweep(self)
        if not any(w in todo for w in ("W1", "W2", "W3", "C1")):
            return
        self.log(f"starting orchestrator (schema {self.stack.schema}, topic prefix {self.stack.prefix})")
        self.stack.start_orchestrator("api" if self.args.orchestrator == "split" else "all")
        n = self.args.connections
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        base_url = f"http://127.0.0.1:{self.stack.port}"
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
            await self.start_baton(client)
            for name in ("W3", "W1", "W2"):
                if name in todo:
                    await self.sweep(name)
            if "C1" in todo:
                await self.closed_loop()
                self.reads = await read_cost(self, client)
            if self.args.profile:
                await self.profile_point()
            self.log("final drain and correctness check")
            await self.db.drain(list(self.accepted), self.args.final_drain)
            self.correct = self.db.correctness(list(self.accepted), self.records)
        if self.args.peer:
            await self.peer_leg()

    async def peer_leg(self) -> None:
        """After Baton's C1: Baton's processes stop (their idle loops would bill the peer's window), then the
        peer runs the same closed loop at the same levels."""
        self.peak_rss = peak_rss_mb(self.groups, self.peak_pss)
        self.log("stopping Baton's processes for the peer leg")
        self.stack.stop_processes(self.notes)
        self.peer = await run_peer(self, self.args.peer, self.closed_levels())

    # ------------------------------------------------------------ cleanup, output

    async def cleanup(self) -> None:
        self.log("cleaning up")
        if self.pool is not None:
            await self.pool.close()
        self.stack.stop_processes(self.notes)
        self.db.close()
        await self.stack.remove_namespace(self.notes)

    def output(self) -> Path:
        result: dict[str, Any] = {
            **results.headline(self.points, self.correct, self.closed),
            **peer_headline(self.peer),
            **(
                {"get_run_orchestrator_cpu_us": self.reads["cpu_us_per_read"].get("orchestrator")} if self.reads else {}
            ),
            "timestamp": self.stack.ts,
            **results.git_state(),
            "machine": results.machine(),
            "knobs": results.knobs(self.args, self.stack.orch_env, self.stack.db_url),
            "correctness": self.correct,
            "peak_rss_mb": self.peak_rss or peak_rss_mb(self.groups, self.peak_pss),
            "points": self.points,
            "closed_loop": self.closed,
            "reads": self.reads,
            "peer": self.peer,
            "profile": self.profile,
            "notes": self.notes,
            "duration_s": round(time.time() - self.started, 1),
        }
        return results.write(result)
