"""The bench's own namespace on the shared stack and the processes it starts in it.

Everything is named after the start time <ts> (schema bench_<ts>, topics bench-<ts>-*, Redis keys
bench-<ts>:*, groups bench-<ts>-*), so cleanup removes only what this run created and stops only the
processes it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

from analyze import WorkerRecords
from procs import Groups, Managed, read_pid
from workloads import ACTION

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV_BIN = ROOT / ".venv" / "bin"
PY = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable


def stack_env() -> dict[str, str]:
    """The service URLs (`infra/stack.sh env`, overridden by the environment); only local services."""
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


def shared_groups(db_url: str) -> Groups:
    """The shared services' pids (from the stack's pid files) for CPU and memory accounting."""
    sd = stack_dir()
    m = re.search(r":(\d+)/", db_url)
    return Groups(
        kafka=[p for p in [read_pid(sd / "kafka.pid")] if p],
        redis=[p for p in [read_pid(sd / "redis.pid")] if p],
        postmaster=read_pid(sd / "pg" / "postmaster.pid"),
        pg_port=int(m.group(1)) if m else 5432,
    )


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


def worker_argv(lang: str, tmp: Path) -> list[str]:
    if lang == "python":
        return [PY, str(BENCH / "worker.py")]
    if lang == "node":
        if not (ROOT / "sdk-node" / "dist" / "src" / "index.js").exists():
            sys.exit("--workers node needs sdk-node built: (cd sdk-node && npm run build)")
        return ["node", str(BENCH / "worker.mjs")]
    if lang == "java":
        return java_worker_argv(tmp)
    sys.exit(f"unknown worker language {lang!r} (python, node, java)")


class Stack:
    """This run's namespace (schema, topic prefix, Redis prefix, tmp dir) and the processes started in it."""

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
        self.engine_port = 0  # --orchestrator split: the engine process's HTTP port
        self.orch_env: dict[str, str] = {}
        self.port = 0

    # ------------------------------------------------------------ processes

    def start_workers(self, prefix: str, tag: str, records: WorkerRecords) -> list[Managed]:
        """One worker process per `--workers` entry, one consumer group; their side channels go to `records`."""
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
            argv = worker_argv(lang, self.tmp)
            m = Managed(f"worker-{i}-{lang}", argv, env_i, self.tmp / f"{tag}-worker-{i}-{lang}.log", cwd=str(ROOT))
            self.procs.append(m)
            out.append(m)
            records.files.append(rec)
        return out

    def start_orchestrator(self, role: str = "all") -> Managed:
        """`baton server`; with role "api" the engine is started later by start_engine."""
        self.port = free_port()
        self.orch = self._server("orchestrator", role, self.port)
        return self.orch

    def start_engine(self) -> Managed:
        self.engine_port = free_port()
        return self._server("engine", "engine", self.engine_port)

    def _server(self, name: str, role: str, port: int) -> Managed:
        env = {
            **self.env,
            "BATON_DATABASE_SCHEMA": self.schema,
            "BATON_TOPIC_PREFIX": self.prefix,
            "BATON_REDIS_PREFIX": f"bench-{self.ts}:",
            "BATON_ENGINE_GROUP_ID": f"{self.prefix}engine",
            "BATON_LOG_LEVEL": "WARNING",
        }
        self.orch_env = {k: v for k, v in env.items() if k.startswith("BATON_") and "URL" not in k}
        argv = [str(VENV_BIN / "baton"), "server", "--host", "127.0.0.1", "--port", str(port), "--role", role]
        proc = Managed(name, argv, env, self.tmp / f"{name}.log", cwd=str(ROOT))
        self.procs.append(proc)
        return proc

    def start_t0_engine(self, prefix: str) -> Managed:
        env = {**self.env, "BATON_TOPIC_PREFIX": prefix}
        eng = Managed("t0-engine", [PY, str(BENCH / "t0_engine.py")], env, self.tmp / "t0-engine.log", pipes=True)
        self.procs.append(eng)
        return eng

    async def wait_health(self, client: httpx.AsyncClient, timeout: float = 90, proc: Managed | None = None) -> None:
        deadline = time.time() + timeout
        proc = proc or self.orch
        assert proc is not None
        while time.time() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            try:
                r = await client.get("/health", timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
        raise RuntimeError(f"{proc.name} not healthy in time")

    # ------------------------------------------------------------ cleanup

    def stop_processes(self, notes: list[str]) -> None:
        for m in reversed(self.procs):
            try:
                m.stop(15)
            except Exception as exc:
                notes.append(f"stopping {m.name}: {exc}")

    async def remove_namespace(self, notes: list[str]) -> None:
        """Drop the schema (unless --keep-schema), delete the topics and the Redis keys; failures become notes."""
        if not self.args.keep_schema:
            try:
                with psycopg.connect(self.db_url, autocommit=True) as c:
                    c.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            except Exception as exc:
                notes.append(f"drop schema {self.schema}: {exc}")
        try:
            await self._delete_topics()
        except Exception as exc:
            notes.append(f"delete topics {self.prefix}*: {exc}")
        try:
            self._delete_redis_keys()
        except Exception as exc:
            notes.append(f"redis cleanup: {exc}")

    async def wait_group_stable(self, group: str, workers: list[Managed], timeout: float = 120) -> float:
        """Wait until `group` is Stable with one member per process of `workers`; returns the seconds waited.

        Workers that join while jobs are in flight rebalance the group, and a job running on a revoked
        partition is run again by its new owner (at-least-once; the engine records one result). So the
        load starts only once every worker has joined (a JVM starts seconds after a Python process).
        """
        from aiokafka.admin import AIOKafkaAdminClient

        t0 = time.monotonic()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.env["BATON_KAFKA_BOOTSTRAP_SERVERS"])
        await asyncio.wait_for(admin.start(), 15)
        try:
            while time.monotonic() - t0 < timeout:
                for proc in workers:
                    if not proc.alive():
                        raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
                desc = (await admin.describe_consumer_groups([group]))[0].groups[0]
                if desc[2] == "Stable" and len(desc[5]) == len(workers):
                    return time.monotonic() - t0
                await asyncio.sleep(0.25)
        finally:
            await admin.close()
        raise RuntimeError(f"consumer group {group} not stable with {len(workers)} members within {timeout:g}s")

    async def _delete_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.env["BATON_KAFKA_BOOTSTRAP_SERVERS"])
        await asyncio.wait_for(admin.start(), 15)
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(self.prefix)]
            if mine:
                await asyncio.wait_for(admin.delete_topics(mine), 30)
        finally:
            await admin.close()

    def _delete_redis_keys(self) -> None:
        import redis

        r = redis.Redis.from_url(self.env["BATON_REDIS_URL"], socket_timeout=3)
        keys = list(r.scan_iter(match=f"bench-{self.ts}:*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()
