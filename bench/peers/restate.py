"""Restate as the bench's peer: install restate-server and the TypeScript SDK from npm into a temporary
directory (never into the repository), start the server (loopback only, data in that directory, durability
at its defaults: the fsync'd journal stays on) and the 10-step chain service (`restate_chain.mjs`), register
the deployment, drive it with the closed loop of C1, and stop everything by pid at the end.

Closed loop, as for Baton's C1 `wait`: N clients, each calling `POST /Chain/run` on the ingress and sending
the next call when the answer (the chain's result, after all 10 steps) arrives. Latency = request sent ->
answer received. CPU per step (from /proc, like every Baton number) of three processes: `restate-server`,
`service` (the Node process running Chain and Step) and `driver` (this harness process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any

from analyze import add_cpu, dist_ms
from loadgen import HttpPool
from procs import Managed, Snapshot, cpu_delta, cpu_seconds, machine_busy_seconds, pss_kb, status_kb
from stack import free_port

SERVER_VERSION = "1.7.12"
SDK_VERSION = "1.17.2"
STEPS = 10
CHAIN_PATH = "/Chain/run"
REQUEST_TIMEOUT_S = 60.0
SERVICE_JS = Path(__file__).resolve().parent / "restate_chain.mjs"
_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
# The server's settings that say how durable and how parallel it is, copied from --dump-config into the JSON.
_KNOBS = (
    ("default-provider", ("bifrost", "default-provider")),
    ("default-replication", ("default-replication",)),
    ("default-num-partitions", ("default-num-partitions",)),
    ("log-server.rocksdb-disable-wal-fsync", ("log-server", "rocksdb-disable-wal-fsync")),
    ("bifrost.local.rocksdb-disable-wal", ("bifrost", "local", "rocksdb-disable-wal")),
    ("bifrost.local.rocksdb-disable-wal-fsync", ("bifrost", "local", "rocksdb-disable-wal-fsync")),
    ("worker.max-command-batch-size", ("worker", "max-command-batch-size")),
)


_NET_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError)


def _chain_ok(n: int) -> Callable[[int, Any], bool]:
    """A chain's answer is right when all STEPS steps ran on the input it was sent."""
    return lambda status, data: (
        status == 200 and isinstance(data, dict) and data.get("step") == STEPS and data.get("n") == n
    )


class PeerError(RuntimeError):
    """The peer could not be installed, started or driven; the message says why (no stack trace)."""


@dataclass
class Ports:
    ingress: int
    admin: int
    fabric: int
    service: int


@dataclass
class Installed:
    root: Path
    server_bin: Path
    sdk_entry: Path
    versions: dict[str, str]


async def install(root: Path) -> Installed:
    """`npm install --prefix <root>` of the server and the SDK (npm's cache is reused; no install scripts run,
    so nothing phones home: the server binary ships inside its platform package). npm runs in its own
    process group, killed if the install is cancelled (Ctrl-C) or takes over 10 minutes."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise PeerError(f"--peer restate needs `{tool}` on PATH")
    pkgs = [f"@restatedev/restate-server@{SERVER_VERSION}", f"@restatedev/restate-sdk@{SDK_VERSION}"]
    argv = ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    env = {**os.environ, "SCARF_ANALYTICS": "false", "DO_NOT_TRACK": "1"}
    proc = await asyncio.create_subprocess_exec(
        *argv, *pkgs, env=env, cwd=root, stdout=PIPE, stderr=PIPE, stdin=DEVNULL, start_new_session=True
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 600)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        if isinstance(exc, TimeoutError):
            raise PeerError("npm install of Restate took over 10 minutes") from exc
        raise
    if proc.returncode != 0:
        raise PeerError(f"npm install {' '.join(pkgs)} failed:\n{(stderr or stdout).decode(errors='replace')[-2000:]}")
    mods = root / "node_modules" / "@restatedev"
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    plat = sys.platform  # "linux" / "darwin", as in the platform packages' names
    server_bin = mods / f"restate-server-{plat}-{arch}" / "bin" / "restate-server"
    if not server_bin.exists():
        raise PeerError(f"npm installed no restate-server binary for {plat}-{arch} ({server_bin.parent.parent.name})")
    versions = {}
    for name in ("restate-server", "restate-sdk", "restate-sdk-core"):
        try:
            versions[name] = json.loads((mods / name / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            versions[name] = "unknown"
    return Installed(root, server_bin, mods / "restate-sdk" / "dist" / "index.js", versions)


def config(base: Path, ports: Ports) -> str:
    """restate-server's TOML: loopback only, this run's data dir, no telemetry, quiet logs. Durability and
    parallelism are the server's defaults (recorded from --dump-config)."""
    return "\n".join(
        [
            'bind-ip = "127.0.0.1"',
            f"bind-port = {ports.fabric}",
            'listen-mode = "tcp"',
            'node-name = "bench"',
            f"base-dir = {json.dumps(str(base))}",
            "disable-telemetry = true",
            'log-filter = "warn"',
            "log-disable-ansi-codes = true",
            "[ingress]",
            f"bind-port = {ports.ingress}",
            "[admin]",
            f"bind-port = {ports.admin}",
            "",
        ]
    )


