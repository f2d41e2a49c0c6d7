"""What the Kafka broker does in a window: its CPU by thread kind, and its requests by API and client.

    .venv/bin/python bench/kafka_requests.py --seconds 30 [--stack-dir DIR] [--json]

Run it beside a bench (or an idle orchestrator and worker). CPU is the broker pid's threads' utime +
stime from /proc (JIT compiler, GC, network, request handlers, the rest). Requests come from the broker's
request log, which `infra/stack.sh up` writes only with BATON_KAFKA_REQUEST_LOG=1: logging every request
costs the broker CPU itself, so count requests in one run and measure CPU in another.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
_API = re.compile(rb'"requestApiKeyName":"([A-Z_]+)"')
_CLIENT = re.compile(rb'"clientId":"([^"]*)"')
_LISTENER = re.compile(rb'"listener":"([A-Z_]+)"')
_JCMD_THREAD = re.compile(r'^"([^"]*)".* nid=(0x[0-9a-f]+|\d+)', re.M)
# Full thread names (from jcmd: /proc's comm keeps 15 characters) by kind.
_KINDS = (
    ("jit", ("C2 CompilerThread", "C1 CompilerThread")),
    ("gc", ("G1 ", "GC Thread", "VM Thread", "VM Periodic")),
    ("network", ("data-plane-kafka-network-thread", "data-plane-kafka-socket-acceptor")),
    ("requests", ("data-plane-kafka-request-handler",)),
    ("coordinators", ("group-coordinator", "share-coordinator", "transaction")),
    ("raft+controller", ("kafka-1-raft", "quorum-controller", "controller-", "broker-1-", "kafka-1-metadata")),
)


def thread_names(pid: int) -> dict[int, str]:
    """tid -> the JVM's name of the thread (empty if jcmd is unavailable)."""
    try:
        out = subprocess.run(["jcmd", str(pid), "Thread.print"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {int(nid, 0): name for name, nid in _JCMD_THREAD.findall(out)}


def thread_kind(name: str) -> str:
    for kind, prefixes in _KINDS:
        if name.startswith(prefixes):
            return kind
    return "other"


def threads_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (/proc comm, CPU seconds so far) of each live thread."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            data = (task / "stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def process_cpu(pid: int) -> float:
    """utime + stime of the whole process, threads that exited included."""
    data = Path(f"/proc/{pid}/stat").read_bytes()
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cores_by_kind(
    a: dict[int, tuple[str, float]],
    b: dict[int, tuple[str, float]],
    names: dict[int, str],
    total: float,
    elapsed: float,
) -> dict[str, float]:
    """Per kind, from threads alive at both ends; "exited" is what the others (JIT threads the JVM
    starts and stops on demand, mostly) used."""
    out: Counter[str] = Counter()
    for tid, (comm, cpu) in b.items():
        out[thread_kind(names.get(tid, comm))] += cpu - a.get(tid, (comm, 0.0))[1]
    out["exited"] = total - sum(out.values())
    return {k: round(v / elapsed, 4) for k, v in sorted(out.items())}


def count_requests(chunk: bytes) -> tuple[Counter[str], Counter[str]]:
    """(requests by API, requests by "API client-id") in request-log lines; the broker's own controller
    traffic (KRaft heartbeats) is labelled CONTROLLER."""
    by_api: Counter[str] = Counter()
    by_client: Counter[str] = Counter()
    for line in chunk.splitlines():
        api = _API.search(line)
        if api is None:
            continue
        name = api.group(1).decode()
        client = _CLIENT.search(line)
        listener = _LISTENER.search(line)
        if listener and listener.group(1) == b"CONTROLLER":
            who = "CONTROLLER"
        else:
            who = client.group(1).decode() if client else "?"
        by_api[name] += 1
        by_client[f"{name} {who}"] += 1
    return by_api, by_client


def measure(stack_dir: Path, seconds: float) -> dict[str, object]:
    pid = int((stack_dir / "kafka.pid").read_text().strip())
    log = stack_dir / "kafka-requests.log"
    # The file exists whenever stack.sh started the broker; it only grows with BATON_KAFKA_REQUEST_LOG=1.
    start = log.stat().st_size if log.exists() else None
    names = thread_names(pid)
    cpu0, total0, t0 = threads_cpu(pid), process_cpu(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, total1, elapsed = threads_cpu(pid), process_cpu(pid), time.monotonic() - t0
    result: dict[str, object] = {
        "seconds": round(elapsed, 1),
        "cores": cores_by_kind(cpu0, cpu1, names, total1 - total0, elapsed),
        "cores_total": round((total1 - total0) / elapsed, 4),
    }
    if start is not None and log.stat().st_size > start:
        with log.open("rb") as f:
            f.seek(start)
            by_api, by_client = count_requests(f.read())
        result["requests_per_s"] = {k: round(v / elapsed, 2) for k, v in by_api.most_common()}
        result["requests_per_s_total"] = round(sum(by_api.values()) / elapsed, 1)
        result["requests_per_s_by_client"] = {k: round(v / elapsed, 2) for k, v in by_client.most_common()}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--stack-dir", type=Path, default=Path(os.environ.get("BATON_STACK_DIR", ".stack")))
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = ap.parse_args()
    r = measure(args.stack_dir, args.seconds)
    if args.json:
        print(json.dumps(r))
        return
    kinds = ", ".join(f"{k} {v}" for k, v in r["cores"].items())  # type: ignore[attr-defined]
    print(f"broker cores over {r['seconds']} s: {r['cores_total']} ({kinds})")
    if "requests_per_s" in r:
        print(f"requests/s: {r['requests_per_s_total']}")
        for k, v in r["requests_per_s_by_client"].items():  # type: ignore[attr-defined]
            print(f"  {v:8.2f}  {k}")


if __name__ == "__main__":
    main()
