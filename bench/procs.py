"""Processes: start/stop the ones the bench owns, and account CPU and memory from /proc.

CPU is read from /proc/<pid>/stat (utime + stime of every thread, in clock ticks, 10 ms resolution) at
the start and end of a measured window. Groups:

- orchestrator: the `baton server` process (or the T0 engine for T0)
- postgres:     the PostgreSQL backends connected from the orchestrator's sockets (matched by client port
                in the backend's process title) + the server's shared processes (postmaster, walwriter,
                checkpointer, background writer, autovacuum). Other users' backends are NOT counted.
- kafka, redis: the whole shared broker / server process (other users' traffic on the shared stack IS
                counted: see `machine` and `other` to judge the noise)
- workers:      the bench's worker processes
- loadgen:      the bench harness process itself (it only generates load during a window)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
_PG_CLIENT_PORT = re.compile(r"127\.0\.0\.1\((\d+)\)")
_PG_SHARED = ("checkpointer", "background writer", "walwriter", "autovacuum", "logical replication", "stats")


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (PostgreSQL's shared buffers) split among the processes mapping
    them, so a group's sum is not inflated. Falls back to VmRSS."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return status_kb(pid, "VmRSS")


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / TICK


def children(ppid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if int(data[data.rindex(b")") + 2 :].split()[1]) == ppid:
            out.append(int(entry))
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def local_ports_to(pid: int, remote_port: int) -> set[int]:
    """Local TCP ports of `pid`'s sockets connected to 127.0.0.1:<remote_port>."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[9] in inodes and int(cols[2].rsplit(":", 1)[1], 16) == remote_port:
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


@dataclass
class Groups:
    """Which pids make up each process group; PostgreSQL backends are resolved at every snapshot."""

    orchestrator: list[int] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)
    kafka: list[int] = field(default_factory=list)
    redis: list[int] = field(default_factory=list)
    postmaster: int | None = None
    pg_port: int = 5432
    loadgen: list[int] = field(default_factory=lambda: [os.getpid()])

    def pids(self) -> dict[str, list[int]]:
        pg: list[int] = []
        if self.postmaster:
            pg.append(self.postmaster)
            ports: set[int] = set()
            for pid in self.orchestrator:
                ports |= local_ports_to(pid, self.pg_port)
            for child in children(self.postmaster):
                title = cmdline(child)
                m = _PG_CLIENT_PORT.search(title)
                if (m and int(m.group(1)) in ports) or (not m and any(s in title for s in _PG_SHARED)):
                    pg.append(child)
        return {
            "orchestrator": self.orchestrator,
            "postgres": pg,
            "kafka": self.kafka,
            "redis": self.redis,
            "workers": self.workers,
            "loadgen": self.loadgen,
        }


@dataclass
class Snapshot:
    t: float
    machine: float
    cpu: dict[str, dict[int, float]]  # group -> pid -> cpu seconds
    rss_kb: dict[str, int]  # PSS sum per group


def snapshot(groups: Groups) -> Snapshot:
    cpu: dict[str, dict[int, float]] = {}
    rss: dict[str, int] = {}
    for name, pids in groups.pids().items():
        cpu[name] = {p: c for p in pids if (c := cpu_seconds(p)) is not None}
        rss[name] = sum(pss_kb(p) for p in pids)
    return Snapshot(time.time(), machine_busy_seconds(), cpu, rss)


def cpu_delta(a: Snapshot, b: Snapshot) -> dict[str, float]:
    """CPU seconds per group between two snapshots (a process that appeared in between counts from 0)."""
    out = {}
    for name, now in b.cpu.items():
        before = a.cpu.get(name, {})
        out[name] = sum(c - before.get(p, 0.0) for p, c in now.items())
    out["machine"] = b.machine - a.machine
    out["other"] = out["machine"] - sum(v for k, v in out.items() if k != "machine")
    return out


def peak_rss_mb(groups: Groups, sampled: dict[str, int]) -> dict[str, float]:
    """VmHWM (true peak RSS) for our own processes; the largest sampled PSS sum for the shared services."""
    out = {}
    for name, pids in groups.pids().items():
        if name in ("orchestrator", "workers", "loadgen"):
            out[name] = round(sum(status_kb(p, "VmHWM") for p in pids) / 1024, 1)
        else:
            out[name] = round(sampled.get(name, 0) / 1024, 1)
    return out


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Managed:
    """A child process the bench started: own process group, stopped with SIGTERM then SIGKILL."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log: Path, cwd: str | None = None, pipes: bool = False
    ) -> None:
        self.name, self.log = name, log
        self._logf = open(log, "ab")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else self._logf,
            stderr=self._logf,
            start_new_session=True,
            text=pipes,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self._logf.close()

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""