def server_knobs(server_bin: Path, cfg: Path) -> dict[str, Any]:
    """The effective settings of _KNOBS, from `restate-server --config-file cfg --dump-config`."""
    res = subprocess.run(
        [str(server_bin), "--config-file", str(cfg), "--dump-config"], capture_output=True, text=True, timeout=60
    )
    try:
        dump = tomllib.loads(res.stdout)
    except tomllib.TOMLDecodeError as exc:
        return {"unavailable": f"--dump-config: {exc}"}
    out: dict[str, Any] = {}
    for key, path in _KNOBS:
        node: Any = dump
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        out[key] = node
    return out


def fs_type(path: Path) -> str:
    """The filesystem type of the mount holding `path` (from /proc/mounts; "unknown" elsewhere)."""
    best, fstype = "", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1].replace("\\040", " ")
                if len(parts) > 2 and str(path).startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best):
                    best, fstype = mnt, parts[2]
    except OSError:
        pass
    return fstype


class Restate:
    """One Restate server + the chain service, in a temporary directory removed by close()."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.tmp = Path(tempfile.mkdtemp(prefix="baton-bench-restate-"))
        self.procs: list[Managed] = []
        self.server: Managed | None = None
        self.service: Managed | None = None
        self.ports = Ports(free_port(), free_port(), free_port(), free_port())
        self.knobs: dict[str, Any] = {}
        self.versions: dict[str, str] = {}
        self.notes: list[str] = []

    async def start(self) -> None:
        t0 = time.monotonic()
        inst = await install(self.tmp)
        self.versions = inst.versions
        self.log(f"restate: installed {inst.versions} in {time.monotonic() - t0:.0f} s")
        cfg = self.tmp / "restate.toml"
        cfg.write_text(config(self.tmp / "data", self.ports))
        self.knobs = await asyncio.to_thread(server_knobs, inst.server_bin, cfg)
        self.knobs["data_dir_filesystem"] = fs_type(self.tmp)
        if self.knobs["data_dir_filesystem"] in ("tmpfs", "ramfs"):
            # An fsync on tmpfs costs nothing: Restate's durability would not be Baton's (PostgreSQL on disk).
            self.notes.append(
                f"Restate's data dir is on {self.knobs['data_dir_filesystem']}: its fsyncs are free; "
                "set TMPDIR to a directory on disk for a fair comparison"
            )
        argv = [str(inst.server_bin), "--config-file", str(cfg), "--no-logo"]
        # RESTATE_* variables would override the file (the server reads them over it): only the file counts.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
        self.server = Managed("restate-server", argv, env, self.tmp / "server.log", cwd=str(self.tmp))
        self.procs.append(self.server)
        env = {
            **env,
            "BENCH_PORT": str(self.ports.service),
            "RESTATE_SDK": inst.sdk_entry.as_uri(),
            "RESTATE_LOGGING": "WARN",  # like Baton's processes at WARNING: no log line per invocation
        }
        self.service = Managed("restate-service", ["node", str(SERVICE_JS)], env, self.tmp / "service.log")
        self.procs.append(self.service)
        await self._until_ok(self.ports.admin, "GET", "/health", b"", lambda st, _: st < 300, "admin /health")
        reg = json.dumps({"uri": f"http://127.0.0.1:{self.ports.service}"}).encode()
        await self._until_ok(self.ports.admin, "POST", "/deployments", reg, lambda st, _: st < 300, "registration")
        # One chain end to end: the ingress learns the new services a moment after the registration.
        await self._until_ok(self.ports.ingress, "POST", CHAIN_PATH, b'{"n":0}', _chain_ok(0), "a first chain")
        self.log(f"restate: server pid {self.server.pid}, service pid {self.service.pid}, ready")

    async def _until_ok(
        self, port: int, method: str, path: str, body: bytes, ok: Callable[[int, Any], bool], what: str
    ) -> None:
        """Send the request until `ok(status, json)` (every 0.3 s, 60 s at most; the processes must stay up)."""
        deadline, last = time.monotonic() + 60, "no answer"
        pool = HttpPool("127.0.0.1", port, 1)
        try:
            while time.monotonic() < deadline:
                self._check_alive()
                try:
                    status, data = await asyncio.wait_for(pool.request(method, path, body), 30)
                    if ok(status, data):
                        return
                    last = f"HTTP {status}: {str(data)[:300]}"
                except _NET_ERRORS as exc:
                    last = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.3)
        finally:
            await pool.close()
        logs = "\n".join(m.tail(10) for m in self.procs)
        raise PeerError(f"restate: {what} failed within 60 s ({method} :{port}{path}): {last}\n{logs}")

    def _check_alive(self) -> None:
        for m in self.procs:
            if not m.alive():
                raise PeerError(f"{m.name} exited (code {m.proc.returncode}):\n{m.tail()}")

    def groups(self) -> dict[str, list[int]]:
        return {
            "restate-server": [self.server.pid] if self.server else [],
            "service": [self.service.pid] if self.service else [],
            "driver": [os.getpid()],
        }

    def peak_rss_mb(self) -> dict[str, float]:
        return {k: round(sum(status_kb(p, "VmHWM") for p in v) / 1024, 1) for k, v in self.groups().items()}

    def close(self, notes: list[str]) -> None:
        """Stop the processes by pid (SIGTERM to their process group, SIGKILL after 15 s), remove the tmp dir."""
        for m in reversed(self.procs):
            try:
                m.stop(15)
            except Exception as exc:
                notes.append(f"restate: stopping {m.name}: {exc}")
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- the closed loop


def _snapshot(groups: dict[str, list[int]]) -> Snapshot:
    cpu = {k: {p: c for p in pids if (c := cpu_seconds(p)) is not None} for k, pids in groups.items()}
    return Snapshot(time.time(), machine_busy_seconds(), cpu, {k: sum(pss_kb(p) for p in v) for k, v in groups.items()})


async def _window(groups: dict[str, list[int]], tw0: float, tw1: float) -> tuple[Snapshot, Snapshot]:
    await asyncio.sleep(max(0.0, tw0 - time.time()))
    a = await asyncio.to_thread(_snapshot, groups)
    await asyncio.sleep(max(0.0, tw1 - time.time()))
    return a, await asyncio.to_thread(_snapshot, groups)


async def idle_cores(peer: Restate, seconds: float = 2.0) -> dict[str, float]:
    """Cores busy per process with no load (the fixed cost that dominates CPU per step at 1 client)."""
    t0 = time.time()
    a, b = await _window(peer.groups(), t0, t0 + seconds)
    return {k: round(v / seconds, 3) for k, v in cpu_delta(a, b).items()}


async def _client(pool: HttpPool, until: float, out: list[tuple[float, float]], errors: list[str]) -> None:
    n = 0
    while time.time() < until:
        n += 1
        sent = time.time()
        try:
            status, data = await asyncio.wait_for(pool.request("POST", CHAIN_PATH, b'{"n":%d}' % n), REQUEST_TIMEOUT_S)
        except _NET_ERRORS as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            continue
        if not _chain_ok(n)(status, data):
            errors.append(f"HTTP {status}: {str(data)[:200]}")
            continue
        out.append((sent, time.time()))


async def closed_point(peer: Restate, inflight: int, warmup: float, measure: float) -> dict[str, Any]:
    """N clients for warmup + measure seconds; the numbers are those of the calls answered in the window."""
    pool = HttpPool("127.0.0.1", peer.ports.ingress, inflight + 2)
    t0 = time.time()
    tw0, tw1 = t0 + warmup, t0 + warmup + measure
    groups = peer.groups()
    sampler = asyncio.create_task(_window(groups, tw0, tw1))
    done: list[tuple[float, float]] = []
    errors: list[str] = []
    try:
        await asyncio.gather(*(_client(pool, tw1, done, errors) for _ in range(inflight)))
        a, b = await sampler
    finally:
        sampler.cancel()
        await pool.close()
    inside = [(s, r) for s, r in done if tw0 <= r <= tw1]
    steps = len(inside) * STEPS
    p: dict[str, Any] = {
        "workload": "restate-chain",
        "inflight": inflight,
        "wf_per_s": round(len(inside) / measure, 1),
        "steps_per_s": round(steps / measure, 1),
        "steps_completed_in_window": steps,
        "latency_ms": dist_ms([r - s for s, r in inside]),
        "errors": len(errors),
        "error_samples": errors[:5],
        "chains_answered": len(done),
    }
    add_cpu(p, cpu_delta(a, b), measure)
    return p


def point_line(p: dict[str, Any]) -> str:
    lat, c = p["latency_ms"], p["cpu_us_per_step"]
    return (
        f"restate x{p['inflight']}: {p['steps_per_s']:g} steps/s, per workflow p50 {lat['p50']} p99 {lat['p99']} ms, "
        f"server {c.get('restate-server')} / service {c.get('service')} / driver {c.get('driver')} µs/step"
        + (f", {p['errors']} errors" if p["errors"] else "")
    )
