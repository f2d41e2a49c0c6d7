"""The fault suite's harness: real processes, a side-effect ledger, invariant checks, a private stack.

A scenario (`Scenario`) owns one orchestrator namespace (PostgreSQL schema, topic prefix, Redis prefix,
engine and worker groups), the processes it starts (orchestrator roles and ledger workers in Python,
Node and Java, each a real subprocess in its own session, stopped by pid) and a ledger file that every
worker handler appends `start|done,<lang>,job_id,attempt,run_id,step` to. `Scenario.check()` proves the
invariants against the orchestrator's tables plus the ledger and returns the counts for the report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
JAVA_DIR = HERE / "java"

# Counts per scenario, printed by conftest.py at the end of the session (and written to
# $BATON_FAULTS_REPORT when set).
REPORT: list[dict[str, Any]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, every: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(every)


# ------------------------------------------------------------------ Java ledger worker build
_java_cp: str | None = None


def java_classpath() -> str:
    """Compile the repository's current sdk-java sources together with the ledger worker (javac, into
    tests/faults/java/target), so the suite tests this checkout's SDK, not whichever baton-worker jar happens to
    be installed in ~/.m2. Maven only resolves the SDK's third-party dependencies (offline when cached)."""
    global _java_cp
    if _java_cp is None:
        target = JAVA_DIR / "target"
        cp_file = target / "cp.txt"
        if not cp_file.exists():
            cmd = [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(JAVA_DIR / "pom.xml"),
                "dependency:build-classpath",
                f"-Dmdep.outputFile={cp_file}",
            ]
            proc = subprocess.run(["mvn", "-o", *cmd[1:]], capture_output=True, text=True, timeout=240)
            if proc.returncode != 0:  # not everything cached yet: resolve online once
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
            assert proc.returncode == 0, f"resolving the Java worker's classpath failed:\n{proc.stdout}\n{proc.stderr}"
        deps = [p for p in cp_file.read_text().strip().split(":") if p and "baton-worker" not in p]
        classes = target / "ledger-classes"
        shutil.rmtree(classes, ignore_errors=True)
        classes.mkdir(parents=True)
        sources = [str(p) for p in (ROOT / "sdk-java" / "src" / "main" / "java").rglob("*.java")]
        sources += [str(p) for p in (JAVA_DIR / "src" / "main" / "java").rglob("*.java")]
        proc = subprocess.run(
            ["javac", "-nowarn", "--release", "17", "-d", str(classes), "-cp", ":".join(deps), *sources],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, f"compiling sdk-java + the ledger worker failed:\n{proc.stderr[-4000:]}"
        _java_cp = ":".join([str(classes), *deps])
    return _java_cp


# ------------------------------------------------------------------ processes
class Procs:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        assert name not in self.procs or self.procs[name].poll() is not None, f"{name} is already running"
        log = open(self.logdir / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def signal(self, name: str, sig: int) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)  # its own session: the pid is the group we started

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)
        self.procs[name].wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.log(n, 2500)}" for n in self.procs)


# ------------------------------------------------------------------ a scenario
@dataclass(frozen=True)
class Conn:
    kafka: str
    database_url: str
    redis_url: str


@dataclass
class Ledger:
    path: Path

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            parts = line.split(",")
            if len(parts) == 6:
                out.append(dict(zip(("phase", "lang", "job_id", "attempt", "run_id", "step"), parts, strict=True)))
        return out

    def count(self, phase: str) -> int:
        return sum(1 for r in self.rows() if r["phase"] == phase)


