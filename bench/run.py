"""Baton benchmark harness: real orchestrator, real workers, the shared Kafka/PostgreSQL/Redis.

    .venv/bin/python bench/run.py --quick      # W3 + a short W1 ramp, about a minute
    .venv/bin/python bench/run.py              # T0, W3, W1, W2 rate sweeps, under ~10 minutes
    .venv/bin/python bench/run.py --profile    # + a py-spy profile of the orchestrator under W1 load

See bench/README.md for what each number means. Everything the bench creates is namespaced by a
timestamp (schema bench_<ts>, topics bench-<ts>-*, Redis keys bench-<ts>:*, groups bench-<ts>-*) and
removed at the end; only the processes it started are stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_VENV_PY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
try:
    import httpx
    import psycopg
except ImportError:  # run with the repository's .venv when started by another interpreter
    if _VENV_PY.exists() and Path(sys.executable).resolve() != _VENV_PY.resolve():
        os.execv(str(_VENV_PY), [str(_VENV_PY), *sys.argv])
    raise

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analyze import INF, Trigger, WorkerRecords, backlog_at, dist_ms, sustainable  # noqa: E402
from loadgen import HttpPool  # noqa: E402
from procs import Groups, Managed, cpu_delta, peak_rss_mb, read_pid, snapshot  # noqa: E402
from report import markdown, plot, summarize_profile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV_BIN = ROOT / ".venv" / "bin"
PY = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
ACTION = "bench.noop"
PAD = "x" * 180


# ---------------------------------------------------------------- workloads


@dataclass
class Workload:
    name: str  # W1, W2, W3
    wf_id: str
    steps: list[dict[str, Any]]

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


def workloads(ts: str) -> dict[str, Workload]:
    fan = [f"b{i:02d}" for i in range(20)]
    return {
        "W1": Workload("W1", f"bench-w1-{ts}", [{"name": f"s{i}", "action": ACTION} for i in range(10)]),
        "W2": Workload(
            "W2",
            f"bench-w2-{ts}",
            [{"name": "fan", "action": ACTION}]
            + [{"name": b, "action": ACTION, "depends_on": ["fan"]} for b in fan]
            + [{"name": "join", "action": ACTION, "depends_on": fan}],
        ),
        "W3": Workload("W3", f"bench-w3-{ts}", [{"name": "s0", "action": ACTION}]),
    }


def geometric(start: float, factor: float, n: int) -> list[float]:
    return [round(start * factor**i, 1) for i in range(n)]


# ---------------------------------------------------------------- helpers


def stack_env() -> dict[str, str]:
    env = {}
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "infra" / "stack.sh"), "env"], capture_output=True, text=True, timeout=20
        ).stdout
        for m in re.finditer(r"export (\w+)=(\S+)", out):
            env[m.group(1)] = m.group(2)
    except (OSError, subprocess.SubprocessError):
        pass
    for k in ("BATON_KAFKA_BOOTSTRAP_SERVERS", "BATON_DATABASE_URL", "BATON_REDIS_URL"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    env.setdefault("BATON_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    env.setdefault("BATON_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/baton")
    env.setdefault("BATON_REDIS_URL", "redis://127.0.0.1:6379/0")
    for k, v in env.items():
        host = re.sub(r"^\w+://([^@/]*@)?", "", v).split(":")[0].split("/")[0]
        if host not in ("127.0.0.1", "localhost"):
            sys.exit(f"refusing to benchmark against a non-local service: {k}={v}")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stack_dir() -> Path:
    return Path(os.environ.get("BATON_STACK_DIR", ROOT / ".stack"))


def grep_kwargs(path: Path, func: str) -> dict[str, str]:
    """The literal keyword arguments of the first `func(` call in a source file (to print the real knobs)."""
    try:
        src = path.read_text()
    except OSError:
        return {}
    i = src.find(func + "(")
    if i < 0:
        return {}
    depth, j = 0, i + len(func)
    while j < len(src):
        depth += {"(": 1, ")": -1}.get(src[j], 0)
        if depth == 0:
            break
        j += 1
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"(\w+)=([^,\n]+)", src[i + len(func) + 1 : j])}


def fmt_ms(v: Any) -> str:
    if v is None:
        return "∞"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


# ---------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ts = time.strftime("%Y%m%d-%H%M%S")
        self.ts_id = self.ts.replace("-", "_")
        self.env = {**os.environ, **stack_env()}
        self.db_url = self.env["BATON_DATABASE_URL"]
        self.schema = f"bench_{self.ts_id}"
        self.prefix = f"bench-{self.ts}-"
        self.tmp = RESULTS / f"tmp-{self.ts}"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.procs: list[Managed] = []
        self.orch: Managed | None = None
        self.workers: list[Managed] = []
        self.records = WorkerRecords()
        self.points: list[dict[str, Any]] = []
        self.accepted: dict[str, str] = {}  # run_id -> workload, every accepted trigger
        self.wl = workloads(self.ts_id.replace("_", ""))
        self.db: psycopg.Connection[Any] | None = None
        self.port = 0
        self.pool: HttpPool | None = None
        self.commits0: int | None = None
        self.trigger_failures: list[str] = []
        self.commits1: int | None = None
        self.sampled_rss: dict[str, int] = {}
        self.profile: dict[str, Any] | None = None
        self.notes: list[str] = []
        sd = stack_dir()
        self.groups = Groups(
            kafka=[p for p in [read_pid(sd / "kafka.pid")] if p],
            redis=[p for p in [read_pid(sd / "redis.pid")] if p],
            postmaster=read_pid(sd / "pg" / "postmaster.pid"),
            pg_port=int(re.search(r":(\d+)/", self.db_url + "/").group(1))
            if re.search(r":(\d+)/", self.db_url)
            else 5432,  # type: ignore[union-attr]
        )
        self.started = time.time()

    # ------------------------------------------------------------ processes

    def log(self, msg: str) -> None:
        print(f"[bench {time.time() - self.started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    def start_workers(self, prefix: str, tag: str) -> list[Managed]:
        out = []
        env = {
            **self.env,
            "BATON_TOPIC_PREFIX": prefix,
            "BATON_WORKER_GROUP": f"{prefix}workers",
            "BATON_WORKER_CONCURRENCY": str(self.args.concurrency),
            "BENCH_ACTIONS": ACTION,
        }
        for i, lang in enumerate(self.args.workers.split(",")):
            lang = lang.strip()
            rec = self.tmp / f"{tag}-worker-{i}-{lang}.csv"
            env_i = {**env, "BENCH_RECORD_FILE": str(rec)}
            if lang == "python":
                argv = [PY, str(BENCH / "worker.py")]
            elif lang == "node":
                if not (ROOT / "sdk-node" / "dist" / "src" / "index.js").exists():
                    sys.exit("--workers node needs sdk-node built: (cd sdk-node && npm run build)")
                argv = ["node", str(BENCH / "worker.mjs")]
            elif lang == "java":
                argv = java_worker_argv(self.tmp)
            else:
                sys.exit(f"unknown worker language {lang!r} (python, node, java)")
            m = Managed(f"worker-{i}-{lang}", argv, env_i, self.tmp / f"{tag}-worker-{i}-{lang}.log", cwd=str(ROOT))
            self.procs.append(m)
            out.append(m)
            self.records.files.append(rec)
        return out

    def start_orchestrator(self) -> None:
        self.port = free_port()
        env = {
            **self.env,
            "BATON_DATABASE_SCHEMA": self.schema,
            "BATON_TOPIC_PREFIX": self.prefix,
            "BATON_REDIS_PREFIX": f"bench-{self.ts}:",
            "BATON_ENGINE_GROUP_ID": f"{self.prefix}engine",
            "BATON_LOG_LEVEL": "WARNING",
        }
        self.orch_env = {k: v for k, v in env.items() if k.startswith("BATON_") and "URL" not in k}
        argv = [str(VENV_BIN / "baton"), "server", "--host", "127.0.0.1", "--port", str(self.port)]
        self.orch = Managed("orchestrator", argv, env, self.tmp / "orchestrator.log", cwd=str(ROOT))
        self.procs.append(self.orch)

    async def wait_health(self, client: httpx.AsyncClient, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.orch is not None
            if not self.orch.alive():
                raise RuntimeError(f"orchestrator exited:\n{self.orch.tail()}")
            try:
                r = await client.get("/health", timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
        raise RuntimeError("orchestrator not healthy in time")

    # ------------------------------------------------------------ database

    def q(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        assert self.db is not None
        with self.db.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def connect_db(self) -> None:
        self.db = psycopg.connect(self.db_url, autocommit=True, options=f"-c search_path={self.schema}")

    # ------------------------------------------------------------ load

    async def loadgen(
        self, client: httpx.AsyncClient, wf_id: str, rate: float, t_start: float, duration: float
    ) -> list[Trigger]:
        if self.pool is None:
            self.pool = HttpPool("127.0.0.1", self.port, self.args.connections)
        pool = self.pool
        path = f"/workflow/{wf_id}/trigger"
        """Open loop: arrivals on a fixed schedule, never waiting for earlier responses (up to a cap)."""
        out: list[Trigger] = []
        inflight: set[asyncio.Task[None]] = set()
        cap = self.args.inflight_cap

        async def one(t_sched: float, i: int) -> None:
            t_sent = time.time()
            body = b'{"input":{"n":%d,"pad":"%s"}}' % (i, PAD.encode())
            try:
                status, data = await pool.post(path, body)
                rid = data.get("run_id") if status == 201 else None
                if status != 201:
                    self.trigger_failures.append(f"HTTP {status}: {str(data)[:200]}")
                out.append(Trigger(t_sched, t_sent, time.time(), status, rid))
            except Exception as exc:
                out.append(Trigger(t_sched, t_sent, time.time(), 0, None))
                self.trigger_failures.append(f"{type(exc).__name__}: {exc}"[:200])

        n = int(rate * duration)
        for i in range(n):
            t_sched = t_start + i / rate
            delay = t_sched - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(inflight) >= cap:
                out.append(Trigger(t_sched, math.nan, math.nan, -1, None))
                continue
            task = asyncio.create_task(one(t_sched, i))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.wait(inflight, timeout=60)
        return out

    def pg_commits(self) -> int | None:
        """Database-wide committed transactions (pg_stat_database; other users of the database count too,
        and backends flush these counters up to ~1 s late)."""
        if self.db is None:
            return None
        try:
            return int(self.q("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0][0])
        except Exception:
            return None

    async def sample_window(self, tw0: float, tw1: float) -> tuple[Any, Any]:
        await asyncio.sleep(max(0.0, tw0 - time.time()))
        self.commits0 = self.pg_commits()
        a = snapshot(self.groups)
        while time.time() < tw1 - 1.0:
            await asyncio.sleep(1.0)
            s = snapshot(self.groups)
            for k, v in s.rss_kb.items():
                self.sampled_rss[k] = max(self.sampled_rss.get(k, 0), v)
        await asyncio.sleep(max(0.0, tw1 - time.time()))
        b = snapshot(self.groups)
        self.commits1 = self.pg_commits()
        for k, v in b.rss_kb.items():
            self.sampled_rss[k] = max(self.sampled_rss.get(k, 0), v)
        return a, b

    async def drain(self, run_ids: list[str], timeout: float) -> tuple[bool, float]:
        deadline = time.time() + timeout
        while True:
            left = self.q(
                "SELECT count(*) FROM runs WHERE id = ANY(%s::uuid[]) AND status IN ('PENDING', 'RUNNING')",
                (run_ids,),
            )[0][0]
            if left == 0:
                return True, time.time()
            if time.time() > deadline:
                return False, time.time()
            await asyncio.sleep(0.2)

    # ------------------------------------------------------------ a Baton point

    async def point(
        self, client: httpx.AsyncClient, wl: Workload, rate: float, warmup: float, measure: float, profile: bool = False
    ) -> dict[str, Any]:
        self.trigger_failures = []
        t_start = time.time() + 0.3
        tw0, tw1 = t_start + warmup, t_start + warmup + measure
        sampler = asyncio.create_task(self.sample_window(tw0, tw1))
        spy = asyncio.create_task(self.py_spy(tw0, measure)) if profile else None
        triggers = await self.loadgen(client, wl.wf_id, rate, t_start, warmup + measure)
        snap_a, snap_b = await sampler
        if spy:
            await spy
        run_ids = [t.run_id for t in triggers if t.run_id]
        for r in run_ids:
            self.accepted[r] = wl.name
        drained, _ = await self.drain(run_ids, self.args.drain)
        await asyncio.sleep(0.35)  # the workers' side channel flushes every 100 ms
        self.records.refresh()
        p = self.analyze(wl, rate, triggers, run_ids, tw0, tw1, drained)
        p["cpu_s"] = {k: round(v, 3) for k, v in cpu_delta(snap_a, snap_b).items()}
        self.add_cpu(p, measure)
        if self.commits0 is not None and self.commits1 is not None and p["steps_completed_in_window"]:
            p["pg_commits_per_step_approx"] = round((self.commits1 - self.commits0) / p["steps_completed_in_window"], 2)
        ok, why = sustainable(p)
        p["sustainable"], p["why_not"] = ok, why
        if profile:
            p["profiled"] = True
        return p

    def add_cpu(self, p: dict[str, Any], measure: float) -> None:
        steps = p["steps_completed_in_window"]
        p["cpu_us_per_step"] = {k: (round(v / steps * 1e6, 1) if steps else None) for k, v in p["cpu_s"].items()}
        p["cores_busy"] = {k: round(v / measure, 2) for k, v in p["cpu_s"].items()}
        groups = [k for k in p["cpu_s"] if k not in ("machine", "other")]
        p["cpu_us_per_step"]["sum_groups"] = (
            round(sum(p["cpu_s"][k] for k in groups) / steps * 1e6, 1) if steps else None
        )

    def analyze(
        self,
        wl: Workload,
        rate: float,
        triggers: list[Trigger],
        run_ids: list[str],
        tw0: float,
        tw1: float,
        drained: bool,
    ) -> dict[str, Any]:
        measure = tw1 - tw0
        runs = {
            r[0]: r
            for r in self.q(
                "SELECT id::text, status, extract(epoch FROM created_at)::float8,"
                " extract(epoch FROM finished_at)::float8 FROM runs WHERE id = ANY(%s::uuid[])",
                (run_ids,),
            )
        }
        steps = self.q(
            "SELECT run_id::text, name, status, extract(epoch FROM updated_at)::float8 FROM steps"
            " WHERE run_id = ANY(%s::uuid[])",
            (run_ids,),
        )
        attempts = self.q(
            "SELECT job_id, run_id::text, step, attempt, status, extract(epoch FROM queued_at)::float8"
            " FROM attempts WHERE run_id = ANY(%s::uuid[])",
            (run_ids,),
        )
        sched = {t.run_id: t.t_sched for t in triggers if t.run_id}
        in_win = [t for t in triggers if tw0 <= t.t_sched < tw1]
        accepted_in_win = [t for t in in_win if t.status == 201]
        finishes = [r[3] for r in runs.values() if r[3] is not None]
        scheds = [t.t_sched for t in triggers if t.run_id]
        e2e, e2e_server = [], []
        for t in accepted_in_win:
            r = runs.get(t.run_id or "")
            if r and r[1] == "COMPLETED" and r[3] is not None:
                e2e.append(r[3] - t.t_sched)
                e2e_server.append(r[3] - r[2])
            else:
                e2e.append(INF)
                e2e_server.append(INF)
        completed_att: dict[tuple[str, str], list[str]] = {}
        for job_id, run_id, step, _attempt, status, _q in attempts:
            if status == "COMPLETED":
                completed_att.setdefault((run_id, step), []).append(job_id)

        def exit_of(run_id: str, step: str) -> float | None:
            jobs = completed_att.get((run_id, step))
            if not jobs:
                return None
            calls = self.records.by_job.get(jobs[0])
            return calls[0].t_exit if calls else None

        parents = wl.parents
        hops: list[float] = []
        result_in: list[float] = []
        job_out: list[float] = []
        first: list[float] = []
        by_lang: dict[str, list[float]] = {}
        missing = 0
        for job_id, run_id, step, _attempt, _status, queued in attempts:
            calls = self.records.by_job.get(job_id)
            if not calls:
                continue
            c = calls[0]
            if not tw0 <= c.t_entry < tw1:
                continue
            job_out.append(c.t_entry - queued)
            if not parents[step]:
                if run_id in sched:
                    first.append(c.t_entry - sched[run_id])
                continue
            exits = [exit_of(run_id, p) for p in parents[step]]
            if any(e is None for e in exits):
                missing += 1
                continue
            last = max(e for e in exits if e is not None)
            hops.append(c.t_entry - last)
            result_in.append(queued - last)
            by_lang.setdefault(c.lang, []).append(c.t_entry - last)
        run_set = set(run_ids)
        dup_handler = self.records.duplicated_jobs(run_set)
        dup_completed = sum(1 for jobs in completed_att.values() if len(jobs) > 1)
        not_completed = sum(1 for r in run_ids if runs.get(r, (None, None))[1] != "COMPLETED")
        steps_in_win = sum(1 for s in steps if s[2] == "COMPLETED" and tw0 <= s[3] < tw1)
        wf_in_win = sum(1 for r in runs.values() if r[1] == "COMPLETED" and r[3] is not None and tw0 <= r[3] < tw1)
        trig_lat = [t.t_resp - t.t_sched for t in accepted_in_win]
        return {
            "workload": wl.name,
            "steps_per_workflow": wl.n_steps,
            "target_wf_per_s": rate,
            "target_steps_per_s": round(rate * wl.n_steps, 1),
            "window_s": round(measure, 2),
            "arrivals_in_window": len(in_win),
            "achieved_wf_per_s": round(len(accepted_in_win) / measure, 2),
            "trigger_errors": sum(1 for t in triggers if t.status != 201),
            "trigger_status_counts": {str(k): v for k, v in Counter(t.status for t in triggers).items()},
            "trigger_failure_samples": self.trigger_failures[-5:],
            "wf_per_s": round(wf_in_win / measure, 2),
            "steps_per_s": round(steps_in_win / measure, 1),
            "steps_completed_in_window": steps_in_win,
            "backlog_start": backlog_at(tw0, scheds, finishes),
            "backlog_end": backlog_at(tw1, scheds, finishes),
            "backlog_growth": backlog_at(tw1, scheds, finishes) - backlog_at(tw0, scheds, finishes),
            "dispatch_ms": dist_ms(first if not any(parents.values()) else hops),
            "dispatch_definition": "trigger scheduled -> handler entered (1-step workflow)"
            if not any(parents.values())
            else "parent handler returned -> child handler entered",
            "dispatch_result_in_ms": dist_ms(result_in),
            "dispatch_job_out_ms": dist_ms(job_out),
            "dispatch_by_lang_ms": {k: dist_ms(v) for k, v in by_lang.items()} if len(by_lang) > 1 else {},
            "first_step_ms": dist_ms(first),
            "trigger_http_ms": dist_ms(trig_lat),
            "e2e_ms": dist_ms(e2e),
            "e2e_server_ms": dist_ms(e2e_server),
            "hops_missing_parent_record": missing,
            "drained": drained,
            "not_completed": not_completed,
            "duplicated_handler_calls": dup_handler,
            "duplicated_completed_attempts": dup_completed,
        }

    # ------------------------------------------------------------ T0

    async def t0_sweep(self) -> None:
        prefix = f"{self.prefix}t0-"
        self.log("T0: starting transport-floor engine and workers")
        workers = self.start_workers(prefix, "t0")
        env = {**self.env, "BATON_TOPIC_PREFIX": prefix}
        eng = Managed("t0-engine", [PY, str(BENCH / "t0_engine.py")], env, self.tmp / "t0-engine.log", pipes=True)
        self.procs.append(eng)
        assert eng.proc.stdout and eng.proc.stdin
        line = await asyncio.wait_for(asyncio.to_thread(eng.proc.stdout.readline), 60)
        if "ready" not in line:
            raise RuntimeError(f"t0 engine did not start:\n{eng.tail()}")
        self.groups.orchestrator, self.groups.workers = [eng.pid], [w.pid for w in workers]
        # Warm-up: the worker joins its group; wait for a few runs to go through.
        await self.t0_point(eng, 5, 0, 3, 0, probe=True)
        for rate in self.rates("T0"):
            p = await self.t0_point(eng, rate, self.args.warmup, self.args.measure, self.args.drain)
            self.points.append(p)
            self.log(self.point_line(p))
            if not p["sustainable"]:
                break
        eng.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        eng.proc.stdin.flush()
        eng.stop(10)
        for w in workers:
            w.stop(15)

    async def t0_point(
        self, eng: Managed, rate: float, warmup: float, measure: float, drain: float, probe: bool = False
    ) -> dict[str, Any]:
        assert eng.proc.stdout and eng.proc.stdin
        t_start = time.time() + 0.3
        tw0, tw1 = t_start + warmup, t_start + warmup + measure
        out = self.tmp / f"t0-{rate}.csv"
        cmd = {"cmd": "point", "rate": rate, "t_start": t_start, "duration": warmup + measure, "steps": 10,
               "drain": drain if not probe else 60, "out": str(out)}  # fmt: skip
        eng.proc.stdin.write(json.dumps(cmd) + "\n")
        eng.proc.stdin.flush()
        sampler = asyncio.create_task(self.sample_window(tw0, tw1))
        line = await asyncio.wait_for(asyncio.to_thread(eng.proc.stdout.readline), warmup + measure + drain + 90)
        snap_a, snap_b = await sampler
        if not line:
            raise RuntimeError(f"t0 engine died:\n{eng.tail()}")
        await asyncio.sleep(0.35)
        self.records.refresh()
        rows = [ln.split(",") for ln in out.read_text().splitlines()]
        if probe:
            if any(not r[2] for r in rows):
                raise RuntimeError("T0 warm-up runs did not complete")
            return {}
        scheds = [float(r[1]) for r in rows]
        finishes = [float(r[2]) for r in rows if r[2]]
        run_ids = {r[0] for r in rows}
        e2e = [(float(r[2]) - float(r[1])) if r[2] else INF for r in rows if tw0 <= float(r[1]) < tw1]
        recv: dict[tuple[str, int], float] = {}
        recv_path = Path(str(out) + ".recv")
        if recv_path.exists():
            for ln in recv_path.read_text().splitlines():
                rid, k, t = ln.split(",")
                recv.setdefault((rid, int(k)), float(t))
        hops, first, result_in, job_out = [], [], [], []
        steps_in_win = 0
        for r in rows:
            calls = {c.step: c for c in reversed(self.records.by_run.get(r[0], []))}
            for k in range(10):
                c = calls.get(f"s{k}")
                if c is None:
                    continue
                if tw0 <= c.t_exit < tw1:
                    steps_in_win += 1
                if not tw0 <= c.t_entry < tw1:
                    continue
                if k == 0:
                    first.append(c.t_entry - float(r[1]))
                elif (prev := calls.get(f"s{k - 1}")) is not None:
                    hops.append(c.t_entry - prev.t_exit)
                    if (t_recv := recv.get((r[0], k - 1))) is not None:
                        result_in.append(t_recv - prev.t_exit)
                        job_out.append(c.t_entry - t_recv)
        in_win = sum(1 for s in scheds if tw0 <= s < tw1)
        p: dict[str, Any] = {
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
            "backlog_start": backlog_at(tw0, scheds, finishes),
            "backlog_end": backlog_at(tw1, scheds, finishes),
            "backlog_growth": backlog_at(tw1, scheds, finishes) - backlog_at(tw0, scheds, finishes),
            "dispatch_ms": dist_ms(hops),
            "dispatch_definition": "parent handler returned -> child handler entered (no DB)",
            "dispatch_result_in_ms": dist_ms(result_in),
            "dispatch_job_out_ms": dist_ms(job_out),
            "dispatch_split_definition": "result in = parent returned -> T0 engine polled the result; "
            "job out = polled -> child handler entered",
            "first_step_ms": dist_ms(first),
            "e2e_ms": dist_ms(e2e),
            "drained": len(finishes) == len(rows),
            "not_completed": len(rows) - len(finishes),
            "duplicated_handler_calls": self.records.duplicated_jobs(run_ids),
            "duplicated_completed_attempts": 0,
        }
        p["cpu_s"] = {k: round(v, 3) for k, v in cpu_delta(snap_a, snap_b).items()}
        self.add_cpu(p, measure)
        ok, why = sustainable(p)
        p["sustainable"], p["why_not"] = ok, why
        return p

    # ------------------------------------------------------------ profile

    async def py_spy(self, t0: float, seconds: float) -> None:
        """py-spy on the orchestrator: collapsed stacks (for the top-N table) then a flame graph SVG."""
        spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
        if not spy or self.orch is None:
            self.profile = {"error": "py-spy not found (pip install py-spy into .venv)"}
            return
        await asyncio.sleep(max(0.0, t0 - time.time()))
        half = max(2, int(seconds / 2))
        raw = RESULTS / f"profile-{self.ts}.txt"
        svg = RESULTS / f"profile-{self.ts}.svg"
        info: dict[str, Any] = {"pid": self.orch.pid, "seconds_each": half, "rate_hz": 100}
        for fmt, path in (("raw", raw), ("flamegraph", svg)):
            # --nonblocking reads the process without pausing it: blocking sampling at these rates slowed
            # the orchestrator several-fold, which distorts the very profile it takes. Blocking is the fallback.
            for extra in (["--nonblocking"], []):
                argv = [spy, "record", "--pid", str(self.orch.pid), "--duration", str(half), "--rate", "100",
                        "--format", fmt, "-o", str(path), *extra]  # fmt: skip
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
                )
                out, _ = await proc.communicate()
                if proc.returncode == 0 and path.exists():
                    info[fmt] = {"file": str(path.relative_to(ROOT)), "argv": " ".join(argv[1:])}
                    break
                info.setdefault("errors", []).append(f"{' '.join(argv[1:])}: {out.decode(errors='replace')[-300:]}")
        if raw.exists():
            info["top"] = summarize_profile(raw)
        self.profile = info

    # ------------------------------------------------------------ driver

    def rates(self, name: str) -> list[float]:
        explicit = getattr(self.args, f"{name.lower()}_rates")
        if explicit:
            return [float(x) for x in explicit.split(",")]
        if self.args.quick:
            return {"W1": geometric(10, 1.5, 10), "W3": [5]}.get(name, [])
        return {
            "T0": geometric(20, 1.5, 10),
            "W1": geometric(10, 1.4, 12),
            "W2": geometric(4, 1.4, 12),
            "W3": [5],
        }[name]

    def point_line(self, p: dict[str, Any]) -> str:
        d = p["dispatch_ms"]
        return (
            f"{p['workload']} {p['target_wf_per_s']:g} wf/s: {p['steps_per_s']:g} steps/s, dispatch p50 "
            f"{fmt_ms(d['p50'])} p99 {fmt_ms(d['p99'])} ms, e2e p99 {fmt_ms(p['e2e_ms']['p99'])} ms, "
            f"orch {p['cpu_us_per_step'].get('orchestrator')} µs/step -> "
            f"{'sustainable' if p['sustainable'] else 'NOT sustainable: ' + p['why_not']}"
        )

    async def run(self) -> None:
        todo = ["W3", "W1"] if self.args.quick else [w.strip().upper() for w in self.args.workloads.split(",")]
        if "T0" in todo:
            await self.t0_sweep()
        if not any(w in todo for w in ("W1", "W2", "W3")):
            return
        self.log(f"starting orchestrator (schema {self.schema}, topic prefix {self.prefix})")
        self.start_orchestrator()
        limits = httpx.Limits(max_connections=self.args.connections, max_keepalive_connections=self.args.connections)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", limits=limits, timeout=30) as client:
            await self.wait_health(client)
            assert self.orch is not None
            self.connect_db()
            self.groups.orchestrator = [self.orch.pid]
            for wl in self.wl.values():
                r = await client.post("/workflow", json={"id": wl.wf_id, "steps": wl.steps})
                if r.status_code != 201:
                    raise RuntimeError(f"define {wl.wf_id}: {r.status_code} {r.text}")
            self.workers = self.start_workers(self.prefix, "baton")
            self.groups.workers = [w.pid for w in self.workers]
            self.log(f"workers: {self.args.workers}; warming up (consumer groups join)")
            probe = await self.loadgen(client, self.wl["W1"].wf_id, 5, time.time(), 0.6)
            ok, _ = await self.drain([t.run_id for t in probe if t.run_id], 90)
            if not ok or any(t.status != 201 for t in probe):
                raise RuntimeError(f"warm-up runs did not complete\n{self.orch.tail()}")
            for t in probe:
                self.accepted[t.run_id or ""] = "probe"
            for name in ("W3", "W1", "W2"):
                if name not in todo:
                    continue
                wl = self.wl[name]
                warm, meas = (self.args.warmup, self.args.measure)
                if name == "W3":
                    meas = self.args.w3_measure
                for rate in self.rates(name):
                    p = await self.point(client, wl, rate, warm, meas)
                    self.points.append(p)
                    self.log(self.point_line(p))
                    if not p["sustainable"]:
                        break
                    if time.time() - self.started > self.args.budget:
                        self.notes.append(f"{name} sweep stopped by the time budget ({self.args.budget:.0f} s)")
                        break
                if not p["drained"]:  # let a saturated point's backlog go before the next workload
                    await self.drain(list(self.accepted), 60)
            if self.args.profile:
                best = self.best("W1")
                rate = self.args.profile_rate or (best["target_wf_per_s"] if best else 20)
                self.log(f"profiling the orchestrator with py-spy under W1 at {rate:g} wf/s")
                p = await self.point(client, self.wl["W1"], rate, 2, self.args.profile_seconds, profile=True)
                p["workload"] = "W1-profiled"
                self.points.append(p)
                self.log(self.point_line(p))
            self.log("final drain and correctness check")
            await self.drain(list(self.accepted), self.args.final_drain)
            self.correctness()

    def correctness(self) -> None:
        ids = list(self.accepted)
        rows = self.q(
            "SELECT r.id::text, r.status, extract(epoch FROM now() - max(s.updated_at))::float8 FROM runs r"
            " JOIN steps s ON s.run_id = r.id WHERE r.id = ANY(%s::uuid[]) GROUP BY r.id, r.status",
            (ids,),
        )
        status = {r[0]: r for r in rows}
        lost = [i for i in ids if status.get(i, (None, None))[1] != "COMPLETED"]
        stuck = [i for i in lost if status.get(i) and status[i][1] in ("PENDING", "RUNNING") and status[i][2] > 5]
        dup_attempts = self.q(
            "SELECT count(*) FROM (SELECT run_id, step FROM attempts WHERE status = 'COMPLETED'"
            " GROUP BY run_id, step HAVING count(*) > 1) x"
        )[0][0]
        self.records.refresh()
        self.correct = {
            "runs_accepted": len(ids),
            "lost": len(lost),
            "stuck": len(stuck),
            "duplicated": self.records.duplicated_jobs(set(ids)) + int(dup_attempts),
            "duplicated_handler_calls": self.records.duplicated_jobs(set(ids)),
            "duplicated_completed_attempts": int(dup_attempts),
            "runs_by_status": dict(self.q("SELECT status, count(*) FROM runs GROUP BY status")),
            "outbox_rows_left": self.q("SELECT count(*) FROM outbox")[0][0],
            "worker_record_bad_lines": self.records.bad_lines,
        }

    def best(self, name: str) -> dict[str, Any] | None:
        ok = [p for p in self.points if p["workload"] == name and p["sustainable"]]
        return max(ok, key=lambda p: p["steps_per_s"]) if ok else None

    # ------------------------------------------------------------ knobs, cleanup, output

    def knobs(self) -> dict[str, Any]:
        k: dict[str, Any] = {
            "mode": "quick" if self.args.quick else "full",
            "workers": self.args.workers,
            "worker_concurrency": self.args.concurrency,
            "warmup_s": self.args.warmup,
            "measure_s": self.args.measure,
            "w3_measure_s": self.args.w3_measure,
            "drain_timeout_s": self.args.drain,
            "arrivals": "open loop, evenly spaced, HTTP POST /workflow/{id}/trigger (no Idempotency-Key)",
            "loadgen": f"bench/loadgen.py raw HTTP/1.1, {self.args.connections} keep-alive connections, in-flight cap "
            f"{self.args.inflight_cap}",
            "payload": "~200 B JSON run input; every step returns ~200 B JSON",
            "sustainable_if": "arrivals >= 95% of target, no trigger errors, backlog growth <= max(3, 5% of "
            "window arrivals), e2e p99 < 1 s, drained",
        }
        k["orchestrator_env"] = getattr(self, "orch_env", {})
        try:
            from baton_orchestrator.settings import Settings

            s = Settings(_env_file=None, **{})  # type: ignore[call-arg]
            k["orchestrator_settings_defaults"] = {
                f: getattr(s, f)
                for f in ("topic_partitions", "results_batch_max", "timer_interval_seconds", "relay_interval_seconds")
            }
        except Exception as exc:  # pragma: no cover - informative only
            k["orchestrator_settings_defaults"] = f"unavailable: {exc}"
        k["orchestrator_producer"] = grep_kwargs(
            ROOT / "orchestrator/baton_orchestrator/bus/kafka.py", "AIOKafkaProducer"
        )
        k["orchestrator_consumer"] = grep_kwargs(
            ROOT / "orchestrator/baton_orchestrator/bus/kafka.py", "AIOKafkaConsumer"
        )
        k["sdk_python_producer"] = grep_kwargs(ROOT / "sdk-python/baton/_kafka.py", "AIOKafkaProducer")
        try:
            with psycopg.connect(self.db_url, autocommit=True) as c:
                k["postgres"] = {
                    n: c.execute(f"SHOW {n}").fetchone()[0]  # type: ignore[index]
                    for n in (
                        "server_version",
                        "synchronous_commit",
                        "fsync",
                        "wal_sync_method",
                        "full_page_writes",
                        "commit_delay",
                        "shared_buffers",
                        "max_connections",
                    )
                }
        except Exception as exc:
            k["postgres"] = f"unavailable: {exc}"
        props = {}
        try:
            for line in (stack_dir() / "server.properties").read_text().splitlines():
                if line.strip() and not line.startswith("#") and "=" in line:
                    key, v = line.split("=", 1)
                    if any(x in key for x in ("flush", "partitions", "replication", "isr", "message.max", "rebalance")):
                        props[key.strip()] = v.strip()
        except OSError:
            pass
        props.setdefault("log.flush.interval.messages", "(default: never forced; durability = acks=all on 1 replica)")
        k["kafka_broker"] = props
        return k

    async def cleanup(self) -> None:
        self.log("cleaning up")
        if self.pool is not None:
            await self.pool.close()
        for m in reversed(self.procs):
            try:
                m.stop(15)
            except Exception as exc:
                self.notes.append(f"stopping {m.name}: {exc}")
        if self.db is not None:
            self.db.close()
        if not self.args.keep_schema:
            try:
                with psycopg.connect(self.db_url, autocommit=True) as c:
                    c.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            except Exception as exc:
                self.notes.append(f"drop schema {self.schema}: {exc}")
        try:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=self.env["BATON_KAFKA_BOOTSTRAP_SERVERS"])
            await asyncio.wait_for(admin.start(), 15)
            try:
                mine = [t for t in await admin.list_topics() if t.startswith(self.prefix)]
                if mine:
                    await asyncio.wait_for(admin.delete_topics(mine), 30)
            finally:
                await admin.close()
        except Exception as exc:
            self.notes.append(f"delete topics {self.prefix}*: {exc}")
        try:
            import redis

            r = redis.Redis.from_url(self.env["BATON_REDIS_URL"], socket_timeout=3)
            keys = list(r.scan_iter(match=f"bench-{self.ts}:*", count=1000))
            if keys:
                r.delete(*keys)
            r.close()
        except Exception as exc:
            self.notes.append(f"redis cleanup: {exc}")

    def output(self) -> Path:
        w1 = self.best("W1")
        w1_ok = w1 is not None
        if w1 is None:  # nothing sustainable: latency and CPU from the lowest-rate point, throughput 0
            w1 = next((p for p in self.points if p["workload"] == "W1"), None)
        w3 = next((p for p in self.points if p["workload"] == "W3"), None)
        t0 = self.best("T0")
        w2 = self.best("W2")
        c = getattr(self, "correct", {})
        result: dict[str, Any] = {
            "w1_steps_per_s": w1["steps_per_s"] if w1 and w1_ok else 0,
            "w1_dispatch_p50_ms": w1["dispatch_ms"]["p50"] if w1 else None,
            "w1_dispatch_p99_ms": w1["dispatch_ms"]["p99"] if w1 else None,
            "w3_dispatch_p50_ms": w3["dispatch_ms"]["p50"] if w3 else None,
            "orchestrator_cpu_us_per_step": w1["cpu_us_per_step"]["orchestrator"] if w1 else None,
            "lost": c.get("lost"),
            "duplicated": c.get("duplicated"),
            "stuck": c.get("stuck"),
            "w1_wf_per_s": w1["wf_per_s"] if w1 and w1_ok else 0,
            "w1_sustainable": w1_ok,
            "w1_point_wf_per_s": w1["target_wf_per_s"] if w1 else None,
            "w1_e2e_p99_ms": w1["e2e_ms"]["p99"] if w1 else None,
            "w2_steps_per_s": w2["steps_per_s"] if w2 else None,
            "t0_steps_per_s": t0["steps_per_s"] if t0 else None,
            "t0_dispatch_p50_ms": t0["dispatch_ms"]["p50"] if t0 else None,
            "timestamp": self.ts,
            "git_commit": subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
            "git_dirty_outside_bench": bool(
                subprocess.run(
                    ["git", "-C", str(ROOT), "status", "--porcelain", "--", ".", ":!bench"],
                    capture_output=True,
                    text=True,
                ).stdout.strip()
            ),
            "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
            "knobs": self.knobs(),
            "correctness": c,
            "peak_rss_mb": peak_rss_mb(self.groups, self.sampled_rss),
            "points": self.points,
            "profile": self.profile,
            "notes": self.notes,
            "duration_s": round(time.time() - self.started, 1),
        }
        path = RESULTS / f"{self.ts}.json"
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(markdown(result))
        png = RESULTS / f"{self.ts}.png"
        msg = plot(self.points, png)
        print(f"\nresults: {path.relative_to(ROOT)}" + (f", {png.relative_to(ROOT)}" if png.exists() else ""))
        if msg:
            print(msg)
        return path


def java_worker_argv(tmp: Path) -> list[str]:
    """`java -cp <sdk-java classes + runtime deps> bench/BenchWorker.java` (source-file mode, Java 11+)."""
    classes = ROOT / "sdk-java" / "target" / "classes"
    if not (classes / "dev" / "baton" / "worker" / "Worker.class").exists():
        sys.exit("--workers java needs sdk-java compiled: mvn -q -f sdk-java/pom.xml compile")
    cp_file = tmp / "java-classpath.txt"
    if not cp_file.exists():
        res = subprocess.run(
            ["mvn", "-q", "-o", "-f", str(ROOT / "sdk-java" / "pom.xml"), "dependency:build-classpath",
             "-Dmdep.includeScope=runtime", f"-Dmdep.outputFile={cp_file}"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        if res.returncode != 0 or not cp_file.exists():
            sys.exit(f"--workers java: could not resolve sdk-java's classpath offline:\n{res.stdout[-2000:]}")
    cp = f"{classes}:{cp_file.read_text().strip()}"
    return ["java", "-Xmx256m", "-cp", cp, str(BENCH / "BenchWorker.java")]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="W3 + a short W1 ramp (about a minute)")
    ap.add_argument("--workloads", default="T0,W3,W1,W2", help="full mode: which workloads (T0,W1,W2,W3)")
    ap.add_argument("--workers", default="python", help="worker processes by language, e.g. python,node,python")
    ap.add_argument("--concurrency", type=int, default=32, help="BATON_WORKER_CONCURRENCY of each worker")
    ap.add_argument("--warmup", type=float, help="seconds of load before each measured window")
    ap.add_argument("--measure", type=float, help="seconds of each measured window")
    ap.add_argument("--w3-measure", type=float, help="seconds of the W3 window")
    ap.add_argument("--drain", type=float, default=15, help="seconds a point may take to drain its backlog")
    ap.add_argument("--final-drain", type=float, default=30)
    for w in ("t0", "w1", "w2", "w3"):
        ap.add_argument(f"--{w}-rates", help=f"comma-separated {w.upper()} workflow arrival rates (wf/s)")
    ap.add_argument("--connections", type=int, default=32, help="load generator HTTP connections")
    ap.add_argument("--inflight-cap", type=int, default=2000, help="open-loop cap on outstanding triggers")
    ap.add_argument("--profile", action="store_true", help="py-spy the orchestrator under W1 load")
    ap.add_argument("--profile-rate", type=float, help="W1 wf/s while profiling (default: best sustainable)")
    ap.add_argument("--profile-seconds", type=float, default=20)
    ap.add_argument("--keep-schema", action="store_true", help="do not drop bench_<ts> (to inspect it)")
    ap.add_argument("--keep-files", action="store_true", help="keep bench/results/tmp-<ts>/ (logs, records)")
    ap.add_argument("--budget", type=float, default=540, help="stop starting new sweep points after this many s")
    args = ap.parse_args(argv)
    quick = args.quick
    args.warmup = args.warmup if args.warmup is not None else (2 if quick else 3)
    args.measure = args.measure if args.measure is not None else (5 if quick else 8)
    args.w3_measure = args.w3_measure if args.w3_measure is not None else (6 if quick else 10)
    if quick:
        args.budget = min(args.budget, 90)
        args.drain = min(args.drain, 8)
    return args


async def amain(args: argparse.Namespace) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    failed = False
    try:
        await bench.run()
    except (Exception, KeyboardInterrupt, asyncio.CancelledError) as exc:
        failed = True
        bench.notes.append(f"aborted: {type(exc).__name__}: {exc}")
        print(f"bench aborted: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        try:
            knobs_ok = bench.points or failed
            if knobs_ok:
                bench.output()
        finally:
            await bench.cleanup()
            if not args.keep_files and not failed:
                shutil.rmtree(bench.tmp, ignore_errors=True)
            elif failed:
                print(f"logs kept in {bench.tmp.relative_to(ROOT)}", file=sys.stderr)
    c = getattr(bench, "correct", {})
    return 1 if failed or c.get("lost") or c.get("duplicated") or c.get("stuck") else 0


def main() -> None:
    sys.exit(asyncio.run(amain(parse())))


if __name__ == "__main__":
    main()