@dataclass
class Scenario:
    name: str
    conn: Conn
    workdir: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.schema = f"f_{self.token}"
        self.procs = Procs(self.workdir)
        self.ledger = Ledger(self.workdir / "ledger.csv")
        self.ledger.path.touch()
        self.urls: dict[str, str] = {}
        self.started = time.monotonic()
        self.env = {
            **os.environ,
            "BATON_KAFKA_BOOTSTRAP_SERVERS": self.conn.kafka,
            "BATON_DATABASE_URL": self.conn.database_url,
            "BATON_REDIS_URL": self.conn.redis_url,
            "BATON_DATABASE_SCHEMA": self.schema,
            "BATON_TOPIC_PREFIX": f"f-{self.token}-",
            "BATON_REDIS_PREFIX": f"f:{self.token}:",
            "BATON_ENGINE_GROUP_ID": f"f-{self.token}-engine",
            "BATON_WORKER_GROUP": f"f-{self.token}-workers",
            "BATON_TOPIC_PARTITIONS": "3",
            "BATON_TIMER_INTERVAL_SECONDS": "0.1",
            "BATON_RELAY_INTERVAL_SECONDS": "0.3",
            "BATON_RELAY_GRACE_SECONDS": "1",
            "BATON_STARTUP_TIMEOUT_SECONDS": "45",
            "BATON_WORKER_PRESENCE_INTERVAL": "1",
            "LEDGER_FILE": str(self.ledger.path),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    # -------------------------------------------------------------- processes
    def start_orchestrator(self, name: str = "orchestrator", role: str = "all", **env: str) -> str:
        port = free_port()
        self.procs.start(
            name, [str(VENV_BIN / "baton"), "server", "--role", role, "--port", str(port)], {**self.env, **env}
        )
        url = f"http://127.0.0.1:{port}"
        self.urls[name] = url
        self.wait_health(name)
        return url

    def wait_health(self, name: str, timeout: float = 60) -> None:
        url, proc = self.urls[name], self.procs.procs[name]

        def up() -> bool:
            assert proc.poll() is None, f"{name} exited:\n{self.procs.log(name)}"
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout, 0.3, f"{name} healthy")

    def start_worker(self, lang: str, name: str, actions: list[str], sleep_ms: int = 0, **env: str) -> None:
        wenv = {**self.env, "LEDGER_ACTIONS": ",".join(actions), "LEDGER_SLEEP_MS": str(sleep_ms), **env}
        if lang == "python":
            cmd = [sys.executable, str(HERE / "workers" / "ledger_worker.py")]
        elif lang == "node":
            cmd = ["node", str(HERE / "workers" / "ledger_worker.mjs")]
        elif lang == "java":
            cmd = [
                "java",
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                "-cp",
                java_classpath(),
                "dev.baton.faults.LedgerWorker",
            ]
        else:
            raise ValueError(lang)
        self.procs.start(name, cmd, wenv)

    # -------------------------------------------------------------- HTTP
    @property
    def api(self) -> str:
        return self.urls.get("api") or self.urls["orchestrator"]

    def define(self, body: dict[str, Any]) -> None:
        resp = httpx.post(f"{self.api}/workflow", json=body, timeout=15)
        assert resp.status_code == 201, resp.text

    def trigger(self, workflow_id: str, payload: Any, key: str | None = None, timeout: float = 15) -> str:
        headers = {"Idempotency-Key": key} if key else {}
        resp = httpx.post(
            f"{self.api}/workflow/{workflow_id}/trigger", json={"input": payload}, headers=headers, timeout=timeout
        )
        assert resp.status_code in (200, 201), resp.text
        return str(resp.json()["run_id"])

    def trigger_many(self, workflow_id: str, inputs: Any, threads: int = 8) -> list[str]:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda i: self.trigger(workflow_id, i), inputs))

    # -------------------------------------------------------------- database
    def sql(self, query: str, params: Any = None) -> list[Any]:
        with psycopg.connect(self.conn.database_url, autocommit=True, connect_timeout=5) as c:
            c.execute(f'SET search_path TO "{self.schema}"')
            return c.execute(query, params).fetchall()

    def statuses(self, run_ids: list[str]) -> Counter[str]:
        rows = self.sql("SELECT status, count(*) FROM runs WHERE id = ANY(%s::uuid[]) GROUP BY status", (run_ids,))
        return Counter({s: n for s, n in rows})

    def wait_terminal(self, run_ids: list[str], timeout: float, statuses: tuple[str, ...] = TERMINAL) -> float:
        """Wait until every run is in one of `statuses`; returns the seconds it took."""
        t0 = time.monotonic()
        seen: Counter[str] = Counter()

        def done() -> bool:
            nonlocal seen
            try:
                seen = self.statuses(run_ids)
            except psycopg.OperationalError:
                return False
            return sum(n for s, n in seen.items() if s in statuses) == len(run_ids)

        try:
            wait_until(done, timeout, 0.5, "every run terminal")
        except AssertionError:
            raise AssertionError(f"runs not terminal after {timeout}s: {dict(seen)}\n{self.procs.logs()}") from None
        return time.monotonic() - t0

    def check(self, run_ids: list[str], steps: list[str], expect: str = "COMPLETED") -> dict[str, Any]:
        """The invariants: every run in `expect`; every step of a completed run completed by exactly one
        attempt (no result applied twice) whose job really ran (its `done` is in the ledger); counts match."""
        statuses = self.statuses(run_ids)
        assert statuses == Counter({expect: len(run_ids)}), dict(statuses)
        completed = self.sql(
            "SELECT a.run_id::text, a.step, count(*), array_agg(a.job_id) FROM attempts a "
            "WHERE a.run_id = ANY(%s::uuid[]) AND a.status = 'COMPLETED' GROUP BY a.run_id, a.step",
            (run_ids,),
        )
        by_step = {(r, s): (n, jobs) for r, s, n, jobs in completed}
        if expect == "COMPLETED":
            assert len(by_step) == len(run_ids) * len(steps), (len(by_step), len(run_ids) * len(steps))
            assert all(n == 1 for n, _ in by_step.values()), [k for k, (n, _) in by_step.items() if n != 1]
            step_rows = self.sql(
                "SELECT status, count(*) FROM steps WHERE run_id = ANY(%s::uuid[]) GROUP BY status", (run_ids,)
            )
            assert dict(step_rows) == {"COMPLETED": len(run_ids) * len(steps)}, dict(step_rows)
        rows = self.ledger.rows()
        done_jobs = {r["job_id"] for r in rows if r["phase"] == "done"}
        done_steps = {(r["run_id"], r["step"]) for r in rows if r["phase"] == "done"}
        missing = [k for k in by_step if k not in done_steps]
        assert not missing, f"completed steps that no handler finished: {missing[:5]}"
        unrun = [jobs[0] for _, jobs in by_step.values() if jobs[0] not in done_jobs]
        assert not unrun, f"a COMPLETED attempt whose job never finished in a handler: {unrun[:5]}"
        (attempts,) = self.sql("SELECT count(*) FROM attempts WHERE run_id = ANY(%s::uuid[])", (run_ids,))[0]
        (ignored,) = self.sql("SELECT count(*) FROM run_events WHERE type = 'result_ignored'")[0]
        executions = Counter(r["job_id"] for r in rows if r["phase"] == "done")
        return {
            "runs": len(run_ids),
            "attempts": attempts,
            "handler_executions": sum(executions.values()),
            "redelivered_executions": sum(n - 1 for n in executions.values()),
            "duplicates_suppressed": ignored,
        }

    def report(self, counts: dict[str, Any], **extra: Any) -> dict[str, Any]:
        entry = {"scenario": self.name, **counts, **extra, "duration_s": round(time.monotonic() - self.started, 1)}
        REPORT.append(entry)
        print(json.dumps(entry))
        return entry

    def close(self) -> None:
        self.procs.stop_all()
        try:
            with psycopg.connect(self.conn.database_url, autocommit=True, connect_timeout=5) as c:
                c.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        except psycopg.Error:
            pass


# ------------------------------------------------------------------ the private stack
class PrivateStack:
    """Kafka, PostgreSQL and Redis of our own (infra/stack.sh with BATON_STACK_DIR and free ports), so the
    scenarios that stop and restart infrastructure never touch the shared stack on the default ports."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="baton-faults-stack-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")  # initdb as the postgres user must reach pg/ below
            os.chmod(self.dir, 0o755)
        self.ports = {k: free_port() for k in ("KAFKA", "KAFKA_CONTROLLER", "PG", "REDIS")}
        self.env = {
            **os.environ,
            "BATON_STACK_DIR": str(self.dir),
            "BATON_KAFKA_PORT": str(self.ports["KAFKA"]),
            "BATON_KAFKA_CONTROLLER_PORT": str(self.ports["KAFKA_CONTROLLER"]),
            "BATON_PG_PORT": str(self.ports["PG"]),
            "BATON_REDIS_PORT": str(self.ports["REDIS"]),
        }
        self.conn = Conn(
            f"127.0.0.1:{self.ports['KAFKA']}",
            f"postgresql://postgres@127.0.0.1:{self.ports['PG']}/baton",
            f"redis://127.0.0.1:{self.ports['REDIS']}/0",
        )

    def _stack(self, cmd: str, timeout: float = 240) -> None:
        proc = subprocess.run(
            [str(ROOT / "infra" / "stack.sh"), cmd], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, f"stack.sh {cmd} failed:\n{proc.stdout}\n{proc.stderr}"

    def up(self) -> None:
        self._stack("up")

    def down(self) -> None:
        try:
            self._stack("down", timeout=90)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_pidfile(self, name: str) -> None:
        pidf = self.dir / f"{name}.pid"
        pid = int(pidf.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not _alive(pid), 20, 0.1, f"{name} stopped")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not _alive(pid), 5, 0.1, f"{name} killed")
        pidf.unlink(missing_ok=True)

    def stop_kafka(self) -> None:
        self._stop_pidfile("kafka")

    def stop_redis(self) -> None:
        self._stop_pidfile("redis")

    def stop_postgres(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        pg_ctl = str(bins[-1]) if bins else "pg_ctl"
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(self.dir / "pg"), "-m", "fast", "-w", "-t", "30", "stop"],
            check=True,
            capture_output=True,
            timeout=40,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours would still answer; the stack's daemons are not our children.
    return True
